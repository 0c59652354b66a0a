#!/usr/bin/env bash
# Create argilla-server's own virtual environment for the embedded Argilla (`arbiter argilla up`).
#
# argilla-server 2.8 pins older FastAPI/pydantic than Arbiter, so it cannot share .venv. Its CLI
# breaks with click >= 8.2, hence the pin. Idempotent: when the environment already holds the
# wanted version it exits at once.
#
# Usage: scripts/setup_argilla.sh [VENV_DIR]      (default: var/argilla-venv)
# Env:   PYTHON (interpreter to build the venv with, default python3),
#        ARGILLA_SERVER_VERSION (default 2.8.0)
set -euo pipefail

cd "$(dirname "$0")/.."
VENV_DIR="${1:-var/argilla-venv}"
PYTHON="${PYTHON:-python3}"
VERSION="${ARGILLA_SERVER_VERSION:-2.8.0}"

installed_version() {
    "$VENV_DIR/bin/python" -c 'import importlib.metadata as m; print(m.version("argilla-server"))' 2>/dev/null || true
}

if [ -x "$VENV_DIR/bin/python" ] && [ "$(installed_version)" = "$VERSION" ]; then
    echo "argilla-server $VERSION already installed in $VENV_DIR"
    exit 0
fi

echo "creating $VENV_DIR with argilla-server $VERSION"
mkdir -p "$(dirname "$VENV_DIR")"
"$PYTHON" -m venv "$VENV_DIR"
"$VENV_DIR/bin/pip" install --quiet --disable-pip-version-check "argilla-server==$VERSION" "click<8.2"

# Fail here, not at `arbiter argilla up`, if the environment cannot import the server.
"$VENV_DIR/bin/python" -c 'import argilla_server, rq, uvicorn' >/dev/null
echo "argilla-server $(installed_version) installed in $VENV_DIR"
