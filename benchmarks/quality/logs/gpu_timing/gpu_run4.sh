#!/usr/bin/env bash
# On the device: the two mpnet-size models' uncontended fine-tuning times (seed 0, every task), added to timing_h100.json.
set -u
REPO=$PWD; W=/root/w; t0=$(date +%s)
cp .xfer/part_* .xfer/bundle.sha $W/ && cd $W && cat part_0* > bundle.tar && sha256sum -c bundle.sha || exit 3
tar xf bundle.tar && rm -f bundle.tar part_0*
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $W/whl/*.whl $W/zoowhl/*.whl 2>&1 | grep -v WARNING | tail -3
export PYTHONPATH=/tmp/site:$REPO HF_EMMS_CACHE=/root/cache HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
cd $REPO
python3 benchmarks/quality.py --build-zoo /root/zoo --models mpnet-random mpnet-12 --quiet > /dev/null 2>&1
echo "setup done after $(( $(date +%s) - t0 )) s"
cp .xfer/timing_h100.json $OUT/timing_h100.json
python3 benchmarks/quality.py --finetune --device cuda --zoo /root/zoo --tasks sst2 trec subj mpqa sms_spam banking77 \
  --models mpnet-random mpnet-12 --seeds 0 --quiet --stop-by $(date -u -d "+5 min" +%H:%M) --ground-truth $OUT/timing_h100.json 2>&1 | tee $OUT/timing_h100_mpnet.log | tail -16
echo "all done after $(( $(date +%s) - t0 )) s"
