#!/usr/bin/env bash
# Here, before a device call: build what benchmarks/gpu/run.sh carries (both folders are git-ignored through
# .git/info/exclude, about 27 MB together).
#   .whl  constraints.txt's versions of the packages the device image lacks or holds older (its image, 2026-12-04:
#         transformers 5.17, huggingface_hub 1.33, no datasets), as x86-64 CPython 3.12 wheels, without dependencies
#   .gpu  SST-2's training file and the two zoo families' configs and tokenizer files (timing_zoo.py export)
# Run:  bash benchmarks/gpu/prepare.sh      (then: device call, carry [".whl", ".gpu"], bash benchmarks/gpu/run.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
pin() { grep -i "^$1==" constraints.txt || .venv/bin/python -m pip list --format=freeze 2>/dev/null | grep -i "^$1=="; }
wanted="transformers huggingface_hub datasets tokenizers httpx2 httpcore2 truststore dill multiprocess click hf-xet
        fsspec anyio idna regex"
specs=$(for p in $wanted; do pin "$p"; done)
.venv/bin/python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl $specs
mkdir -p .gpu/text
cp -r ../shared/data/text/sst2 .gpu/text/
.venv/bin/python benchmarks/gpu/timing_zoo.py export .gpu/families
du -sh .whl .gpu
