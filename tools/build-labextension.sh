#!/usr/bin/env bash
# Rebuild the prebuilt JupyterLab 4 / Notebook 7 extension (labextension/) into
# wheel-data/data/share/jupyter/labextensions/pamkrb, which the wheel installs
# under the environment's share/jupyter. The output is committed, so building
# the wheel needs no Node.js; run this after changing labextension/ or
# python/pamkrb/status.schema.json.
#
# Idempotent: node_modules is reinstalled from package-lock.json and the builder
# empties the output directory before writing it.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PAMKRB_VENV:-/opt/pamkrb/venv}"
EXT="$REPO/labextension"
OUT="$REPO/wheel-data/data/share/jupyter/labextensions/pamkrb"

# jupyter-builder (what `jupyter labextension build` delegates to in
# JupyterLab 4.6) comes from the venv's jupyterlab.
export PATH="$VENV/bin:$PATH"
command -v jupyter-builder >/dev/null || {
    echo "jupyter-builder not found in $VENV/bin: install jupyterlab>=4.6 there first" >&2
    exit 1
}

# The status types come from the one definition of the status contract,
# python/pamkrb/status.schema.json: regenerated here, so tsc compiles the
# extension against the schema the server is tested against.
python3 "$REPO/tools/status_contract.py" --write

cd "$EXT"
npm ci --no-audit --no-fund --loglevel=error
npx --no-install tsc
# The builder takes the shared-module versions from @jupyterlab/core-meta in
# node_modules (pinned by package-lock.json), not from the network.
jupyter-builder build .

# Tells `jupyter labextension list` which Python package owns the extension.
cat >"$OUT/install.json" <<'JSON'
{
  "packageManager": "python",
  "packageName": "jupyterhub-pamkrb",
  "uninstallInstructions": "pip uninstall jupyterhub-pamkrb"
}
JSON

# What this bundle was built from: tests/test_labextension_files.py recomputes
# it from labextension/ and fails when the sources changed without a rebuild.
# Written last, so a manifest only ever describes a completed build.
python3 "$REPO/tools/labextension_sources.py" "$EXT" >"$OUT/sources.sha256"

echo "built $(du -sh "$OUT" | cut -f1) into ${OUT#"$REPO"/}"
