#!/usr/bin/env bash
# Sets up .venv with phasekit installed in it; with --with-test-tools also installs, from Debian,
# the real programs the tests hand rendered files to (cloud-init, docker-compose, caddy,
# postgresql, redis-server). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

with_test_tools=false
for arg in "$@"; do
  case "$arg" in
    --with-test-tools) with_test_tools=true ;;
    *) echo "bootstrap.sh: unknown argument '$arg' (allowed: --with-test-tools)" >&2; exit 2 ;;
  esac
done

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
if $with_test_tools; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
  bash scripts/install-test-tools.sh
else
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
fi
