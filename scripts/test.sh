#!/usr/bin/env bash
# Install with dev extras, then lint, type-check and run the whole test suite
# (SQLite always; PostgreSQL at CONTENTGEN_TEST_PG_URL or 127.0.0.1:5432, required when CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
bash scripts/browser.sh
.venv/bin/ruff format --check .
.venv/bin/ruff check .
.venv/bin/mypy
# Two processes (pytest-xdist; each test file stays in one, so its fixtures are shared);
# CONTENTGEN_TEST_WORKERS=0 runs the suite serially in this process.
.venv/bin/python -m pytest -q -p no:cacheprovider -n "${CONTENTGEN_TEST_WORKERS:-2}" --dist loadfile "$@"
