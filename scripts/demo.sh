#!/usr/bin/env bash
# Quick start: install, then run the whole pipeline offline on the bundled sample articles
# (SQLite + the built-in simulator, no API key) and print the run's cost summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/contentgen demo "$@"
