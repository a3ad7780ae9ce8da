#!/usr/bin/env bash
# Create .venv (if missing) and install ContentGen with the pinned versions of constraints.txt.
# Usage: bash scripts/setup.sh [dev]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
extras=""
[ "${1:-}" = "dev" ] && extras="[dev]"
.venv/bin/python -m pip install -q -c constraints.txt -e ".${extras}" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import pipeline" # fail here, not later, if the install did not work
