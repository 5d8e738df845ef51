#!/bin/sh
# Regenerates the keytab fixtures with MIT ktutil (krb5-user). No KDC needed:
# keys are derived from a fixed password with the default salt, so they are
# the same on every run; only the timestamps change.
# Usage: make-fixtures.sh OUTPUT_DIR
# Writes the keytabs to OUTPUT_DIR and their `klist -ekt -K` listing to
# standard output. New fixtures have new timestamps: update README.md and the
# constants in src/keytab.rs's tests from the listing.
set -eu
out=$(cd "${1:?usage: $0 OUTPUT_DIR}" && pwd)
# No krb5.conf is needed to derive keys; keep the machine's out of it.
export KRB5_CONFIG=/dev/null TZ=UTC
password=fixture-password
cd "$out"
rm -f single.keytab multi.keytab

# One aes256 key for alice, kvno 3: the shape kadmin ktadd gives a user.
printf '%s\n' \
    "addent -password -p alice@FIXTURE.TEST -k 3 -e aes256-cts-hmac-sha1-96" "$password" \
    "wkt single.keytab" q | ktutil >/dev/null 2>"$out/ktutil.err" || { cat "$out/ktutil.err" >&2; exit 1; }

# Several principals and enctypes; kvno 300 exercises the 32-bit kvno
# trailer (the 8-bit field holds 300 mod 256 = 44).
printf '%s\n' \
    "addent -password -p alice@FIXTURE.TEST -k 3 -e aes256-cts-hmac-sha1-96" "$password" \
    "addent -password -p alice@FIXTURE.TEST -k 3 -e aes128-cts-hmac-sha1-96" "$password" \
    "addent -password -p alice/pg-dmp-workbench2@FIXTURE.TEST -k 300 -e aes256-cts-hmac-sha1-96" "$password" \
    "addent -password -p bob@OTHER.TEST -k 1 -e aes256-cts-hmac-sha384-192" "$password" \
    "wkt multi.keytab" q | ktutil >/dev/null 2>"$out/ktutil.err" || { cat "$out/ktutil.err" >&2; exit 1; }

# ktutil reports a bad addent on stderr but still exits 0.
if [ -s "$out/ktutil.err" ]; then cat "$out/ktutil.err" >&2; exit 1; fi
rm -f "$out/ktutil.err"

echo "# klist -ekt -K, TZ=UTC, MIT krb5 $(klist -V | awk '{print $NF}')"
for f in single.keytab multi.keytab; do
    echo
    echo "## $f ($(wc -c < "$f") bytes)"
    klist -ekt -K "$f" | while IFS= read -r line; do
        echo "$line"
        # klist prints local dates; the tests compare seconds since the epoch.
        case "$line" in
        *[0-9]/[0-9][0-9]/[0-9][0-9]\ *)
            set -- $line
            echo "	epoch: $(date -d "$2 $3" +%s)" ;;
        esac
    done
done
