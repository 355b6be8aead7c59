"""Zoo members fine-tuned on a source task, as most Hub checkpoints are (issue 18's "wider, harder zoo").

A source member is a zoo checkpoint fine-tuned on one of the benchmark's own tasks with the ground-truth recipe
(``finetune.RECIPE``, seed 0, the task's 1,000 training rows), its encoder saved as a safetensors folder (the head is
dropped: a candidate is an encoder). It is a candidate for every *other* task, never for its source task: there it
would be scored on rows it was trained on. Related source tasks should help (TREC's questions for a question task),
unrelated ones hurt; the benchmark measures which.

==================  ===========  ===========  ==========================================
member              base         source task  why
==================  ===========  ===========  ==========================================
minilm-6-banking77  minilm-6     banking77    77 fine-grained intents: a narrow domain
mpnet-6-trec        mpnet-6      trec         question types: syntax more than topic
mpnet-12-sms        mpnet-12     sms_spam     a saturated binary task: little to learn
==================  ===========  ===========  ==========================================

Each folder holds ``source.json``: base, source task, seed, recipe, the source task's test metric and the weights'
sha256, so a rebuild on another machine (CPU rounding differs) is recognisably a different checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from finetune import RECIPE, Recipe, environment, finetune
from truth_file import GroundTruthError

from hf_emms._io import atomic_dir

SOURCES: dict[str, tuple[str, str]] = {  # member -> (base zoo member, source task)
    "minilm-6-banking77": ("minilm-6", "banking77"),
    "mpnet-6-trec": ("mpnet-6", "trec"),
    "mpnet-12-sms": ("mpnet-12", "sms_spam"),
}
SEED = 0


def source_task(model: str) -> str | None:
    """The task a zoo member was fine-tuned on (None for a pretrained one): it is never a candidate there."""
    return SOURCES[model][1] if model in SOURCES else None


def build_source_member(name: str, zoo_dir: str | os.PathLike, *, task_root: str | os.PathLike,
                        build_base: Callable[[list[str]], dict[str, Path]], device: str = "cpu",
                        recipe: Recipe = RECIPE, progress: bool = True) -> Path:
    """Fine-tune ``name``'s base on its source task and save the encoder as ``zoo_dir/name`` (kept when built).

    Parameters
    ----------
    name : str
        One of ``SOURCES``.
    zoo_dir : path
        The zoo folder; the base member is built there first when missing (``build_base``).
    task_root : path
        Holds the source task's folder.
    build_base : callable (names) -> {name: folder}

    Returns
    -------
    Path
        The member's folder: ``config.json``, ``model.safetensors``, the tokenizer, ``source.json``.
    """
    if name not in SOURCES:
        raise GroundTruthError(f"{name!r} is not a source-task member; they are {sorted(SOURCES)}.")
    dest = Path(zoo_dir) / name
    if (dest / "source.json").is_file():
        return dest
    base, task = SOURCES[name]
    base_dir = build_base([base])[base]

    def build(tmp: Path) -> None:
        run = finetune(base_dir, Path(task_root) / task, seed=SEED, recipe=recipe, device=device, progress=progress,
                       save_to=tmp)
        weights = hashlib.sha256((Path(tmp) / "model.safetensors").read_bytes()).hexdigest()
        info = {"base": base, "source_task": task, "seed": SEED, "recipe": asdict(recipe),
                "source_metric": {run["metric"]: run["finetune_acc"]}, "seconds": run["seconds"],
                "model_sha256": weights, "env": environment(device)}
        (Path(tmp) / "source.json").write_text(json.dumps(info, indent=1) + "\n")

    atomic_dir(dest, build)
    return dest
