"""The quality benchmark's tasks as fixed, seeded JSONL splits built from ``../shared/data/text``.

Every task folder holds ``train.jsonl``, ``test.jsonl`` and ``task.json``. A line is ``{"text": str, "label": ...}``,
or for a text pair ``{"sentence1": str, "sentence2": str, "label": ...}``; a class label is the class *name* (so that
label encoders see words, and any other task can be dropped in the same shape), a regression label a number.
``task.json`` says how to read them: ``{"inputs": [...], "label": "label", "kind": "classification" | "regression",
"metric": "accuracy" | "pearson"}`` (a folder without one is a single-text classification task):

================  ==================================  ===========  ==========  =======  ==============================
task              source file(s)                      classes      train       test     test drawn from
================  ==================================  ===========  ==========  =======  ==============================
sst2              sst2/stsa.binary.{train,test}       2            1,000       1,000    the official test file
trec              trec/TREC.{train,test}.all          6            1,000         499    the official test file (500
                                                                                        less one)
subj              subj/subj.all                       2            1,000       1,000    the rest of the file
mpqa              mpqa/mpqa.all                       2            1,000       1,000    the rest of the file
banking77         banking77/banking77_{train,test}    77           1,000       1,000    the official test file
sms_spam          sms_spam/SMSSpamCollection          2            1,000       1,000    the rest of the file
sick_entailment   sick/SICK.txt (sentence pairs)      3            1,000       1,000    SemEval_set TEST (training
                                                                                        draws: TRAIN and TRIAL)
sick_relatedness  sick/SICK.txt (sentence pairs)      regression   1,000       1,000    as sick_entailment
================  ==================================  ===========  ==========  =======  ==============================

How (seed 0 by default): each source is read, empty lines dropped and exact duplicate inputs (a text, or a pair in
its order) removed (first kept); the training set is a stratified draw (``sklearn.model_selection.train_test_split``,
``random_state=seed``) of ``n_train`` rows from the training file, or from the whole file when the source has no
split; the test set is a stratified draw of ``n_test`` rows from the test file, or from the remaining rows, with
every input already in the training set removed first (so no test sentence was seen in fine-tuning: TREC's test
question "What does NASA stand for ?" is also in its training draw, hence 499). A regression task is stratified by
its label rounded to the nearest integer (SICK's relatedness: 1 to 5). SICK's entailment labels are lower-cased
(``neutral``, ``entailment``, ``contradiction``). A split is written atomically.

Run:  .venv/bin/python benchmarks/quality/task_splits.py [--data-root DIR] [--out benchmarks/quality/tasks]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hf_emms.errors import InvalidInputError
from hf_emms.labels.cache import atomic_write

ROOT = Path(__file__).resolve().parents[2]
DATA_ROOT = ROOT.parent / "shared" / "data" / "text"
TASK_DIR = Path(__file__).resolve().parent / "tasks"
N_TRAIN, N_TEST, SEED = 1000, 1000, 0
PAIR_KEYS = ("sentence1", "sentence2")  # a pair's JSONL keys: names hf_emms detects as a text pair

Text = str | tuple[str, str]  # one input, or an ordered pair
Rows = list[tuple[Text, Any]]  # (input, label: class name or number)


class SplitError(InvalidInputError):
    """A task's source data is missing or cannot make the asked split."""


def _text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # TREC's training file and Subj are Latin-1
        return raw.decode("latin-1")


def _lines(path: Path) -> list[str]:
    # split on "\n" only: Subj holds U+0085 (NEL) inside sentences, which str.splitlines would break on
    return [line.rstrip("\r") for line in _text(path).split("\n") if line.strip()]


def _id_prefixed(names: tuple[str, ...]) -> Callable[[Path], Rows]:
    """A reader for the harvardnlp files: ``LABEL<space>text`` with integer labels."""

    def read(path: Path) -> Rows:
        rows = []
        for line in _lines(path):
            label, _, text = line.partition(" ")
            rows.append((text.strip(), names[int(label)]))
        return rows

    return read


def _banking(path: Path) -> Rows:
    return [(r["text"].strip(), r["category"]) for r in csv.DictReader(io.StringIO(_text(path)))]


def _sms(path: Path) -> Rows:
    rows = []
    for line in _lines(path)[1:]:  # header "Label<TAB>SMS"
        label, _, text = line.partition("\t")
        rows.append((text.strip(), label.strip()))
    return rows


def _sick(label: Callable[[dict[str, str]], Any], sets: tuple[str, ...]) -> Callable[[Path], Rows]:
    """A reader of SICK.txt's (sentence_A, sentence_B) pairs in the given SemEval sets, labelled by ``label``."""

    def read(path: Path) -> Rows:
        table = csv.DictReader(io.StringIO(_text(path)), delimiter="\t", quoting=csv.QUOTE_NONE)
        return [((r["sentence_A"].strip(), r["sentence_B"].strip()), label(r)) for r in table
                if r["SemEval_set"] in sets]

    return read


@dataclass(frozen=True)
class Source:
    """Where a task's rows come from: a reader, the training file and the test file (None: the training file's rest;
    ``read_test`` reads it when it differs from ``read``), and the label kind."""

    read: Callable[[Path], Rows]
    train: str
    test: str | None = None
    read_test: Callable[[Path], Rows] | None = None
    kind: str = "classification"

    @property
    def metric(self) -> str:
        return "pearson" if self.kind == "regression" else "accuracy"


_SST2 = _id_prefixed(("negative", "positive"))
_ENTAILMENT, _RELATEDNESS = (lambda r: r["entailment_label"].lower()), (lambda r: float(r["relatedness_score"]))
SOURCES: dict[str, Source] = {
    "sst2": Source(_SST2, "sst2/stsa.binary.train", "sst2/stsa.binary.test"),
    "trec": Source(_id_prefixed(("description", "entity", "abbreviation", "human", "location", "numeric")),
                   "trec/TREC.train.all", "trec/TREC.test.all"),
    "subj": Source(_id_prefixed(("subjective", "objective")), "subj/subj.all"),
    "mpqa": Source(_id_prefixed(("negative", "positive")), "mpqa/mpqa.all"),
    "banking77": Source(_banking, "banking77/banking77_train.csv", "banking77/banking77_test.csv"),
    "sms_spam": Source(_sms, "sms_spam/SMSSpamCollection"),
    "sick_entailment": Source(_sick(_ENTAILMENT, ("TRAIN", "TRIAL")), "sick/SICK.txt", "sick/SICK.txt",
                              read_test=_sick(_ENTAILMENT, ("TEST",))),
    "sick_relatedness": Source(_sick(_RELATEDNESS, ("TRAIN", "TRIAL")), "sick/SICK.txt", "sick/SICK.txt",
                               read_test=_sick(_RELATEDNESS, ("TEST",)), kind="regression"),
}
TASKS = tuple(SOURCES)


def _dedupe(rows: Iterable[tuple[Text, Any]], exclude: set[Text] = frozenset()) -> Rows:
    seen, out = set(exclude), []
    for text, label in rows:
        if text and text not in seen:
            seen.add(text)
            out.append((text, label))
    return out


def _draw(rows: Rows, n: int, seed: int, kind: str = "classification") -> tuple[Rows, Rows]:
    """A stratified, seeded draw of ``min(n, len(rows))`` rows, and the rest (both in a seeded order); a regression
    label is stratified by its value rounded to an integer."""
    from sklearn.model_selection import train_test_split

    if n >= len(rows):
        return rows, []
    strata = [round(label) if kind == "regression" else label for _, label in rows]
    drawn, rest = train_test_split(rows, train_size=n, random_state=seed, stratify=strata)
    return [tuple(r) for r in drawn], [tuple(r) for r in rest]


def make_split(task: str, *, data_root: str | os.PathLike = DATA_ROOT, n_train: int = N_TRAIN,
               n_test: int = N_TEST, seed: int = SEED) -> tuple[Rows, Rows]:
    """One task's (train, test) rows, deterministic for a seed.

    Parameters
    ----------
    task : str
        One of ``TASKS``.
    data_root : path
        The folder of ``../shared/data/text``.
    n_train, n_test : int
        Rows to draw; the test set has fewer when its source has fewer (TREC: 500).
    seed : int
        Seed of the stratified draws.

    Returns
    -------
    train, test : list of (input, label)
        An input is a text, or a (first, second) pair of texts; a label a class name, or a number (regression).
    """
    if task not in SOURCES:
        raise SplitError(f"unknown task {task!r}; the benchmark's tasks are {TASKS}.")
    source = SOURCES[task]
    root = Path(data_root)
    for rel in filter(None, (source.train, source.test)):
        if not (root / rel).is_file():
            raise SplitError(f"{root / rel} is missing: the quality benchmark reads the project's shared data "
                             "(../shared/data/text, see its README); pass --data-root to point elsewhere.")
    pool = _dedupe(source.read(root / source.train))
    train, rest = _draw(pool, n_train, seed, source.kind)
    if len(train) < n_train:
        raise SplitError(f"{task} has only {len(train)} distinct training rows; asked for {n_train}.")
    test_pool = (source.read_test or source.read)(root / source.test) if source.test else rest
    test, _ = _draw(_dedupe(test_pool, exclude={t for t, _ in train}), n_test, seed, source.kind)
    unseen = {label for _, label in test} - {label for _, label in train}
    if source.kind != "regression" and unseen:
        raise SplitError(f"{task}: test classes {sorted(unseen)} have no training row; draw a larger training set.")
    return train, test


def task_info(task: str) -> dict[str, Any]:
    """What ``task.json`` holds for one of ``TASKS``: input keys, label key, label kind, metric."""
    source = SOURCES[task]
    pair = task.startswith("sick_")
    return {"inputs": list(PAIR_KEYS) if pair else ["text"], "label": "label", "kind": source.kind,
            "metric": source.metric}


def read_task_info(task_dir: str | os.PathLike) -> dict[str, Any]:
    """A task folder's ``task.json``; a folder without one is a single-text classification task."""
    path = Path(task_dir) / "task.json"
    info = {"inputs": ["text"], "label": "label", "kind": "classification", "metric": "accuracy"}
    if path.is_file():
        try:
            info.update(json.loads(path.read_text()))
        except ValueError as exc:
            raise SplitError(f"{path} is not JSON ({exc}); it holds {{\"inputs\", \"label\", \"kind\", "
                             "\"metric\"}.") from None
    return info


def _line(text: Text, label: Any) -> str:
    row = dict(zip(PAIR_KEYS, text)) if isinstance(text, tuple) else {"text": text}
    return json.dumps({**row, "label": label}, ensure_ascii=False) + "\n"


def write_jsonl(path: Path, rows: Rows) -> None:
    """``{"text", "label"}`` (or ``{"sentence1", "sentence2", "label"}``) lines, written to a temporary sibling and
    renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(_line(t, label) for t, label in rows)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def read_jsonl(path: str | os.PathLike) -> tuple[list[Text], list]:
    """(inputs, labels) of a task's JSONL file: an input is the ``text``, or the (``sentence1``, ``sentence2``)
    pair."""
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                pair = all(k in row for k in PAIR_KEYS)
                texts.append(tuple(str(row[k]) for k in PAIR_KEYS) if pair else str(row["text"]))
                labels.append(row["label"])
            except (ValueError, KeyError, TypeError) as exc:
                raise SplitError(f"{path}:{i} is not a {{\"text\", \"label\"}} or {{\"sentence1\", \"sentence2\", "
                                 f"\"label\"}} JSON object ({exc}).") from None
    return texts, labels


def build_splits(out_dir: str | os.PathLike = TASK_DIR, *, tasks: Iterable[str] = TASKS,
                 data_root: str | os.PathLike = DATA_ROOT, n_train: int = N_TRAIN, n_test: int = N_TEST,
                 seed: int = SEED) -> dict[str, Path]:
    """Write ``out_dir/<task>/{train,test}.jsonl`` and ``task.json`` for each task; returns task -> folder."""
    out = {}
    for task in tasks:
        train, test = make_split(task, data_root=data_root, n_train=n_train, n_test=n_test, seed=seed)
        folder = Path(out_dir) / task
        write_jsonl(folder / "train.jsonl", train)
        write_jsonl(folder / "test.jsonl", test)
        info = json.dumps(task_info(task), indent=1) + "\n"
        atomic_write(folder / "task.json", lambda tmp, info=info: Path(tmp).write_text(info))
        out[task] = folder
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", type=Path, default=DATA_ROOT)
    p.add_argument("--out", type=Path, default=TASK_DIR)
    p.add_argument("--seed", type=int, default=SEED)
    args = p.parse_args(argv)
    for task, folder in build_splits(args.out, data_root=args.data_root, seed=args.seed).items():
        sizes = [sum(1 for _ in open(folder / f"{s}.jsonl", encoding="utf-8")) for s in ("train", "test")]
        print(f"{task:16s} train {sizes[0]:5d}  test {sizes[1]:5d}  -> {folder}")


if __name__ == "__main__":
    main()
