#!/usr/bin/env bash
# Install the JupyterLab extension's node dependencies and build it into jupyter_di/labextension,
# then link it into this Python environment's JupyterLab; the unit tests and the linters run too.
# Idempotent: `npm ci` runs only when package-lock.json changed since the last install; the build
# itself takes a few seconds.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/labextension"

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund
fi
npm run build:prod
npm test
# eslint (typescript-eslint's recommended rules) and prettier --check: any finding fails CI
npm run lint
# Put the fresh build where the package's install put it (share/jupyter/labextensions/jupyter-di),
# as a copy: a `develop` symlink there makes a later `pip install -e .` fail (pip writes through it).
dest="$(python -c 'import sys; print(sys.prefix)')/share/jupyter/labextensions/jupyter-di"
if [ -L "$dest" ]; then rm -f "$dest"; fi
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
cp -r "$root/jupyter_di/labextension" "$dest"
cp "$root/labextension/install.json" "$dest/install.json"
jupyter labextension list 2>&1 | grep -q "jupyter-di.*enabled.*OK" || {
    jupyter labextension list >&2
    echo "install_frontend.sh: the jupyter-di extension is not enabled" >&2
    exit 1
}
