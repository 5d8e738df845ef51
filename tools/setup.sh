#!/usr/bin/env bash
# Idempotent machine setup for building, testing and demonstrating pamkrb.
#
# Run as root on Debian 12. Every step first checks whether its work is already
# done, so a second run takes about a second. What it installs:
#   - apt: MIT Kerberos (KDC, admin tools, client, headers), PAM headers, libclang
#     (bindgen for the `pam` crate), Python venv/headers, build tools, Node/npm,
#     nginx and openssl (the TLS front-end tests), a Java runtime if none is on PATH
#     (Spark in the PySpark kernel tests), Chromium (browser tests) and faketime
#     (clock-skew tests), libpam-oath (one-time-password tests; it ships no
#     pam-auth-update profile, so the system's PAM stacks stay untouched). apt starts no nginx: the tests run their own.
#     debootstrap (the wheel's Debian 11/13 tests) and binutils (objdump, its static check).
#     fuse3 (a setuid-root fusermount3, for doctor's FUSE check) and bindfs (an unprivileged
#     user's FUSE mount on another user's cache path, tests/test_hostile_mounts.py).
#     Samba's AD DC and winbind (tests/test_samba_dc.py), installed so that the host's PAM,
#     NSS and krb5.conf stay byte-identical (see the Samba section below).
#     slurm-wlm and munge (a one-node Slurm cluster, tests/test_slurm_spawner.py; apt starts neither).
#   - a venv at /opt/pamkrb/venv made from Debian's /usr/bin/python3: /root is
#     mode 0700, so an interpreter under /root (pyenv) cannot be executed by the
#     test users' single-user servers.
#   - batchspawner in the venv (SlurmSpawner, tests/test_slurm_spawner.py).
#   - zig (the `ziglang` wheel) in the venv: `make wheel` links against glibc 2.28 with it.
#   - configurable-http-proxy from npm (JupyterHub's default proxy).
#   - rustfmt and clippy for the existing Rust toolchain.
#   - Apache Hadoop 2.7.3's jars in /var/cache/pamkrb/hadoop (the HDFS tests).
# It never installs libpam-krb5: pam-auth-update would add it to the common PAM
# stacks, after which chpasswd fails and logins talk to the wrong realm.
set -euo pipefail

VENV=${PAMKRB_VENV:-/opt/pamkrb/venv}
APT_PACKAGES=(
    krb5-kdc krb5-admin-server krb5-user libkrb5-dev
    libpam0g-dev libclang-dev
    python3-venv python3-dev pkg-config build-essential curl
    nodejs npm
    chromium
    nginx openssl
    default-jre-headless
    faketime
    libpam-oath
    debootstrap binutils
    fuse3 bindfs
    slurm-wlm munge
)
PIP_PACKAGES=(
    "jupyterhub==6.*"
    "notebook==7.*"
    "jupyterlab==4.*"
    jupyter_server
    pamela
    "maturin>=1.9,<2"
    "ziglang==0.17.1"
    pytest
    pytest-timeout
    requests
    ruff
    mypy
    jsonschema
    playwright
    matplotlib
    websocket-client
    pyspark
    batchspawner
)
CHP_VERSION=5

log() { printf 'setup: %s\n' "$*"; }

if [[ $(id -u) -ne 0 ]]; then
    echo "setup: must run as root (installs system packages and creates /opt/pamkrb)" >&2
    exit 1
fi

# --- apt -------------------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    # Node may come from elsewhere (NodeSource, nvm); only ask apt for it when absent.
    if [[ $pkg == nodejs ]] && command -v node >/dev/null; then continue; fi
    if [[ $pkg == npm ]] && command -v npm >/dev/null; then continue; fi
    # Spark (the PySpark kernel tests) needs Java 17+; any java on PATH will do.
    if [[ $pkg == default-jre-headless ]] && command -v java >/dev/null; then continue; fi
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    log "apt packages present"
fi
# The FUSE tests need the device; a machine that has the module but has not
# loaded it yet gets it loaded. Under CI=1 a FUSE test that finds no device
# fails, naming it (tests/ci_skips.py).
if [[ ! -c /dev/fuse ]]; then
    modprobe fuse 2>/dev/null || log "WARNING: no /dev/fuse and \`modprobe fuse\` failed: the FUSE tests cannot run"
fi
if dpkg-query -W -f='${Status}' libpam-krb5 2>/dev/null | grep -q "install ok installed"; then
    log "WARNING: libpam-krb5 is installed; it alters the common PAM stacks and breaks the tests"
fi

# --- Samba AD DC and winbind (tools/sandbox/samba.py, tests/test_samba_dc.py) --
# Their package scripts edit the host: libpam-winbind's postinst runs
# pam-auth-update (adds pam_winbind to /etc/pam.d/common-*), libnss-winbind's
# runs `sed -i` on /etc/nsswitch.conf, and the init scripts would start smbd,
# nmbd and samba on the host's ports. Other tests, running concurrently, depend
# on the host's PAM stack. So: the init scripts stay blocked by policy-rc.d; the
# DC packages (whose scripts only add groups, /etc/samba/smb.conf and init links)
# are installed normally; the winbind PAM profile is diverted out of
# pam-auth-update's sight for good; the two member packages are configured in a
# private mount namespace whose /etc and /var/lib/pam are throw-away overlays;
# and the PAM/NSS/Kerberos files are compared with a backup afterwards (and
# restored, failing the setup, if anything changed them).
SAMBA_DC_PACKAGES=(samba-ad-dc samba-ad-provision winbind)
SAMBA_MEMBER_PACKAGES=(libnss-winbind libpam-winbind)
WINBIND_PAM_PROFILE=/usr/share/pam-configs/winbind
samba_dc_missing=()
samba_member_missing=()
for pkg in "${SAMBA_DC_PACKAGES[@]}" "${SAMBA_MEMBER_PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] && continue
    if [[ " ${SAMBA_MEMBER_PACKAGES[*]} " == *" $pkg "* ]]; then
        samba_member_missing+=("$pkg")
    else
        samba_dc_missing+=("$pkg")
    fi
done
if ((${#samba_dc_missing[@]} + ${#samba_member_missing[@]})); then
    # The packages would start smbd, nmbd and samba on this host's ports
    # 53/88/389/445: a policy-rc.d that refuses every start (invoke-rc.d's
    # documented hook) is put in place for the install when there is none.
    own_policy=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\n# pamkrb setup: no daemon starts while Samba installs\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        own_policy=/usr/sbin/policy-rc.d
    elif /usr/sbin/policy-rc.d samba start >/dev/null 2>&1; then
        echo "setup: /usr/sbin/policy-rc.d allows daemon starts; Samba's packages would start" \
            "smbd, nmbd and samba on this host's ports 53/88/389/445. Not installing them." >&2
        exit 1
    fi
    samba_backup=$(mktemp -d /var/backups/pamkrb-samba-install.XXXXXX)
    guarded=(/etc/pam.d /etc/nsswitch.conf /etc/krb5.conf /etc/samba)
    for path in "${guarded[@]}"; do
        if [[ -e $path ]]; then cp -a "$path" "$samba_backup/"; fi
    done
    rm -f "$samba_backup"/pam.d/pamkrb-*
    log "Samba: host PAM/NSS/Kerberos files backed up to $samba_backup"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --download-only --no-install-recommends "${samba_dc_missing[@]}" "${samba_member_missing[@]}"
    if ((${#samba_dc_missing[@]})); then
        log "apt-get install ${samba_dc_missing[*]}"
        apt-get install -y -q --no-install-recommends "${samba_dc_missing[@]}"
    fi
    if ((${#samba_member_missing[@]})); then
        # Out of the directory: pam-auth-update reads every file in it whose
        # name does not end in "~" (a "winbind.disabled" would be a profile).
        if ! dpkg-divert --list "$WINBIND_PAM_PROFILE" | grep -q .; then
            mkdir -p /usr/share/pamkrb/disabled-pam-configs
            dpkg-divert --package pamkrb-setup --rename \
                --divert /usr/share/pamkrb/disabled-pam-configs/winbind --add "$WINBIND_PAM_PROFILE"
        fi
        overlays=$(mktemp -d /var/tmp/pamkrb-samba-overlay.XXXXXX)
        log "apt-get install ${samba_member_missing[*]} (in a mount namespace; /etc and /var/lib/pam are overlays)"
        # shellcheck disable=SC2016 # expanded by the inner bash
        unshare --mount --propagation private -- bash -euo pipefail -c '
            overlays=$1
            shift
            for dir in /etc /var/lib/pam; do
                name=${dir//\//_}
                mkdir -p "$overlays/$name.upper" "$overlays/$name.work"
                mount -t overlay pamkrb-samba-overlay \
                    -o "lowerdir=$dir,upperdir=$overlays/$name.upper,workdir=$overlays/$name.work" "$dir"
            done
            apt-get install -y -q --no-install-recommends "$@"
        ' _ "$overlays" "${samba_member_missing[@]}"
        rm -rf "$overlays"
        # The libraries' ldconfig trigger wrote its cache inside the overlay.
        ldconfig
    fi
    changed=()
    while IFS= read -r -d '' saved; do
        path=/etc/${saved#"$samba_backup"/}
        # Tests install and remove their own PAM services (pamkrb-*) meanwhile.
        [[ $path == /etc/pam.d/pamkrb-* ]] && continue
        cmp -s "$saved" "$path" || changed+=("$path")
    done < <(find "$samba_backup" -type f -print0)
    for path in /etc/pam.d/* /etc/nsswitch.conf /etc/krb5.conf; do
        # /etc/pam.d/samba is samba-common's own service (smbd's), new and expected.
        [[ $path == /etc/pam.d/pamkrb-* || $path == /etc/pam.d/samba || ! -e $path ]] && continue
        [[ -e $samba_backup/${path#/etc/} ]] || changed+=("$path (new)")
    done
    if [[ -n $own_policy ]]; then rm -f "$own_policy"; fi
    if ((${#changed[@]})); then
        echo "setup: installing Samba changed ${changed[*]}; restoring them from $samba_backup" >&2
        # File by file: copying the backup directory itself would give /etc
        # its mode (0700, mktemp's), and no other user could read /etc/passwd.
        while IFS= read -r -d '' saved; do
            cp -a "$saved" "/etc/${saved#"$samba_backup"/}"
        done < <(find "$samba_backup" -type f -print0)
        exit 1
    fi
    log "Samba installed; /etc/pam.d, /etc/nsswitch.conf and /etc/krb5.conf unchanged (cmp)"
    rm -rf "$samba_backup"
else
    log "samba packages present"
fi
if grep -qs winbind /etc/nsswitch.conf /etc/pam.d/common-*; then
    log "WARNING: winbind is in the host's nsswitch.conf or common PAM stacks; the tests expect it only in their own namespaces"
fi

# --- Rust ------------------------------------------------------------------
export PATH="$HOME/.cargo/bin:/root/.cargo/bin:$PATH"
if ! command -v cargo >/dev/null; then
    echo "setup: cargo not found; install the Rust toolchain (rustup) first" >&2
    exit 1
else
    for component in clippy rustfmt; do
        if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
            log "rustup component add $component"
            rustup component add "$component"
        fi
    done
    log "cargo present ($(cargo --version))"
fi

# Fuzzing and dependency-audit tools, built once per machine (~10 min on
# 2 cores) rather than inside a gate.
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "cargo install cargo-fuzz"
    cargo install --locked cargo-fuzz
fi
if ! cargo deny --version 2>/dev/null | grep -q '^cargo-deny 0\.20\.'; then
    log "cargo install cargo-deny"
    cargo install --locked cargo-deny --version '~0.20'
fi

# --- Python venv -------------------------------------------------------------
if [[ ! -x $VENV/bin/python ]]; then
    log "creating $VENV from /usr/bin/python3"
    mkdir -p "$(dirname "$VENV")"
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
fi
# World-readable and executable: single-user servers run as the test users.
chmod 0755 /opt/pamkrb "$VENV"

# `pip install` resolves against the index even when everything is satisfied,
# so check with importlib.metadata first and only call pip when something is off.
if ! "$VENV/bin/python" - "${PIP_PACKAGES[@]}" 2>/dev/null <<'EOF'; then
import sys
from importlib import metadata

from packaging.requirements import Requirement

bad = []
for spec in sys.argv[1:]:
    req = Requirement(spec)
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        bad.append(spec)
        continue
    if not req.specifier.contains(version, prereleases=True):
        bad.append(spec)
sys.exit(1 if bad else 0)
EOF
    log "pip install into $VENV"
    "$VENV/bin/pip" install -q packaging "${PIP_PACKAGES[@]}"
else
    log "python packages present"
fi

# --- Hadoop 2.7.3 jars (the secured HDFS of tests/test_hadoop_hdfs.py) ---------
# From PyPI's pyspark 2.4.8 sdist (Maven Central is unreachable); about 3 s the
# first time, nothing once cached. See tools/sandbox/hadoop.py.
if [[ -f /var/cache/pamkrb/hadoop/hadoop-2.7.3/.complete ]]; then
    log "hadoop jars present"
else
    log "fetching Hadoop 2.7.3 jars into /var/cache/pamkrb/hadoop"
    PYTHONPATH="$(dirname "${BASH_SOURCE[0]}")" "$VENV/bin/python" -c 'from sandbox.hadoop import hadoop_jars; hadoop_jars()'
fi

# --- configurable-http-proxy -------------------------------------------------
NPM_BIN="$(npm prefix -g)/bin"
if [[ -x $NPM_BIN/configurable-http-proxy ]] &&
    "$NPM_BIN/configurable-http-proxy" --version 2>/dev/null | grep -q "^$CHP_VERSION\."; then
    log "configurable-http-proxy present"
else
    log "npm install -g configurable-http-proxy@$CHP_VERSION"
    npm install -g --no-fund --no-audit "configurable-http-proxy@$CHP_VERSION"
fi

bash "$(dirname "${BASH_SOURCE[0]}")/check-tools.sh" "$VENV"
log "done"
