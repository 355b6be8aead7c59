"""Run under `torchrun --nproc_per_node 2` with ACCELERATE_USE_CPU=1: every rank extracts the same candidates from
the same dataset with ``extract_many`` in each parallel mode, and saves what it got, for the test to compare with a
one-process run. Also run as a plain process (one rank) by the resume test, which kills it midway.
Argument: a JSON file {"out", "dataset", "candidates", "embeddings", "runs": [[mode, batch_size, target], ...],
"cache_dir" (optional), "fixed" (optional)}.

``"fixed"``: a ``.npz`` of precomputed float64 features ``x`` (N, D1), class ids ``labels`` (N,) and F-labels
``embeddings`` (N, D2, K). Every rank folds its shard of them into ``FeatureStats`` and all-reduces, as the
extraction does with a model's features (:func:`fixed_stats`), so the test can check the reduction itself on inputs
that are identical in every process, with no forward pass whose float32 rounding could differ between them.
"""

import json
import sys
from pathlib import Path

import numpy as np

FIXED_BATCH = 7  # several updates per shard, the first one fixing each process's shift (as the model's batches do)


def fixed_stats(fixed: dict, target: str, rank: int, world_size: int):
    """The statistics of this rank's shard of fixed features, summed across ranks: extraction's reduction path.

    The shard is ``hf_emms.features.sampling.shard`` of the row ids, as extraction takes it, then reversed (extraction
    reorders each shard by text length; the sums must not depend on the order). Batches pass the dataset row ids, so
    cross-validation folds follow the rows, not the shard.
    """
    from hf_emms import FeatureStats
    from hf_emms.features.sampling import shard

    rows = shard(np.arange(len(fixed["x"])), rank, world_size)[::-1]
    stats = FeatureStats()
    for lo in range(0, len(rows), FIXED_BATCH):
        ids = rows[lo : lo + FIXED_BATCH]
        target_arg = ({"labels": fixed["labels"][ids]} if target == "labels"
                      else {"label_embeddings": fixed["embeddings"][ids]})
        stats.update(fixed["x"][ids], sample_ids=ids, **target_arg)
    return stats.all_reduce()  # a no-op without a process group (one process)


def main() -> None:
    import datasets
    from accelerate import PartialState

    from hf_emms.features import extract_many

    config = json.loads(Path(sys.argv[1]).read_text())
    state = PartialState(cpu=True)  # under torchrun: a gloo process group of every rank
    rank = state.process_index
    out = Path(config["out"])
    if config.get("fixed"):
        fixed = dict(np.load(config["fixed"]))
        for target in ("labels", "embeddings"):
            fixed_stats(fixed, target, rank, state.num_processes).save(out / f"fixed-{target}-rank{rank}.safetensors")
    ds = datasets.load_from_disk(config["dataset"])
    embeddings = np.load(config["embeddings"], mmap_mode="r") if config.get("embeddings") else None  # read by row
    for mode, batch_size, target in config["runs"]:
        targets = {"label_column": "label"} if target == "labels" else {"label_embeddings": embeddings}
        results = extract_many(
            config["candidates"], ds, mode=mode, text_column="text", batch_size=batch_size, progress=False,
            cache_dir=config.get("cache_dir"), layers=config.get("layers", "last"), **targets,
        )
        for i, result in enumerate(results.values()):
            stem = out / f"{mode}-{batch_size}-{target}-{i}-rank{rank}"
            result.stats.save(stem.with_suffix(".safetensors"))
            stem.with_suffix(".json").write_text(json.dumps(result.record.to_dict()))
    print(f"rank {rank}/{state.num_processes} done", flush=True)
    state.destroy_process_group()  # exiting with gloo threads alive can abort


if __name__ == "__main__":
    main()
