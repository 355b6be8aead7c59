#!/usr/bin/env bash
# Issue 19's GPU checks as one prepared run on a lent machine (the device tool runs it from the repository root, $OUT
# is the folder that comes back). What travels: the working tree, .whl (the versions of constraints.txt that the
# device image lacks: transformers, huggingface_hub, datasets, tokenizers, httpx2 and their small dependencies) and
# .gpu (SST-2's training file; the two zoo families' configs and tokenizer files, exported by timing_zoo.py).
# The real checkpoints (about 500 MB) do not fit the 64 MiB a call carries: timing_zoo.py rebuilds the demo zoo's
# architectures with random weights on the device; their seconds are real, their scores mean nothing.
# Steps run in order of importance, each under its own cap and one overall deadline, so that the results of the
# steps that finished come back even when a later one is cut short.
#   here first:   bash benchmarks/gpu/prepare.sh   (builds .whl and .gpu)
#   device call:  bash benchmarks/gpu/run.sh      (carry: .whl .gpu; timeout_s 600)
#   some steps:   STEPS="pytest overlap" GPU_RUN_SECONDS=270 bash benchmarks/gpu/run.sh
#   local smoke test of the script itself (CPU, tiny sizes):  SMOKE=1 OUT=/tmp/out PATH=.venv/bin:$PATH bash benchmarks/gpu/run.sh
set -u
REPO=$PWD
DEV=cuda N=6920 SAMPLES=1000 SCALE="1 8 32" MEMBERS="mpnet-12 mpnet-6 mpnet-3 mpnet-random minilm-6 minilm-3 minilm-1 minilm-random"
SOLVER=""
[ -n "${SMOKE:-}" ] && DEV=cpu N=300 SAMPLES=60 SCALE="1 2" MEMBERS="minilm-1 minilm-random" \
    SOLVER="--n 2000 --d1 64 --d2 64 --classes 10 --source-classes 20 --stream-n 4000 --repeats 1"

T0=$(date +%s)
DEADLINE=$((T0 + ${GPU_RUN_SECONDS:-540}))
R=${RESULTS:-/root/results}
mkdir -p $R
exec > >(tee $OUT/run.log) 2>&1
say() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
step() {  # step NAME CAP_SECONDS command...: run under min(CAP, time left to the deadline), log to $R/NAME.log
    local name=$1 cap=$2; shift 2
    if [ -n "${STEPS:-}" ] && [[ " $STEPS " != *" $name "* ]]; then return; fi  # STEPS="a b": only those steps
    local left=$((DEADLINE - $(date +%s) - 15))
    [ $left -lt $cap ] && cap=$left
    if [ $cap -lt 20 ]; then say "SKIPPED $name (no time left)"; return; fi
    say "start $name (cap $cap s)"
    timeout $cap "$@" > $R/$name.log 2>&1
    say "end $name: rc $? ; last lines:"
    [ "${TAIL:-6}" -gt 0 ] && tail -n ${TAIL:-6} $R/$name.log | cut -c1-220
    tar czf $OUT/results.tar.gz -C $R . 2>/dev/null  # what has finished comes back even if the call is cut short
}

[ -z "${SMOKE:-}" ] && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl 2>&1 \
    | grep -v -i warning | tail -3
export PYTHONPATH=/tmp/site:$REPO HF_EMMS_CACHE=${HF_EMMS_CACHE:-/root/cache} HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
[ -f ../shared/data/text/sst2/stsa.binary.train ] || { mkdir -p ../shared/data/text && cp -r .gpu/text/sst2 ../shared/data/text/; }
python3 -c "import torch, transformers, huggingface_hub, datasets, pyarrow, hf_emms
print('torch', torch.__version__, 'transformers', transformers.__version__, 'hub', huggingface_hub.__version__,
      'datasets', datasets.__version__, 'pyarrow', pyarrow.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0))" 2>&1 | tail -2
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader > $R/gpu.txt; cat $R/gpu.txt
nproc >> $R/gpu.txt
ZOO=${ZOO:-/root/zoo}
python3 benchmarks/gpu/timing_zoo.py build .gpu/families $ZOO --members $MEMBERS minilm-6 minilm-1 > $R/zoo.log 2>&1
say "timing zoo built: $(ls $ZOO | tr '\n' ' ')"

# 1. Correctness on CUDA: extraction, the out-of-memory halving, the device solve (10 problem flavours, both label
#    kinds) and a whole ranking with overlap. The bf16 test needs the real all-MiniLM-L6-v2 (not carried; it passed
#    on an H100 on 2026-11-24).
TAIL=4 step pytest 120 python3 -m pytest -q -rs -p no:cacheprovider tests/test_gpu.py tests/test_stats.py -k "gpu or cuda" \
    --deselect tests/test_gpu.py::test_auto_dtype_is_bfloat16_on_the_gpu_and_keeps_the_ranking
# 2. The ranking profile: 8 zoo members on 1,000 SST-2 sentences (bf16, layers="auto"), 1/8/32 candidates, overlap.
TAIL=0 step rank_profile 170 python3 benchmarks/rank_profile.py --device $DEV --zoo $ZOO --encoders $ZOO/minilm-6 \
    --members $MEMBERS --samples $SAMPLES --scale $SCALE --no-layers --json $R/rank_profile_h200.json --plot $R/rank_profile_h200.png
grep -sE '^\||^##|^largest|^once' $R/rank_profile.log | head -50
# 2a. A process's first CUDA work and F-label encoding, split (the first ranking's 14 extra seconds on the H200).
TAIL=9 step cold_start 40 python3 benchmarks/gpu/cold_start.py --encoder $ZOO/minilm-6 --device $DEV --json $R/cold_start.json
# 2b. Overlap alone, the pair twice (alternating), with the scores' differences.
TAIL=0 step overlap 120 python3 benchmarks/rank_profile.py --device $DEV --zoo $ZOO --encoders $ZOO/minilm-6 \
    --members $MEMBERS --samples $SAMPLES --skip-profile --scale --no-layers --overlap-repeats 2 --json $R/overlap_h200.json
grep -sE '^\||^##' $R/overlap.log | head -12
# 3. Fine-tuning the same 8 once on the 1,000-row SST-2 task (the ground truth's recipe, seed 0): what scoring replaces.
TAIL=10 step finetune 130 python3 benchmarks/quality.py --finetune --device $DEV --zoo $ZOO --tasks sst2 --models $MEMBERS \
    --seeds 0 --quiet --ground-truth $R/finetune_h200.json
# 4. Extraction against the hand-written loop (all 6,920 SST-2 training sentences), bf16 then float32.
TAIL=12 step extraction_bf16 70 python3 benchmarks/extraction.py --device $DEV --model $ZOO/minilm-6 --n $N --naive-n 200 \
    --batch-size 256 --repeats 3 --json $R/extraction_h200_bf16.json
# 5. The solver on the device against the official one-pass code (CPU numpy) at N=20k, D1=1024, K=3, C=100.
TAIL=30 step solver 110 python3 benchmarks/solver.py --device $DEV $SOLVER --json $R/solver_h200.json
TAIL=12 step extraction_auto 50 python3 benchmarks/extraction.py --device $DEV --model $ZOO/minilm-6 --n $N --naive-n 50 \
    --batch-size 256 --repeats 3 --layers auto --json $R/extraction_h200_bf16_auto.json
TAIL=12 step solve_where 60 python3 benchmarks/gpu/solve_where.py --json $R/solve_where_h200.json
# 6. Where extraction's GPU seconds go (torch.profiler), last layer and layers="auto".
TAIL=3 step trace_last 40 python3 benchmarks/gpu/trace_extraction.py --model $ZOO/minilm-6 --n $N --json $R/trace_last.json
TAIL=3 step trace_auto 40 python3 benchmarks/gpu/trace_extraction.py --model $ZOO/minilm-6 --n $N --layers auto \
    --json $R/trace_auto.json
TAIL=6 step extraction_f32 50 python3 benchmarks/extraction.py --device $DEV --model $ZOO/minilm-6 --n $N --naive-n 50 \
    --batch-size 256 --repeats 3 --dtype float32 --json $R/extraction_h200_f32.json

nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv >> $R/gpu.txt
tar czf $OUT/results.tar.gz -C $R .
say "all done"
