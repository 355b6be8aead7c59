"""Run under `torchrun --nproc_per_node 2` with ACCELERATE_USE_CPU=1: every rank extracts the same candidates from
the same dataset with ``extract_many`` in each parallel mode, and saves what it got, for the test to compare with a
one-process run. Also run as a plain process (one rank) by the resume test, which kills it midway.
Argument: a JSON file {"out", "dataset", "candidates", "embeddings", "runs": [[mode, batch_size, target], ...],
"cache_dir" (optional)}."""

import json
import sys
from pathlib import Path

import datasets
import numpy as np
from accelerate import PartialState

from hf_emms.features import extract_many

config = json.loads(Path(sys.argv[1]).read_text())
state = PartialState(cpu=True)  # under torchrun: a gloo process group of every rank
rank = state.process_index
out = Path(config["out"])
ds = datasets.load_from_disk(config["dataset"])
embeddings = np.load(config["embeddings"], mmap_mode="r") if config.get("embeddings") else None  # read by row
for mode, batch_size, target in config["runs"]:
    targets = {"label_column": "label"} if target == "labels" else {"label_embeddings": embeddings}
    results = extract_many(
        config["candidates"], ds, mode=mode, text_column="text", batch_size=batch_size, progress=False,
        cache_dir=config.get("cache_dir"), **targets,
    )
    for i, result in enumerate(results.values()):
        stem = out / f"{mode}-{batch_size}-{target}-{i}-rank{rank}"
        result.stats.save(stem.with_suffix(".safetensors"))
        stem.with_suffix(".json").write_text(json.dumps(result.record.to_dict()))
print(f"rank {rank}/{state.num_processes} done", flush=True)
state.destroy_process_group()  # exiting with gloo threads alive can abort
