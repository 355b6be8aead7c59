"""The transfer space: one vector u_m per checkpoint, one vector v_t per task, score s(m, t) = u_m . v_t.

Fitted from a :class:`~hf_emms.recall.history.History` (scores S, M models x T tasks):

    Z_mt  = clip((S_mt - median_t) / (1.4826 MAD_t), -c, c)                         robust z per task      (eq. 1)
            or, with scale="logrank", -log(rank_mt / n_t) - 1: exponential scores of the ranks (:func:`log_rank`)
    b_m   = quantile_p {Z_mt : t measured}       (p = None: the mean)              history quality        (eq. 2)
    phi_m = metadata features (MetaEncoder, eq. 3), for any model
    [beta_t, a_t] = argmin sum_m (Z_mt - phi_m beta - a)^2 + ridge |beta|^2    per task; [beta_0, a_0] for b   (eq. 4)
    alpha_m = n_m / (n_m + k)          n_m tasks measured, k = shrink (alpha = 0 for an unseen model)        (eq. 5)
    w(x)  = softmax_j(e_x . e_j / temperature)        e: unit task embeddings of the proxy encoder           (eq. 6)

    u_m = [ alpha_m b_m | alpha_m (Z_m. - b_m) | (1 - alpha_m) [phi_m, 1] | gamma (e(m text) - mean) ]
    v_x = [ 1           | lambda w(x)          | [beta_0, a_0]            | e_x                      ]      (eq. 7)

For a task already in the history, v uses the task's own [beta_t, a_t] and w = its one-hot with lambda = 1, so a
measured model scores alpha_m Z_mt + (1 - alpha_m) prior: its measurement, shrunk. Scoring N models is one product
U (N x D) @ v (D,): 100,000 models of D ~ 500 float32 columns are 200 MB and one BLAS call.

Hyperparameters come from :class:`RecallConfig`; ``fit(..., config="auto")`` picks them by leave-one-task-out cross
validation on the history's own tasks (:mod:`hf_emms.recall.select`); nothing else is tuned.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write
from .._version import __version__
from ..errors import InvalidInputError
from .embed import default_embedder, embedder_from_name
from .history import History, ModelMeta, TaskText
from .config import RecallConfig
from .metadata import MetaEncoder, model_text

__all__ = ["FORMAT", "RecallConfig", "TransferSpace", "check_space_path", "space_info", "task_text"]

FORMAT, VERSION = "hf-emms/recall-space", 1
BLOCKS = ("history", "transfer", "prior", "text")


def task_text(task: TaskText) -> str:
    """The text the proxy encoder embeds for a task: ``"<description>: <class 1>, <class 2>, ..."``."""
    classes = ", ".join(task.class_names)
    return ": ".join(p for p in (task.description or task.name, classes) if p)


class _Memo:
    """Memoises an embedder by text (fitting embeds the same texts again in every cross-validation fold)."""

    def __init__(self, embed: Callable) -> None:
        self.embed, self.name, self.seen = embed, embed.name, {}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.embed.dim), np.float32)
        missing = list(dict.fromkeys(t for t in texts if t not in self.seen))
        if missing:
            self.seen.update(zip(missing, self.embed(missing)))
        return np.array([self.seen[t] for t in texts], np.float32).reshape(len(texts), -1)


def robust_z(scores: np.ndarray, clip: float) -> np.ndarray:
    """Eq. 1 per column of ``scores`` (M, T); NaN stays NaN; a column without spread is 0."""
    med = np.nanmedian(scores, axis=0) if scores.size else np.zeros(scores.shape[1])
    mad = 1.4826 * np.nanmedian(np.abs(scores - med), axis=0) if scores.size else np.ones(scores.shape[1])
    std = np.nanstd(scores, axis=0) if scores.size else np.ones(scores.shape[1])
    scale = np.where(mad > 1e-12, mad, np.where(std > 1e-12, std, np.inf))
    return np.clip((scores - med) / scale, -clip, clip)


def log_rank(scores: np.ndarray) -> np.ndarray:
    """Eq. 1 with ``scale="logrank"``: Z_mt = -log(r_mt / n_t) - 1 per column of ``scores`` (M, T), r the rank from
    the top (1 = best, ties averaged) among the n_t measured models; NaN stays NaN.

    The exponential score of a rank: mean 0 for any n_t, bounded below by -1 (a diverged run costs no more than
    a poor one), spread at the top (the best model of a task scores log n_t - 1), so that an aggregate of it
    rewards being near the top, the event that a short list is judged by.
    """
    out = np.full(scores.shape, np.nan)
    for j in range(scores.shape[1]):
        ok = np.isfinite(scores[:, j])
        if ok.sum():
            v = scores[ok, j]
            greater = (v[None, :] > v[:, None]).sum(1)
            ties = (v[None, :] == v[:, None]).sum(1)
            out[ok, j] = -np.log((greater + (ties + 1) / 2) / ok.sum()) - 1.0
    return out


def _ridge(phi: np.ndarray, y: np.ndarray, penalty: float) -> np.ndarray:
    """Eq. 4: [beta (d,), a] minimising |y - phi beta - a|^2 + penalty |beta|^2 over the finite entries of y."""
    ok = np.isfinite(y)
    x = np.column_stack([phi[ok], np.ones(ok.sum())])
    reg = penalty * np.eye(x.shape[1])
    reg[-1, -1] = 0.0
    if ok.sum() == 0:
        return np.zeros(x.shape[1])
    return np.linalg.solve(x.T @ x + reg + 1e-9 * np.eye(x.shape[1]), x.T @ y[ok])


def space_info(path: str | Path) -> dict[str, Any] | None:
    """The JSON description in the header of a recall space file (any version), or None when ``path`` is not one."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            info = json.loads((f.metadata() or {})["hf_emms_recall"])
    except Exception:  # noqa: BLE001 - missing, unreadable, not safetensors, no or broken description: not a space
        return None
    return info if isinstance(info, dict) and info.get("format") == FORMAT else None


def check_space_path(path: str | Path) -> Path:
    """``path`` as a Path if a space may be written there: new, or a recall space already (rebuilt in place).

    Raises
    ------
    InvalidInputError
        ``path`` is a folder or a file that is not a recall space: it is never overwritten.
    """
    path = Path(path)
    if path.is_dir() or (path.exists() and space_info(path) is None):
        raise InvalidInputError(f"{path} exists and is not a recall space: nothing was written over it. Give a new "
                                "path (e.g. space.safetensors) or the one a space was saved to before.")
    return path


class TransferSpace:
    """Models and tasks in one space; see the module docstring. Build with :meth:`fit` or :meth:`load`."""

    def __init__(self, *, config: RecallConfig, embed: Callable, encoder: MetaEncoder, models: Sequence[str],
                 tasks: Sequence[str], model_vectors: np.ndarray, n_measured: np.ndarray, task_emb: np.ndarray,
                 task_beta: np.ndarray, beta0: np.ndarray, text_mean: np.ndarray, messages: Sequence[str] = ()):
        self.config, self.embed, self.encoder = config, embed, encoder
        self.models, self.tasks = list(models), list(tasks)
        self.model_vectors = np.asarray(model_vectors, np.float32)  # (M, D)
        self.n_measured = np.asarray(n_measured, np.int64)  # (M,)
        self.task_emb, self.task_beta = np.asarray(task_emb, np.float32), np.asarray(task_beta, np.float64)
        self.beta0, self.text_mean = np.asarray(beta0, np.float64), np.asarray(text_mean, np.float32)
        self.messages = list(messages)
        self._row = {m: i for i, m in enumerate(self.models)}
        d_prior, d_text = len(self.beta0), (len(self.text_mean) if config.text_weight else 0)
        sizes = dict(zip(BLOCKS, (1, len(self.tasks), d_prior, d_text)))
        starts = np.cumsum([0, *sizes.values()])
        self.layout = {b: slice(int(s), int(s + n)) for b, s, n in zip(BLOCKS, starts, sizes.values())}
        self.dim = int(starts[-1])

    # -- fitting ----------------------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, history: History, *, embed: Callable | None = None, config: RecallConfig | str | None = "auto",
            progress: Callable[[str], None] | None = None) -> TransferSpace:
        """Learn the space from ``history``.

        Parameters
        ----------
        history : History
        embed : callable, optional
            The proxy text embedder (default: all-MiniLM-L6-v2 when installed, else hashed words).
        config : RecallConfig, "auto" or None
            "auto": chosen by leave-one-task-out cross-validation on the history's tasks when it has at least 3
            (see :mod:`hf_emms.recall.select`); None or too few tasks: the defaults of :class:`RecallConfig`.
        """
        embed = embed if isinstance(embed, _Memo) else _Memo(embed or default_embedder())
        messages = list(history.messages)
        if config == "auto":
            from .select import select_config

            config, report = select_config(history, embed, cls)
            messages += report
        config = config or RecallConfig()
        metas = [history.meta.get(m) or ModelMeta(m) for m in history.models]
        encoder = MetaEncoder(config.id_dims, config.head_dims)
        emb_id = embed([model_text(m) for m in metas])
        phi = encoder.fit(metas, embed, emb_id=emb_id)  # (M, d)
        transform = log_rank if config.scale == "logrank" else (lambda x: robust_z(x, config.clip))
        z = transform(history.scores) if history.scores.size else history.scores  # (M, T), eq. 1
        measured = np.isfinite(z)
        n = measured.sum(1)
        if not measured.any():
            messages.append("no measured scores: every model is scored by its metadata prior alone (size: larger "
                            "first), which ranks little better than chance; give a history to learn from")
        with warnings.catch_warnings():  # rows without a measurement give NaN ("Mean of empty slice"), replaced below
            warnings.simplefilter("ignore", RuntimeWarning)
            b = (np.nanmean(z, 1) if config.aggregate is None
                 else np.nanquantile(z, config.aggregate, axis=1)) if z.shape[1] else np.full(len(metas), np.nan)
        b = np.nan_to_num(b)  # eq. 2
        if measured.any():
            beta0 = _ridge(phi, np.where(n > 0, b, np.nan), config.ridge)  # the prior of a new task's b
            task_beta = np.stack([_ridge(phi, z[:, j], config.ridge) for j in range(z.shape[1])])
        else:  # a priori: a larger checkpoint first (the size column of phi)
            beta0 = np.zeros(phi.shape[1] + 1)
            beta0[len(encoder.types) + 1] = 1.0
            task_beta = np.zeros((0, len(beta0)))
        alpha = (n / (n + config.shrink))[:, None]  # eq. 5
        text_mean = emb_id.mean(0) if len(emb_id) else np.zeros(emb_id.shape[1], np.float32)
        blocks = [alpha * b[:, None], alpha * np.where(measured, z - b[:, None], 0.0),
                  (1 - alpha) * np.column_stack([phi, np.ones(len(phi))])]
        if config.text_weight:
            blocks.append(config.text_weight * (emb_id - text_mean))
        task_emb = embed([task_text(history.tasks_text.get(t) or TaskText(t, t)) for t in history.tasks])
        return cls(config=config, embed=embed, encoder=encoder, models=history.models, tasks=history.tasks,
                   model_vectors=np.column_stack(blocks), n_measured=n, task_emb=task_emb, task_beta=task_beta,
                   beta0=beta0, text_mean=text_mean, messages=messages)

    # -- vectors ----------------------------------------------------------------------------------------------------
    def task_embedding(self, task: TaskText) -> np.ndarray:
        """e_x: unit (De,) embedding of the task's description and class names, averaged with its sample inputs."""
        e = self.embed([task_text(task)])[0].astype(np.float64)
        if task.samples:
            e = e / max(np.linalg.norm(e), 1e-12) + self.embed(list(task.samples)).mean(0)
        return (e / max(np.linalg.norm(e), 1e-12)).astype(np.float32)

    def task_vector(self, task: TaskText | str) -> np.ndarray:
        """v_x of eq. 7: ndarray (D,) float32. A string is a task description (or the name of a history task)."""
        if isinstance(task, str):
            task = TaskText(task, task)
        v = np.zeros(self.dim, np.float32)
        v[self.layout["history"]] = 1.0
        e = self.task_embedding(task)
        if task.name in self.tasks:  # known task: its own prior, and its measurements through the one-hot
            j = self.tasks.index(task.name)
            v[self.layout["transfer"].start + j] = 1.0
            v[self.layout["prior"]] = self.task_beta[j]
        else:
            if self.tasks and self.config.transfer:
                logits = self.task_emb @ e / self.config.temperature  # eq. 6
                w = np.exp(logits - logits.max())
                v[self.layout["transfer"]] = self.config.transfer * w / w.sum()
            v[self.layout["prior"]] = self.beta0
        if self.config.text_weight:
            v[self.layout["text"]] = e
        return v

    def vectors_for(self, metas: Sequence[ModelMeta]) -> np.ndarray:
        """u_m of eq. 7 for any models: ndarray (N, D) float32. Models of the history take their learned row;
        the others (cold start, alpha = 0) are built from metadata with one batched embedder call."""
        out = np.zeros((len(metas), self.dim), np.float32)
        new = [i for i, m in enumerate(metas) if m.model_id not in self._row]
        for i, m in enumerate(metas):
            if m.model_id in self._row:
                out[i] = self.model_vectors[self._row[m.model_id]]
        if new:
            cold = [metas[i] for i in new]
            emb_id = self.embed([model_text(m) for m in cold])
            phi = self.encoder.transform(cold, self.embed, emb_id=emb_id)
            out[np.ix_(new, range(self.layout["prior"].start, self.layout["prior"].stop))] = np.column_stack(
                [phi, np.ones(len(cold))])
            if self.config.text_weight:
                out[np.ix_(new, range(self.layout["text"].start, self.layout["text"].stop))] = (
                    self.config.text_weight * (emb_id - self.text_mean))
        return out

    @staticmethod
    def score(vectors: np.ndarray, task_vector: np.ndarray) -> np.ndarray:
        """s = U @ v: ndarray (N,) float32. The only scoring step; its cost is that of the product."""
        return vectors @ task_vector

    def contributions(self, vectors: np.ndarray, task_vector: np.ndarray) -> dict[str, np.ndarray]:
        """Each block's share of the score (block -> (N,)): which signal produced it."""
        return {b: vectors[:, s] @ task_vector[s] for b, s in self.layout.items()}

    # -- persistence ------------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the space as one safetensors file (arrays) whose header holds the JSON description; atomic.

        Raises
        ------
        InvalidInputError
            ``path`` is a folder or a file that is not a recall space (of any version): it is never overwritten.
        """
        from safetensors.numpy import save_file

        path = check_space_path(path)

        arrays, enc_info = self.encoder.state()
        arrays.update({"model_vectors": self.model_vectors, "n_measured": self.n_measured, "task_emb": self.task_emb,
                       "task_beta": self.task_beta, "beta0": self.beta0, "text_mean": self.text_mean})
        info = {"format": FORMAT, "version": VERSION, "hf_emms": __version__, "config": asdict(self.config),
                "embedder": self.embed.name, "models": self.models, "tasks": self.tasks, "encoder": enc_info,
                "messages": self.messages, "dim": self.dim}
        arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        return atomic_write(path, lambda tmp: save_file(arrays, tmp, metadata={"hf_emms_recall": json.dumps(info)}))

    @classmethod
    def load(cls, path: str | Path, *, embed: Callable | None = None) -> TransferSpace:
        """Read a space written by :meth:`save`.

        Raises
        ------
        InvalidInputError
            Missing, unreadable, foreign or newer-format file (rebuild it: ``hf-emms recall --build``).
        """
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="numpy") as f:
                info = json.loads((f.metadata() or {})["hf_emms_recall"])
                arrays = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as exc:  # noqa: BLE001 - every way a file can be bad gets the same advice
            raise InvalidInputError(f"cannot read the recall space {path}: {type(exc).__name__}: {exc}. Rebuild it "
                                    "with `hf-emms recall --build`.") from None
        if info.get("format") != FORMAT or info.get("version") != VERSION:
            raise InvalidInputError(f"{path} is not a recall space of format {FORMAT} v{VERSION} (found "
                                    f"{info.get('format')} v{info.get('version')}); rebuild it with `hf-emms recall "
                                    "--build`.")
        embed = embed or embedder_from_name(info["embedder"])
        if getattr(embed, "name", None) != info["embedder"]:
            raise InvalidInputError(f"{path} was fitted with the embedder {info['embedder']!r}, not {embed.name!r}.")
        return cls(config=RecallConfig(**info["config"]), embed=_Memo(embed),
                   encoder=MetaEncoder.from_state(arrays, info["encoder"]), models=info["models"],
                   tasks=info["tasks"], model_vectors=arrays["model_vectors"], n_measured=arrays["n_measured"],
                   task_emb=arrays["task_emb"], task_beta=arrays["task_beta"], beta0=arrays["beta0"],
                   text_mean=arrays["text_mean"], messages=info["messages"])

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary: configuration, sizes, embedder, messages."""
        return {"config": asdict(self.config), "models": len(self.models), "tasks": len(self.tasks),
                "dim": self.dim, "embedder": self.embed.name, "messages": self.messages}

