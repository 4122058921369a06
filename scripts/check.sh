#!/usr/bin/env bash
# Every check CI runs: lint, types, the import contract, tests. Usage: scripts/check.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
"$PY" -m ruff check sorter firmware_bridge calibration scripts tests
"$PY" -m mypy
"$PY" scripts/check_imports.py
"$PY" -m pytest -q "$@"
