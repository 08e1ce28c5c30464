#!/usr/bin/env bash
# The embedded default: installs what it needs, then runs the job on a local MiniCluster over
# the built-in generator, with a local sqlite MLflow store under out/. Extra args go to the job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m jobs.online_learning --config conf/local.yaml "$@"
