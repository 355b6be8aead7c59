#!/usr/bin/env bash
# On the device: uncontended timings. Fine-tune every zoo model once (seed 0) on as many tasks as fit, one process
# alone on the GPU; then the quality report (scoring through hf_emms.rank on the GPU) for all six tasks.
set -u
REPO=$PWD; W=/root/w; t0=$(date +%s)
cp .xfer/part_* .xfer/bundle.sha $W/ && cd $W && cat part_0* > bundle.tar && sha256sum -c bundle.sha || exit 3
tar xf bundle.tar && rm -f bundle.tar part_0*
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $W/whl/*.whl $W/zoowhl/*.whl 2>&1 | grep -v WARNING | tail -3
export PYTHONPATH=/tmp/site:$REPO HF_EMMS_CACHE=/root/cache HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
cd $REPO
python3 benchmarks/quality.py --build-zoo /root/zoo --quiet > /dev/null 2>&1
echo "setup done after $(( $(date +%s) - t0 )) s"
python3 benchmarks/quality.py --finetune --device cuda --zoo /root/zoo --tasks sst2 trec subj mpqa sms_spam banking77 \
  --models minilm-1 minilm-3 minilm-random minilm-6 mpnet-3 mpnet-6 mpnet-random mpnet-12 --seeds 0 --quiet \
  --stop-by $(date -u -d "+${FT_MINUTES:-4} min" +%H:%M) --ground-truth $OUT/timing_h100.json 2>&1 | tee $OUT/timing_h100.log | tail -4
echo "fine-tuning done after $(( $(date +%s) - t0 )) s"
timeout $(( 570 - ($(date +%s) - t0) )) python3 benchmarks/quality.py --zoo /root/zoo --quiet --out $OUT/quality_h100.json 2>&1 | grep -v "Warning\|warn" | tail -40
echo "all done after $(( $(date +%s) - t0 )) s"
