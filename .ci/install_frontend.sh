#!/usr/bin/env bash
# Install the JupyterLab extension's node dependencies and build it into jupyter_di/labextension,
# then link it into this Python environment's JupyterLab.  Idempotent: `npm ci` runs only when
# package-lock.json changed since the last install; the build itself takes a few seconds.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/labextension"

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund
fi
npm run build:prod
npm test
# Point JupyterLab at the fresh build (a symlink; replaces a copy left by an editable install).
jupyter-builder develop --overwrite "$root" >/dev/null
jupyter labextension list 2>&1 | grep -q "jupyter-di.*enabled.*OK" || {
    jupyter labextension list >&2
    echo "install_frontend.sh: the jupyter-di extension is not enabled" >&2
    exit 1
}
