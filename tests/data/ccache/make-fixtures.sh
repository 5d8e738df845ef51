#!/bin/sh
# Regenerates the credential cache fixtures with the real MIT tools against a
# throwaway KDC on 127.0.0.1. Needs krb5-kdc, krb5-admin-server and krb5-user.
# Usage: make-fixtures.sh OUTPUT_DIR
# Writes the caches to OUTPUT_DIR and their klist listing to standard output.
# New fixtures have new times: update README.md and the constants in
# src/ccache.rs's tests from the listing.
set -eu
out=$(cd "${1:?usage: $0 OUTPUT_DIR}" && pwd)
realm=FIXTURE.TEST
tmp=$(mktemp -d)
port=$(shuf -i 20000-60000 -n 1)
cleanup() {
    if [ -s "$tmp/kdc.pid" ]; then kill "$(cat "$tmp/kdc.pid")" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

cat > "$tmp/krb5.conf" <<CONF
[libdefaults]
    default_realm = $realm
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    ticket_lifetime = 10h
[realms]
    $realm = {
        kdc = 127.0.0.1:$port
    }
CONF
# Same configuration, but kinit writes the older version-3 file format.
sed 's/^\[libdefaults\]$/[libdefaults]\n    ccache_type = 3/' "$tmp/krb5.conf" > "$tmp/krb5-v3.conf"
cat > "$tmp/kdc.conf" <<CONF
[kdcdefaults]
    kdc_ports = $port
    kdc_tcp_ports = $port
[realms]
    $realm = {
        database_name = $tmp/principal
        key_stash_file = $tmp/stash
        acl_file = $tmp/kadm5.acl
        max_life = 10h
        max_renewable_life = 7d
        supported_enctypes = aes256-cts-hmac-sha1-96:normal
    }
[logging]
    kdc = FILE:$tmp/kdc.log
CONF
: > "$tmp/kadm5.acl"
export KRB5_CONFIG="$tmp/krb5.conf" KRB5_KDC_PROFILE="$tmp/kdc.conf" TZ=UTC
export KRB5CCNAME="FILE:$tmp/unused-default-cache"

kdb5_util create -s -P x -r "$realm" >/dev/null
kadmin.local -q "modprinc -maxrenewlife 7d krbtgt/$realm@$realm" >/dev/null
for p in alice bob alice/pg-dmp-workbench2 host/kdc.fixture.test; do
    kadmin.local -q "addprinc -randkey +requires_preauth -maxrenewlife 7d $p@$realm" >/dev/null 2>&1
    kadmin.local -q "ktadd -k $tmp/keytab $p@$realm" >/dev/null
done
krb5kdc -r "$realm" -P "$tmp/kdc.pid"
sleep 1

kinit -kt "$tmp/keytab" -c "FILE:$out/v4-kinit-keytab" "alice@$realm"
kinit -kt "$tmp/keytab" -r 2d -c "FILE:$out/v4-renewable" "bob@$realm"
kinit -kt "$tmp/keytab" -c "FILE:$out/v4-two-components" "alice/pg-dmp-workbench2@$realm"
kinit -kt "$tmp/keytab" -c "FILE:$out/v4-service-ticket" "alice@$realm"
kvno -c "FILE:$out/v4-service-ticket" "host/kdc.fixture.test@$realm" >/dev/null
KRB5_CONFIG="$tmp/krb5-v3.conf" kinit -kt "$tmp/keytab" -c "FILE:$out/v3-kinit-keytab" "alice@$realm"

cd "$out"
echo "# klist -C -e -f -c FILE:<fixture>, TZ=UTC, MIT krb5 $(klist -V | awk '{print $NF}')"
for f in v4-kinit-keytab v4-renewable v4-two-components v4-service-ticket v3-kinit-keytab; do
    echo
    echo "## $f (version $(od -An -tx1 -N2 "$f" | tr -d ' '), $(wc -c < "$f") bytes)"
    klist -C -e -f -c "FILE:$f" | while IFS= read -r line; do
        echo "$line"
        # klist prints local dates; the tests compare seconds since the epoch.
        case "$line" in
        [0-9][0-9]/*)
            set -- $line
            echo "	epoch: starts $(date -d "$1 $2" +%s), expires $(date -d "$3 $4" +%s)" ;;
        *"renew until "*)
            set -- $line
            echo "	epoch: renew until $(date -d "$3 ${4%,}" +%s)" ;;
        esac
    done
done
