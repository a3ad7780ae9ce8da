#!/usr/bin/env bash
# Quick start: install, then run the whole pipeline offline on the bundled sample articles
# (SQLite + the built-in simulator, no API key) and print the run's cost summary.
# The demo runs in the current directory (its database, contentgen-demo.db, is left there), so
# the commands it suggests next work from here as printed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/setup.sh"
exec "$root/.venv/bin/contentgen" demo "$@"
