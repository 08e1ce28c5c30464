#!/usr/bin/env bash
# The whole test suite on a fresh clone: installs what it needs, then runs pytest.
#   bash scripts/test.sh                        everything (what CI runs via .ci/run)
#   bash scripts/test.sh -m "not integration"   the quick loop: unit tests and doctests, in two processes
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [[ " $* " == *"not integration"* ]]; then
    # Pure-Python tests share nothing: spread them over two processes. The integration tests start
    # Flink clusters, brokers and servers of their own and run one at a time.
    set -- -n 2 "$@"
fi
exec .venv/bin/python -m pytest -q "$@"
