"""Ground truth for the quality benchmark: full fine-tuning and a linear probe of each checkpoint on each task.

The recipe (``RECIPE``, one for every checkpoint and task, stored with the results):
  model        the checkpoint's encoder (``AutoModel``), masked mean pooling of ``last_hidden_state``, and a linear
               head (``torch.nn.Linear(width, classes)``, PyTorch's default init under the run's seed)
  training     every parameter trained; AdamW (weight decay 0.01, not on biases/LayerNorm), learning rate 5e-5 for
               the encoder and 1e-3 for the freshly initialised head, linear warm-up over the first 10% of steps
               then linear decay to 0; 3 epochs over the 1,000 training rows, batch 16, shuffled by the seed;
               dropout as in the checkpoint's config; float32; texts truncated to 128 tokens
  metric       accuracy on the test rows after the last epoch (no early stopping, no model selection)
  pairs        a text-pair task (``task.json``) is encoded jointly, ``tokenizer(a, b, truncation="longest_first")``
  regression   a regression task (``task.json``: SICK relatedness) has a one-output head trained with the mean squared
               error on the training targets standardised by their mean and std; its metric is Pearson's r between
               predictions and test targets, stored in the same ``finetune_acc`` field (each run names its
               ``metric``); everything else as above
  seeds        0, 1, 2 (head init, batch order, dropout); the mean and the spread (population std) are reported
  probe        secondary column: L2-regularised logistic regression (sklearn, C=1, lbfgs) on standardised frozen
               mean-pooled features of the pretrained encoder (regression: ridge, its alpha by sklearn's efficient
               leave-one-out over 10^-2..10^4, then Pearson's r); deterministic, so computed once per (task, model)

Storage (``truth_file.py``): one JSON file (the ground-truth file), ``{task: {model: {"finetune_acc", "finetune_std",
"seeds", "seconds", "probe_acc", "probe_seconds", "runs": [{"seed", "finetune_acc", "seconds", "steps", "log",
"env"}]}}}`` plus
``"_meta"`` (format, recipe): a model's ``finetune_acc`` and ``finetune_std`` are the mean and population std over its
runs, its ``seconds`` the mean wall time of a run (loading, training and testing; the probe apart); each run's
``env`` names the library versions, device and torch threads it ran with (timings depend on them). Every
cell (task, model, seed) is written as soon as it finishes, by re-reading the file, adding the cell and renaming a
temporary file into place: a run killed mid-cell leaves the file as it was, and the next run resumes with the
cells that are missing. One writer at a time (``--finetune`` takes a lock file beside the ground-truth file); to
use many (processes sharing a GPU, machines), give each its own file and merge them (``--merge``).
"""

from __future__ import annotations

import math
import os
import platform
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from task_splits import read_jsonl, read_task_info
from truth_file import (
    FORMAT, META, GroundTruthError, _device_kind, _lock, add_cell, has_cell, load_ground_truth, ran_on,
)


@dataclass(frozen=True)
class Recipe:
    """The fine-tuning recipe; every field is stored with the results it produced."""

    encoder_lr: float = 5e-5
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.1
    epochs: int = 3
    batch_size: int = 16
    max_length: int = 128
    pooling: str = "mean"
    probe_c: float = 1.0


RECIPE = Recipe()


def environment(device: str) -> dict[str, Any]:
    """What a run ran on: library versions, machine, device, torch threads (stored with each run)."""
    import sklearn
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "sklearn": sklearn.__version__, "numpy": np.__version__, "platform": platform.platform(),
            "cpus": os.cpu_count(), "device": str(device), "torch_threads": torch.get_num_threads()}


# ---------------------------------------------------------------------------------------------- model pieces
def _label_ids(train_labels: Sequence[Any], test_labels: Sequence[Any]) -> tuple[list[int], list[int], list[Any]]:
    classes = sorted(set(train_labels), key=str)
    index = {c: i for i, c in enumerate(classes)}
    unseen = sorted({str(c) for c in test_labels} - {str(c) for c in classes})
    if unseen:
        raise GroundTruthError(f"test labels {unseen} never occur in train.jsonl; a classifier cannot predict them.")
    return [index[c] for c in train_labels], [index[c] for c in test_labels], classes


def _mean_pool(hidden, mask):
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def _encode(tokenizer, texts: Sequence[Any], max_length: int, device: str) -> dict[str, Any]:
    """Tokenised batch on ``device``; (first, second) pairs through the tokenizer's own pair encoding."""
    pair = bool(texts) and isinstance(texts[0], tuple)
    args = ([a for a, _ in texts], [b for _, b in texts]) if pair else (list(texts),)
    encoded = tokenizer(*args, padding=True, truncation="longest_first" if pair else True, max_length=max_length,
                        return_tensors="pt")
    return {k: v.to(device) for k, v in encoded.items()}


def _length(text: Any) -> int:
    return sum(map(len, text)) if isinstance(text, tuple) else len(text)


def _pearson(predicted: Any, target: Any) -> float:
    return float(np.corrcoef(np.asarray(predicted, float), np.asarray(target, float))[0, 1])


def _pooled(encoder, tokenizer, texts: Sequence[Any], max_length: int, device: str, batch_size: int = 64) -> Any:
    """Mean-pooled features (n, width) in the texts' order; batches formed by length so padding is small."""
    import torch

    order = np.argsort([_length(t) for t in texts], kind="stable")
    out = torch.empty((len(texts), encoder.config.hidden_size))
    with torch.inference_mode():
        for lo in range(0, len(texts), batch_size):
            idx = order[lo:lo + batch_size]
            batch = _encode(tokenizer, [texts[i] for i in idx], max_length, device)
            pooled = _mean_pool(encoder(**batch).last_hidden_state, batch["attention_mask"])
            out[torch.as_tensor(idx)] = pooled.float().cpu()
    return out


def _load(model_dir: Path, device: str):
    from transformers import AutoModel, AutoTokenizer

    return AutoModel.from_pretrained(model_dir).to(device), AutoTokenizer.from_pretrained(model_dir)


def linear_probe(model_dir: str | os.PathLike, task_dir: str | os.PathLike, *, recipe: Recipe = RECIPE,
                 device: str = "cpu") -> dict[str, Any]:
    """Test accuracy of a logistic regression on the frozen encoder's mean-pooled features (regression tasks: Pearson's
    r of a ridge regression).

    Returns
    -------
    dict
        ``probe_acc`` and ``probe_seconds``.
    """
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    start = time.perf_counter()
    (train_x, train_y), (test_x, test_y) = (read_jsonl(Path(task_dir) / f"{s}.jsonl") for s in ("train", "test"))
    regression = read_task_info(task_dir)["kind"] == "regression"
    if not regression:
        train_y, test_y, _ = _label_ids(train_y, test_y)
    encoder, tokenizer = _load(Path(model_dir), device)
    encoder.eval()
    features = [_pooled(encoder, tokenizer, x, recipe.max_length, device).numpy() for x in (train_x, test_x)]
    model = RidgeCV(alphas=np.logspace(-2, 4, 13)) if regression else LogisticRegression(C=recipe.probe_c,
                                                                                        max_iter=2000)
    clf = make_pipeline(StandardScaler(), model)
    clf.fit(features[0], train_y)
    predicted = clf.predict(features[1])
    acc = _pearson(predicted, test_y) if regression else float(np.mean(predicted == np.asarray(test_y)))
    return {"probe_acc": acc, "probe_seconds": time.perf_counter() - start}


def finetune(model_dir: str | os.PathLike, task_dir: str | os.PathLike, *, seed: int, recipe: Recipe = RECIPE,
             device: str = "cpu", progress: bool = True, save_to: str | os.PathLike | None = None) -> dict[str, Any]:
    """Fine-tune encoder + mean pooling + linear head on ``train.jsonl``; accuracy on ``test.jsonl`` (regression
    tasks: Pearson's r).

    Parameters
    ----------
    model_dir : path
        A Hugging Face checkpoint folder (safetensors; no remote code).
    task_dir : path
        Holds ``train.jsonl`` and ``test.jsonl`` (``{"text", "label"}`` lines, or text pairs), and ``task.json``.
    seed : int
        Seeds the head's init, the batch order and dropout.
    recipe : Recipe
    device : str
    progress : bool
        A progress bar over the optimisation steps.
    save_to : path, optional
        Save the fine-tuned encoder (safetensors, without the head) and the tokenizer into this folder.

    Returns
    -------
    dict
        ``seed``, ``finetune_acc`` (the task's metric), ``metric``, ``seconds`` (wall time of the whole cell: loading,
        training, testing), ``steps``, ``log`` (one line per epoch: mean training loss and seconds).
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    start = time.perf_counter()
    (train_x, train_y), (test_x, test_y) = (read_jsonl(Path(task_dir) / f"{s}.jsonl") for s in ("train", "test"))
    regression = read_task_info(task_dir)["kind"] == "regression"
    if regression:  # standardised targets: one learning rate suits any label scale
        mean, std = float(np.mean(train_y)), float(np.std(train_y)) or 1.0
        train_ids, outputs = [(y - mean) / std for y in train_y], 1
    else:
        train_ids, test_ids, classes = _label_ids(train_y, test_y)
        outputs = len(classes)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    encoder, tokenizer = _load(Path(model_dir), device)
    head = torch.nn.Linear(encoder.config.hidden_size, outputs).to(device)
    no_decay = [p for n, p in encoder.named_parameters() if n.endswith("bias") or "LayerNorm" in n or "layer_norm" in n]
    decay = [p for p in encoder.parameters() if all(p is not q for q in no_decay)]
    optimizer = torch.optim.AdamW([
        {"params": decay, "lr": recipe.encoder_lr, "weight_decay": recipe.weight_decay},
        {"params": no_decay, "lr": recipe.encoder_lr, "weight_decay": 0.0},
        {"params": [head.weight], "lr": recipe.head_lr, "weight_decay": recipe.weight_decay},
        {"params": [head.bias], "lr": recipe.head_lr, "weight_decay": 0.0},
    ])
    per_epoch = math.ceil(len(train_x) / recipe.batch_size)
    steps = per_epoch * recipe.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(recipe.warmup * steps), steps)
    generator = torch.Generator().manual_seed(seed)
    labels = torch.as_tensor(train_ids, dtype=torch.float32 if regression else torch.long)
    log = []
    bar = tqdm(total=steps, desc=f"fine-tune {Path(model_dir).name} on {Path(task_dir).name} (seed {seed})",
               unit="step", disable=not progress, leave=False)
    encoder.train()
    for epoch in range(recipe.epochs):
        t0, losses = time.perf_counter(), []
        for idx in torch.randperm(len(train_x), generator=generator).split(recipe.batch_size):
            batch = _encode(tokenizer, [train_x[i] for i in idx], recipe.max_length, device)
            logits = head(_mean_pool(encoder(**batch).last_hidden_state, batch["attention_mask"]))
            if regression:
                loss = torch.nn.functional.mse_loss(logits.squeeze(-1), labels[idx].to(device))
            else:
                loss = torch.nn.functional.cross_entropy(logits, labels[idx].to(device))
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            bar.update()
        seconds = time.perf_counter() - t0
        log.append(f"epoch {epoch + 1}/{recipe.epochs}: train loss {np.mean(losses):.4f} ({seconds:.1f} s)")
    bar.close()
    encoder.eval()
    with torch.inference_mode():
        pooled = _pooled(encoder, tokenizer, test_x, recipe.max_length, device).to(device)
        out = head(pooled).float().cpu().numpy()
    if regression:
        metric, acc = "pearson", _pearson(out[:, 0], test_y)
    else:
        metric, acc = "accuracy", float(np.mean(out.argmax(-1) == np.asarray(test_ids)))
    log.append(f"test {metric} {acc:.4f} on {len(test_x)} rows")
    if save_to is not None:
        encoder.to("cpu").save_pretrained(save_to, safe_serialization=True)
        tokenizer.save_pretrained(save_to)
    return {"seed": seed, "finetune_acc": acc, "metric": metric, "seconds": time.perf_counter() - start,
            "steps": steps, "log": log}


# ---------------------------------------------------------------------------------------------- running cells
def plan(tasks: Sequence[str], models: Sequence[str], seeds: Sequence[int]) -> list[tuple[str, str, int]]:
    """Cells in the order to run them: seed-major, then task, then model (the order given)."""
    return [(t, m, s) for s in seeds for t in tasks for m in models]


def run_cells(cells: Sequence[tuple[str, str, int]], *, ground_truth: str | os.PathLike,
              task_root: str | os.PathLike, zoo: dict[str, Path], recipe: Recipe = RECIPE, device: str = "cpu",
              deadline: float | None = None, estimate: Callable[[str, str], float] | None = None,
              progress: bool = True, say: Callable[[str], None] = print) -> list[tuple[str, str, int]]:
    """Run the missing cells, each written to ``ground_truth`` as it finishes; returns the cells run.

    Parameters
    ----------
    cells : sequence of (task, model, seed)
    ground_truth : path
        The ground-truth file (created when absent). A lock file ``<file>.lock`` keeps a second writer out.
    task_root : path
        Holds ``<task>/train.jsonl`` and ``<task>/test.jsonl``.
    zoo : dict of str to Path
        Model name -> checkpoint folder.
    deadline : float, optional
        ``time.time()`` by which every started cell must be finished: a cell whose estimated duration does not
        fit is not started.
    estimate : callable (task, model) -> seconds, optional
        Expected duration of a cell; default: 1.5 x the longest finished cell of that model on any task, or for a
        model with none, of any model scaled by parameter count (0 when nothing has run: the first cell starts).
        Only cells run on the same kind of device count: a CPU minute says nothing about a GPU.
    """
    path = Path(ground_truth)
    lock = _lock(path)
    done = []
    try:
        meta = {"format": FORMAT, "recipe": asdict(recipe)}
        for task, model, seed in cells:
            data = load_ground_truth(path) if path.exists() else {}
            if has_cell(data, task, model, seed):
                continue
            if model not in zoo:
                raise GroundTruthError(f"{model!r} is not in the zoo given ({sorted(zoo)}).")
            expected = (estimate or _estimate_from(data, zoo, device))(task, model)
            if deadline is not None and time.time() + expected > deadline:
                say(f"{task}/{model}/seed {seed}: not started (about {expected:.0f} s, past the deadline)")
                continue
            task_dir = Path(task_root) / task
            probe = None
            if "probe_acc" not in data.get(task, {}).get(model, {}):
                probe = linear_probe(zoo[model], task_dir, recipe=recipe, device=device)
            run = finetune(zoo[model], task_dir, seed=seed, recipe=recipe, device=device, progress=progress)
            run["env"] = environment(device)
            add_cell(path, task, model, run, probe=probe, meta=meta)
            done.append((task, model, seed))
            say(f"{task}/{model}/seed {seed}: fine-tuned {run['metric']} {run['finetune_acc']:.4f} in "
                f"{run['seconds']:.0f} s"
                + (f"; probe {probe['probe_acc']:.4f} in {probe['probe_seconds']:.0f} s" if probe else ""))
    finally:
        os.unlink(lock)
    return done


def parameter_count(model_dir: str | os.PathLike) -> int:
    """Parameters of a checkpoint, from its safetensors headers (nothing is loaded)."""
    from safetensors import safe_open

    total = 0
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(f, framework="np") as st:
            total += sum(math.prod(st.get_slice(k).get_shape()) for k in st.keys())
    return total


def _estimate_from(data: dict[str, Any], zoo: dict[str, Path], device: str = "cpu") -> Callable[[str, str], float]:
    """1.5 x the slowest finished cell of the model; for a model with none, of any model scaled by parameters.
    Only runs on the same kind of device (``cpu``, ``cuda``) are looked at."""
    sizes: dict[str, int] = {}

    def size(model: str) -> int:
        if model not in sizes:
            sizes[model] = parameter_count(zoo[model]) if model in zoo else 0
        return sizes[model]

    def estimate(task: str, model: str) -> float:
        seen = [(m, r["seconds"] + e.get("probe_seconds", 0.0)) for t, ms in data.items() if t != META
                for m, e in ms.items() for r in e.get("runs", []) if ran_on(r, device)]
        own = [s for m, s in seen if m == model]
        if own:
            return 1.5 * max(own)
        scaled = [s * size(model) / size(m) for m, s in seen if size(m)]
        return 1.5 * max(scaled) if scaled else 0.0

    return estimate


def verify(ground_truth: str | os.PathLike, *, task_root: str | os.PathLike, zoo: dict[str, Path],
           device: str = "cpu", tolerance: float = 0.02, progress: bool = True) -> dict[str, Any]:
    """Recompute the cheapest stored cell run on the same kind of device and compare its accuracy with the stored one.

    The recipe is the file's own (``_meta.recipe``). Only runs made on the same kind of device are candidates:
    CUDA draws dropout masks from another generator than the CPU, so a GPU run recomputed on a CPU is another random
    draw, not a check. CPU kernels are deterministic for one machine and thread count; across machines or threads
    the float sums differ, so accuracies may move by a few test rows: ``tolerance`` is that allowance (absolute
    accuracy).

    Returns
    -------
    dict
        ``task``, ``model``, ``seed``, ``stored``, ``recomputed``, ``difference``, ``ok``, the seconds and
        environments of both runs.
    """
    data = load_ground_truth(ground_truth)
    recipe = Recipe(**data.get(META, {}).get("recipe", asdict(RECIPE)))
    cells = [(r["seconds"], t, m, r) for t, ms in data.items() if t != META for m, e in ms.items() if m in zoo
             for r in e.get("runs", []) if ran_on(r, device)]
    if not cells:
        raise GroundTruthError(f"{ground_truth} has no stored run of a model in the zoo given ({sorted(zoo)}) "
                               f"on a {_device_kind(device)} device to verify; pass the --device its runs used.")
    _, task, model, stored = min(cells, key=lambda c: c[0])
    run = finetune(zoo[model], Path(task_root) / task, seed=stored["seed"], recipe=recipe, device=device,
                   progress=progress)
    diff = abs(run["finetune_acc"] - stored["finetune_acc"])
    return {"task": task, "model": model, "seed": stored["seed"], "stored": stored["finetune_acc"],
            "recomputed": run["finetune_acc"], "difference": diff, "ok": diff <= tolerance,
            "seconds": run["seconds"], "stored_seconds": stored["seconds"],
            "env": environment(device), "stored_env": stored.get("env")}
