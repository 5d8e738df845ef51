#!/usr/bin/env bash
# Fails, naming the package to install, when a tool the build or the tests
# need is missing. tools/setup.sh installs all of them; this catches a machine
# where setup was skipped or half done, and a tool that is only on someone's
# interactive PATH (pyenv shims, `pip install --user`, a global npm prefix
# that is not on the system PATH).
#
# It looks only where the project itself installs things: the system PATH,
# ~/.cargo/bin, the project venv and npm's global prefix. Usage:
#   tools/check-tools.sh [VENV]        (default /opt/pamkrb/venv)
set -euo pipefail

VENV=${1:-/opt/pamkrb/venv}
CARGO_BIN=${CARGO_HOME:-$HOME/.cargo}/bin
PATH=$CARGO_BIN:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

missing=()
need() { # need WHAT PROVIDER TEST...
    local what=$1 provider=$2
    shift 2
    "$@" >/dev/null 2>&1 || missing+=("$what  <- $provider")
}
have_file() { compgen -G "$1" >/dev/null; }

# Build: the Rust toolchain, a C toolchain, and the headers the -sys crates bind.
need cargo "rustup (https://rustup.rs), installed in ~/.cargo/bin" command -v cargo
need "cargo fmt" "rustup component add rustfmt" cargo fmt --version
need "cargo clippy" "rustup component add clippy" cargo clippy --version
need cc "apt: build-essential" command -v cc
need pkg-config "apt: pkg-config" command -v pkg-config
need libclang "apt: libclang-dev (bindgen, for the pam crate)" have_file '/usr/lib/llvm-*/lib/libclang*.so*'
need "PAM headers" "apt: libpam0g-dev" test -f /usr/include/security/pam_appl.h
need "Kerberos headers" "apt: libkrb5-dev" pkg-config --exists krb5
need "cargo deny" "cargo install --locked cargo-deny --version '~0.20' (tools/setup.sh)" cargo deny --version
need "cargo fuzz" "cargo install --locked cargo-fuzz (tools/setup.sh)" cargo fuzz --version

# The project venv: made from Debian's python3 so the test users can run it.
need "$VENV/bin/python" "tools/setup.sh (python3 -m venv from apt: python3-venv)" test -x "$VENV/bin/python"
for tool in maturin ruff mypy pytest jupyterhub jupyter-server jupyterhub-singleuser; do
    need "$VENV/bin/$tool" "tools/setup.sh (pip install into $VENV)" test -x "$VENV/bin/$tool"
done
# `make wheel`: zig links against an older glibc; objdump checks the result.
need zig "tools/setup.sh (pip install ziglang into $VENV)" "$VENV/bin/python" -m ziglang version
need objdump "apt: binutils" command -v objdump

# The services and clients the tests start.
need krb5kdc "apt: krb5-kdc" command -v krb5kdc
need kdb5_util "apt: krb5-kdc" command -v kdb5_util
need kadmin.local "apt: krb5-admin-server" command -v kadmin.local
need klist "apt: krb5-user" command -v klist
need ktutil "apt: krb5-user" command -v ktutil
need node "apt: nodejs" command -v node
need npm "apt: npm" command -v npm
npm_bin=$(npm prefix -g 2>/dev/null)/bin
need configurable-http-proxy "npm install -g configurable-http-proxy@5 (tools/setup.sh)" test -x "$npm_bin/configurable-http-proxy"
need nginx "apt: nginx" command -v nginx
need openssl "apt: openssl" command -v openssl
need chromium "apt: chromium" test -x /usr/bin/chromium
need java "apt: default-jre-headless (Spark in the PySpark kernel tests)" command -v java
need faketime "apt: faketime" command -v faketime
need pam_oath.so "apt: libpam-oath" have_file '/usr/lib/*/security/pam_oath.so'
need "setuid-root fusermount3" "apt: fuse3 (doctor's FUSE check, the hostile-mount tests)" test -u /usr/bin/fusermount3
need bindfs "apt: bindfs (the hostile-mount tests)" command -v bindfs
need debootstrap "apt: debootstrap (the wheel's Debian 11/13 tests)" command -v debootstrap
need unshare "apt: util-linux" command -v unshare

if ((${#missing[@]})); then
    echo "check-tools: missing what the build or the tests need (run tools/setup.sh as root):" >&2
    printf '  %s\n' "${missing[@]}" >&2
    exit 1
fi
echo "check-tools: all build and test tools present"
