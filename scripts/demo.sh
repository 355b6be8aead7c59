#!/usr/bin/env bash
# Set everything up, then run the main job. Until the end-to-end Hub ranking lands, that is the
# solver demo: rank candidate features for a task, streamed in batches.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python examples/solver_demo.py "$@"
