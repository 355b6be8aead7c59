"""Run under `torchrun --nproc_per_node N` with ACCELERATE_USE_CPU=1: accelerate sets up the process
group, every rank streams its shard of one dataset, all_reduce merges, rank 0 saves the result."""

import sys

import numpy as np
from accelerate import Accelerator

from hf_emms import FeatureStats

accelerator = Accelerator(cpu=True)
rank, world = accelerator.process_index, accelerator.num_processes
rng = np.random.default_rng(0)
x = rng.standard_normal((1000, 9)) + 1e4  # the same full dataset on every rank...
labels = np.arange(1000) % 4
stats = FeatureStats()
for i in range(rank * 64, 1000, world * 64):  # ...of which each rank sees every world-th batch
    stats.update(x[i : i + 64], labels=labels[i : i + 64], sample_ids=np.arange(i, min(i + 64, 1000)))
stats.all_reduce()
if accelerator.is_main_process:
    stats.save(sys.argv[1])
print(f"rank {rank}/{world} done, n={stats.n}")
accelerator.end_training()  # destroys the process group: exiting with gloo threads alive can abort
