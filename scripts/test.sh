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
# Serially by default. CONTENTGEN_TEST_WORKERS=2 runs two processes (pytest-xdist, each test
# file in one): about half the time, but a short database outage test once hung there on a
# transaction its cut connection left open (notes of stop 25).
.venv/bin/python -m pytest -q -p no:cacheprovider -n "${CONTENTGEN_TEST_WORKERS:-0}" --dist loadfile "$@"
