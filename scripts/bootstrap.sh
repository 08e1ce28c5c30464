#!/usr/bin/env bash
# Creates .venv (Python 3.11) and installs the project with its test tools. Idempotent:
# a second run only re-checks. Needs Python 3.11 and Java 17 (for Flink) on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "error: Python 3.11 is required (PyFlink 2.3 supports it); found $("$PYTHON" --version 2>&1). Set PYTHON=/path/to/python3.11" >&2
    exit 1
fi
if ! java -version 2>&1 | grep -q 'version "\(1[7-9]\|2[0-9]\)'; then
    echo "error: Java 17+ is required by Flink; 'java -version' says: $(java -version 2>&1 | head -1)" >&2
    exit 1
fi

if [ ! -x .venv/bin/python ]; then
    echo "[bootstrap] creating .venv with $("$PYTHON" --version)"
    "$PYTHON" -m venv .venv
fi
STAMP=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$STAMP" ]; then
    echo "[bootstrap] installing the project and its dependencies (about 2 minutes the first time)"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[dev]'
    touch "$STAMP"
fi
.venv/bin/python scripts/fetch_deps.py
echo "[bootstrap] ready: .venv ($(.venv/bin/python -c 'import pyflink.version as v; print("apache-flink", v.__version__)'))"
