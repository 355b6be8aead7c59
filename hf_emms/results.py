"""Ranking results: one record per (candidate, revision, dataset fingerprint, configuration), and the table over them.

A :class:`ResultsStore` holds each finished candidate as one small JSON file written atomically (temporary file +
rename), so an interrupted ranking resumes where it stopped, a finished one reloads instantly, and a crash never
leaves a half-written record. A :class:`Ranking` is the table a person reads: a pandas DataFrame with
``to_markdown()``, ``to_json()``, ``save(dir)`` and ``plot()``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from collections.abc import Iterable
from typing import Any

import numpy as np

from ._io import atomic_write
from .errors import HfEmmsError
from .records import COLUMNS, RankingMeta, Row

__all__ = ["COLUMNS", "Ranking", "RankingMeta", "ResultsStore", "Row", "record_key"]

_FORMAT = "hf-emms/result"


def record_key(model: str, revision: str | None, fingerprint: str, config: dict[str, Any]) -> str:
    """The identity of one result: what was scored, on which data, how."""
    raw = json.dumps({"model": model, "revision": revision, "data": fingerprint, "config": config}, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


class ResultsStore:
    """A folder of result records, one JSON file per key.

    Parameters
    ----------
    root : path
        Created on first write.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The record, or None when absent or unreadable (an unreadable record is recomputed, not trusted)."""
        try:
            record = json.loads(self._path(key).read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and record.get("format") == _FORMAT else None

    def put(self, key: str, record: dict[str, Any]) -> Path:
        """Write a record atomically: it appears complete or not at all."""
        return atomic_write(self._path(key), json.dumps({"format": _FORMAT, **record}, indent=1, default=_jsonable))

    def records(self) -> list[dict[str, Any]]:
        """Every readable record in the store."""
        out = []
        for p in sorted(self.root.glob("*.json")):
            record = self.get(p.stem)
            if record is not None:
                out.append(record)
        return out


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a result record")


class Ranking:
    """Candidates ranked by EMMS for one dataset; skipped candidates listed last with their reason.

    Parameters
    ----------
    rows : list of Row (or dicts with the keys of ``COLUMNS``; missing ones are empty)
        One per candidate.
    meta : RankingMeta or dict, optional
        The run's configuration and provenance: dataset, task, F-label encoders, budget, versions.

    warning : str, optional
        Set when the scores cannot support a choice (see :attr:`warning`); rankings read back from JSON keep theirs.

    Attributes
    ----------
    df : pandas.DataFrame
        The table, sorted: scored candidates by EMMS (best first), then skipped ones.
    meta : RankingMeta
    comparison : solver.Comparison or None
        Which scored candidates the cross-validation folds cannot tell apart (None without fold scores).
    """

    def __init__(self, rows: Iterable[Row | dict[str, Any]], meta: RankingMeta | dict[str, Any] | None = None, *,
                 warning: str | None = None) -> None:
        import pandas as pd

        self.meta = RankingMeta.from_dict(meta)
        records = [Row.from_dict(r.to_dict() if isinstance(r, Row) else r).to_dict() for r in rows]
        profiled = {r["model"]: r["phases"] for r in records if r.get("phases")}
        if profiled:  # rank(..., profile=True): each candidate's phases, kept in the meta (and so in ranking.json)
            self.meta.profile = {**(self.meta.profile or {}), "candidates": profiled}
        self.comparison, compared = _compare(records)
        for i, tied in zip(compared, self.comparison.tied_with_best if self.comparison else ()):
            records[i]["tied_with_best"] = tied
        self._warning = _warning(self.comparison, len(compared), self.meta.dataset) if self.comparison else warning
        df = pd.DataFrame([{c: r.get(c) for c in COLUMNS} for r in records], columns=list(COLUMNS))
        ok = df["status"] == "ok"
        scored = df[ok].sort_values("emms", ascending=False, kind="stable")
        scored["rank"] = range(1, len(scored) + 1)
        self.df = pd.concat([scored, df[~ok]], ignore_index=True) if (~ok).any() else scored.reset_index(drop=True)

    def __len__(self) -> int:
        return len(self.df)

    def __repr__(self) -> str:
        return self.to_markdown()

    @property
    def rows(self) -> list[Row]:
        """The table's rows, in ranking order, as :class:`Row` records."""
        return [Row.from_dict(r) for r in self.df.to_dict(orient="records")]

    def profile(self) -> dict[str, Any] | None:
        """Where the seconds went, with ``rank(..., profile=True)``: ``{"task": {phase: s}, "candidates": {model:
        {"phases": {phase: s}}}}`` (see :func:`hf_emms.profile.profile_table`); None without profiling."""
        profile = self.meta.profile or {}
        if not profile.get("candidates"):
            return None
        return {"task": dict(profile.get("task") or {}),
                "candidates": {m: {"phases": dict(p)} for m, p in profile["candidates"].items()}}

    @property
    def warning(self) -> str | None:
        """Why the table should not be read as a choice, or None: every candidate within noise of the leader, or
        none distinguishably above features that carry no information (decided from paired fold differences,
        :func:`hf_emms.solver.compare`)."""
        return self._warning

    @property
    def best(self) -> str | None:
        """The model ranked first (None when every candidate was skipped)."""
        ok = self.df[self.df["status"] == "ok"]
        return None if ok.empty else str(ok.iloc[0]["model"])

    @property
    def tied(self) -> list[str]:
        """The other candidates the folds cannot tell from the best (``tied_with_best``), in ranking order."""
        ok = self.df[self.df["status"] == "ok"]
        return [str(m) for m, t in list(zip(ok["model"], ok["tied_with_best"]))[1:] if t is True]

    def verdict(self, *, markdown: bool = False) -> str:
        """One line for people: the best candidate and those tied with it, with the warning's caveat, or why there
        is none (what the CLI prints and the Space shows under the table)."""
        if not self.best:
            return "no candidate could be scored (see the reasons above)"
        best = f"**{self.best}**" if markdown else self.best
        if self.warning:  # the leader is named with its caveat, never as a confident winner
            return f"best: {best} (not a clear winner: see the warning above)"
        tied = self.tied
        if not tied:
            return f"best: {best}"
        shown = ", ".join(tied[:5]) + (f" and {len(tied) - 5} more" if len(tied) > 5 else "")
        return (f"best: {best}, tied with {shown}: the folds cannot tell them apart, so choose among them by size or "
                "cost, or fine-tune each")

    def _display(self) -> Any:
        """The table as strings for people: rounded scores, weights as ``encoder=weight``, sizes in millions."""
        formats = {
            **{c: _score_text for c in ("emms", "emms_se", "emms_last", "emms_one_hot", "emms_official", "logme",
                                         "hscore", "nce")},
            "tied_with_best": lambda v: "yes" if v else "no", "recall": "{:.3f}".format,
            "emms_weights": lambda w: " ".join(f"{k}={v:.2f}" for k, v in w.items()) if isinstance(w, dict) else "",
            "params": lambda v: f"{v / 1e6:.1f}M", "seconds": "{:.1f}".format, "revision": lambda v: str(v)[:12],
            **{c: lambda v: str(int(v)) for c in ("rank", "width", "n_samples")},
        }
        df = self.df.astype(object).copy()
        for col in df.columns:
            fmt = formats.get(col, str)
            df[col] = df[col].map(lambda v, fmt=fmt: "" if _missing(v) else fmt(v))
        # Drop columns nobody computed, so the table shows what was run.
        return df[[c for c in df.columns if (df[c] != "").any() or c in ("rank", "model", "emms", "status")]]

    def to_markdown(self) -> str:
        """The table as GitHub markdown (what the CLI prints and the Space shows)."""
        return self._display().to_markdown(index=False)

    def to_json(self) -> str:
        """The table and its configuration as JSON: ``{"meta": {...}, "rows": [...]}``."""
        rows = json.loads(self.df.to_json(orient="records", double_precision=15))
        return json.dumps({"meta": self.meta.to_dict(), "rows": rows, "warning": self.warning}, indent=1,
                          default=_jsonable)

    @classmethod
    def from_json(cls, text: str) -> "Ranking":
        data = json.loads(text)
        if not (isinstance(data, dict) and isinstance(data.get("rows"), list)
                and all(isinstance(r, dict) and isinstance(r.get("model"), str) for r in data["rows"])
                and isinstance(data.get("meta") or {}, dict)
                and all(isinstance(v, dict) for k, v in (data.get("meta") or {}).items()
                        if k in ("dataset", "task", "flabels", "config"))):
            raise HfEmmsError("not a ranking: expected JSON with 'meta' (a mapping) and 'rows' (a list of rows, each "
                              "naming its model), as Ranking.to_json/save write it.")
        return cls(data["rows"], data.get("meta"), warning=data.get("warning"))

    def save(self, directory: str | os.PathLike) -> dict[str, Path]:
        """Write ``ranking.json``, ``ranking.csv``, ``ranking.md`` and ``ranking.png`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        out = {
            "json": atomic_write(directory / "ranking.json", self.to_json()),
            "csv": atomic_write(directory / "ranking.csv", self._display().to_csv(index=False)),
            "markdown": atomic_write(directory / "ranking.md", self.to_markdown() + "\n"),
        }
        out["plot"] = self.plot(directory / "ranking.png")
        return out

    def plot(self, path: str | os.PathLike | None = None) -> Any:
        """A horizontal bar chart of EMMS scores, best on top, with each candidate's F-label weights.

        Returns the matplotlib Figure, or the written PNG's path when ``path`` is given.
        """
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        ok = self.df[self.df["status"] == "ok"]
        fig, ax = plt.subplots(figsize=(8, 0.5 * max(len(ok), 1) + 1.8), dpi=120)
        names = list(ok["model"])[::-1]
        scores = list(ok["emms"])[::-1]
        errors = [0.0 if _missing(v) else 2 * float(v) for v in list(ok["emms_se"])[::-1]]  # +- 2 SE, as ties use
        # The leader; those the folds cannot tell from it (tied_with_best); the rest. With a warning, no leader.
        tied = [v is True for v in list(ok["tied_with_best"])[::-1]] if "tied_with_best" in ok else [False] * len(names)
        kinds = ["leader" if i == len(names) - 1 and not self.warning else "tied" if tied[i] and not self.warning
                 else "other" for i in range(len(names))]
        colours = [_BAR_COLOURS[k] for k in kinds]
        ax.barh(names, scores, color=colours, xerr=errors, ecolor="#444444", capsize=3)

        span = max([abs(v) for v in scores] + [1e-3])
        for y, (score, weights, err) in enumerate(zip(scores, list(ok["emms_weights"])[::-1], errors)):
            label = f"{score:.3f}" + (f" ± {err / 2:.3f}" if err else "")
            if isinstance(weights, dict) and len(weights) > 1:
                label += "  (" + ", ".join(f"{k} {v:.2f}" for k, v in weights.items()) + ")"
            # Beside the bar's end and its error bar, outside them: EMMS scores are <= 0, so bars grow leftwards.
            ax.text(score - err - 0.02 * span if score < 0 else score + err + 0.02 * span, y, label, va="center",
                    ha="right" if score < 0 else "left", fontsize=8)
        ax.set_xlim(-2.1 * span if min(scores + [0.0]) < 0 else 0, max(scores + [0.0]) + 0.1 * span)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_xlabel("EMMS (higher is better: minus the share of F-label variance left unexplained out of sample)")
        title = self.meta.dataset.name
        ax.set_title(f"Which checkpoint to fine-tune{f' on {title}' if title else ''}", pad=16 if self.warning else 6)
        if self.warning:  # under the title, above the bars: no confident winner is drawn
            ax.text(0.5, 1.01, "No clear winner: " + self.warning.split(":")[0], transform=ax.transAxes, ha="center",
                    va="bottom", fontsize=8, color="#b30000")
        skipped = self.df[self.df["status"] != "ok"]
        line = 0.22 / fig.get_figheight()  # one line of 7-point text, as a fraction of the figure's height
        if len(skipped):
            fig.text(0.01, 0.01, "skipped: " + "; ".join(f"{m} ({r})" for m, r in zip(skipped["model"], skipped["reason"]))[:200],
                     fontsize=7, color="#555555")
        band = line if len(skipped) else 0.0  # the bottom lines: the skipped rows, then the key of the colours
        if "tied" in kinds:
            from matplotlib.patches import Patch

            fig.legend(handles=[Patch(color=_BAR_COLOURS[k], label=_BAR_LABELS[k]) for k in ("leader", "tied", "other")
                                if k in kinds], loc="lower center", bbox_to_anchor=(0.5, band), ncol=3, fontsize=7,
                       frameon=False)
            band += 1.3 * line
        fig.tight_layout(rect=(0, band, 1, 1))
        if path is None:
            return fig
        try:
            return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
        finally:
            plt.close(fig)


_BAR_COLOURS = {"leader": "#2b8cbe", "tied": "#74a9cf", "other": "#d0d1e6"}
_BAR_LABELS = {"leader": "best score", "tied": "tied with the best (within the folds' noise)", "other": "behind"}


def _score_text(v: float) -> str:
    """Four decimals; a value that rounds to zero is 0, not -0 (the official EMMS of an exact fit is -1e-17)."""
    text = f"{v:.4f}"
    return "0.0000" if text == "-0.0000" else text


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def _compare(records: list[dict[str, Any]]) -> tuple[Any, list[int]]:
    """The solver's comparison of the scored rows that carry fold scores, and which rows those are."""
    from types import SimpleNamespace

    from .errors import InvalidInputError
    from .solver import compare

    compared = [i for i, r in enumerate(records)
                if r.get("status") == "ok" and isinstance(r.get("folds"), dict) and len(r["folds"]["scores"]) >= 2]
    if not compared:
        return None, []
    results = [SimpleNamespace(  # the fields compare() reads of an EMMSResult
        rule="cv", score=float(records[i]["emms"]), fold_scores=np.asarray(records[i]["folds"]["scores"], float),
        fold_sizes=np.asarray(records[i]["folds"]["sizes"], float),
        null_fold_scores=np.asarray(records[i]["folds"]["null"], float)) for i in compared]
    try:
        return compare(results), compared
    except InvalidInputError:  # rows scored on other samples or F-labels (records mixed by hand): no comparison
        return None, []


def _warning(comparison: Any, n: int, dataset: Any = None) -> str | None:
    scored, total = getattr(dataset, "rows_scored", None), getattr(dataset, "rows_total", None)
    if scored and total and scored < total:  # the budget left rows unread: the first fix costs only forward passes
        fix = (f"Score more of its {total:,} rows ({scored:,} were: max_samples=, --max-samples N, 0 for all) or "
               "give richer labels.")
    else:
        fix = "Add rows or richer labels."
    if comparison.all_uninformative:
        return (f"no candidate scores distinguishably above features that carry no information (EMMS "
                f"{comparison.null_score:.3f}) on this data: these scores cannot pick a checkpoint. {fix}")
    if n >= 2 and comparison.all_tied:
        return ("these candidates cannot be told apart on this data (every one is within noise of the leader): do "
                f"not read the order as a choice. {fix}")
    return None
