#!/usr/bin/env bash
# On the device: reassemble the carried wheels, install them, build the zoo, fine-tune the missing ground-truth
# cells in parallel workers (one ground-truth file each), run the CUDA tests beside them, pack results into $OUT.
set -u
REPO=$PWD; W=/root/w; G=/root/gt; mkdir -p $W $G
t0=$(date +%s)
cp .xfer/part_* .xfer/bundle.sha $W/ && cd $W && cat part_0* > bundle.tar && sha256sum -c bundle.sha || exit 3
tar xf bundle.tar && rm -f bundle.tar part_0*
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $W/whl/*.whl $W/zoowhl/*.whl 2>&1 | grep -v WARNING | tail -3
export PYTHONPATH=/tmp/site:$REPO HF_EMMS_CACHE=/root/cache HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
cd $REPO
python3 -c "import torch, transformers, huggingface_hub, datasets, hf_emms; print('torch', torch.__version__, 'transformers', transformers.__version__, 'hub', huggingface_hub.__version__, 'datasets', datasets.__version__, torch.cuda.get_device_name(0))" 2>&1 | tail -2
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > $G/gpu.txt
python3 benchmarks/quality.py --build-zoo /root/zoo --quiet 2>&1 | tail -2
echo "setup done after $(( $(date +%s) - t0 )) s"
STOP=$(date -u -d "+${GT_MINUTES:-6} min" +%H:%M)
for t in sst2 trec subj mpqa sms_spam banking77; do
  for fam in minilm mpnet; do
    if [ $fam = minilm ]; then models="minilm-1 minilm-3 minilm-6 minilm-random"; else models="mpnet-3 mpnet-6 mpnet-12 mpnet-random"; fi
    cp benchmarks/quality/ground_truth.json $G/$t-$fam.json
    timeout 480 python3 benchmarks/quality.py --finetune --device cuda --zoo /root/zoo --tasks $t --models $models \
      --seeds 0 1 2 --threads 1 --quiet --stop-by $STOP --ground-truth $G/$t-$fam.json > $G/$t-$fam.log 2>&1 &
  done
done
# cross-check: seed 0 of the cells already computed on the CPU, recomputed on the GPU into a fresh file
for half in "sst2 trec subj" "mpqa sms_spam banking77"; do
  f=$G/xcheck-${half%% *}.json
  timeout 480 python3 benchmarks/quality.py --finetune --device cuda --zoo /root/zoo --tasks $half \
    --models minilm-1 minilm-3 minilm-6 minilm-random --seeds 0 --threads 1 --quiet --stop-by $STOP --ground-truth $f > ${f%.json}.log 2>&1 &
done
timeout 300 python3 -m pytest -q -rs -p no:cacheprovider tests/test_gpu.py \
  "tests/test_stats.py::test_cuda_tensors_accumulate_on_the_gpu_and_agree_with_cpu" > $G/pytest.log 2>&1
tail -5 $G/pytest.log
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv >> $G/gpu.txt
wait
echo "all done after $(( $(date +%s) - t0 )) s"
tail -n 3 $G/*.log | cut -c1-200
tar czf $OUT/gt.tar.gz -C $G .
