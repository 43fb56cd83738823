#!/usr/bin/env bash
# Static checks of deploy/ (compose, Helm chart, Dockerfiles, systemd units, Grafana JSON) and of
# the port table in docs/operations.md. Needs bash and python3 (with PyYAML, installed from
# PyPI if missing). Uses helm, docker compose / docker-compose and systemd-analyze when they
# are installed; without helm the chart is rendered by tests/deploy/helmrender.py.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! python3 -c 'import yaml' 2>/dev/null; then
  echo "installing PyYAML"
  python3 -m pip install --quiet pyyaml >/dev/null 2>&1 \
    || python3 -m pip install --quiet --break-system-packages pyyaml >/dev/null
fi

# No __pycache__ in the work tree.
export PYTHONDONTWRITEBYTECODE=1
exec python3 tests/deploy/check.py
