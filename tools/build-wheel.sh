#!/usr/bin/env bash
# `make wheel`: one abi3 wheel (CPython >= 3.9) in dist/ that installs on any
# glibc >= 2.28 host (RHEL 8 and newer) without a compiler or -dev packages.
#
# - zig (the `ziglang` wheel, through maturin's --zig) links against glibc
#   2.28's symbol versions, whatever glibc this machine has; the tag says
#   manylinux_2_28.
# - libpam and libkrb5 are the host's at run time (DT_NEEDED on libpam.so.0,
#   libkrb5.so.3, libk5crypto.so.3, libgssapi_krb5.so.2), never copied into the wheel: auditwheel
#   repair is skipped, and tools/check_wheel.py fails the build if anything
#   else is bundled or a newer glibc symbol slipped in.
# - zig searches no system library directory, so the link sees a directory
#   holding only the libraries we name, pointing at this machine's
#   runtime sonames.
set -euo pipefail

VENV=${VENV:-/opt/pamkrb/venv}
OUT=${1:-dist}
GLIBC=2.28
ARCH=$(uname -m)
TRIPLE=$ARCH-unknown-linux-gnu
MULTIARCH=/usr/lib/$ARCH-linux-gnu

cd "$(dirname "$0")/.."
export PATH=$VENV/bin:$HOME/.cargo/bin:/root/.cargo/bin:$PATH

if ! "$VENV/bin/python" -m ziglang version >/dev/null 2>&1; then
    echo "wheel: zig is missing from $VENV (pip install ziglang; tools/setup.sh does)" >&2
    exit 1
fi

link_dir=target/wheel-link/$ARCH
rm -rf "$link_dir"
mkdir -p "$link_dir"
# pam-sys asks for pam_misc too; --as-needed drops it because nothing uses it.
for lib in pam:libpam.so.0 pam_misc:libpam_misc.so.0 krb5:libkrb5.so.3 k5crypto:libk5crypto.so.3 gssapi_krb5:libgssapi_krb5.so.2; do
    soname=${lib#*:}
    if [[ ! -e $MULTIARCH/$soname ]]; then
        echo "wheel: $MULTIARCH/$soname is missing (apt install libpam0g libkrb5-3 libgssapi-krb5-2)" >&2
        exit 1
    fi
    ln -s "$MULTIARCH/$soname" "$link_dir/lib${lib%%:*}.so"
done

rm -f "$OUT"/jupyterhub_pamkrb-*.whl
# bindgen (pam-sys) runs clang for the target; point it at the system's PAM
# headers, which zig's sysroot does not have.
env "BINDGEN_EXTRA_CLANG_ARGS_$TRIPLE=-I/usr/include/$ARCH-linux-gnu -I/usr/include" \
    RUSTFLAGS="-L native=$PWD/$link_dir" \
    maturin build --release --zig --target "$TRIPLE" \
    --compatibility "manylinux_${GLIBC//./_}" --auditwheel skip --out "$OUT"

"$VENV/bin/python" tools/check_wheel.py --glibc "$GLIBC" "$OUT"/jupyterhub_pamkrb-*.whl
