"""Datasets and hand-written feature references for the feature-extraction tests (and their worker processes).

The references run transformers directly, one sample at a time (no padding at all), and pool as the rules say,
written out independently of ``hf_emms.features``.
"""

from __future__ import annotations

import numpy as np
import torch

from _tiny_models import CORPUS

N_TEXTS = 30


def texts(n: int = N_TEXTS) -> list[str]:
    """Texts of 1 to 4 sentences (so batches need padding), all in the tiny tokenizers' vocabulary, seeded."""
    rng = np.random.default_rng(7)
    return [" ".join(rng.choice(CORPUS, size=1 + i % 4)) for i in range(n)]


def text_dataset(n: int = N_TEXTS, classes: int = 3):
    """``texts(n)`` with seeded random class ids, every class present."""
    import datasets

    labels = np.random.default_rng(8).permutation(np.arange(n) % classes)
    return datasets.Dataset.from_dict({"text": texts(n), "label": labels.tolist()})


def image_dataset(n: int = 12, size: int = 32, classes: int = 3):
    import datasets
    from PIL import Image

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (size + i % 5, size, 3), dtype=np.uint8)) for i in range(n)]
    images[1] = images[1].convert("L")  # a grayscale image among them: it must be turned into RGB
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=classes)})
    return datasets.Dataset.from_dict({"image": images, "label": [i % classes for i in range(n)]}, features=features)


def audio_dataset(n: int = 10, rate: int = 16_000):
    import datasets

    rng = np.random.default_rng(1)
    waves = [rng.standard_normal(int(k)).astype(np.float32) for k in rng.integers(800, 2000, n)]
    return datasets.Dataset.from_dict(
        {"audio": [{"array": w, "sampling_rate": rate} for w in waves], "label": [i % 2 for i in range(n)]}
    )


def hand_features(folder, values, *, modality: str, pooling: str, head: bool = False):
    """Pooled features (N, D) (and head logits (N, Z) when ``head``), one unpadded sample at a time.

    ``pooling``: ``"pooler"`` (the model's pooler_output), ``"mean"`` (mean over every position of the unpadded
    sample: tokens, frames, patches, or the spatial positions of a 4-D map), or ``"mean-normalized"``.
    """
    import transformers

    auto = {"text": transformers.AutoTokenizer, "image": transformers.AutoImageProcessor,
            "audio": transformers.AutoFeatureExtractor}[modality]
    processor = auto.from_pretrained(folder)
    if head:
        cls = {"text": transformers.AutoModelForSequenceClassification,
               "image": transformers.AutoModelForImageClassification}[modality]
        model = cls.from_pretrained(folder).eval()
        encoder = model.base_model
    else:
        model = encoder = transformers.AutoModel.from_pretrained(folder).eval()
        if model.config.is_encoder_decoder:  # T5, BART: the features are the encoder's
            encoder = model.get_encoder()
    feats, logits = [], []
    for value in values:
        if modality == "text":
            inputs = processor(value, return_tensors="pt")
        elif modality == "image":
            inputs = processor(images=value.convert("RGB"), return_tensors="pt")
        else:
            inputs = processor(value["array"], sampling_rate=value["sampling_rate"], return_tensors="pt")
        with torch.no_grad():
            enc = encoder(**inputs)
            if head:
                logits.append(model(**inputs).logits[0].numpy())
        if pooling == "pooler":
            f = enc.pooler_output.flatten(1)[0]
        else:
            h = enc.last_hidden_state[0]
            f = h.flatten(1).mean(1) if h.ndim == 3 else h.mean(0)  # (C, H, W) maps: over positions
            if pooling == "mean-normalized":
                f = f / f.norm()
        feats.append(f.numpy().astype(np.float64))
    return (np.array(feats), np.array(logits)) if head else np.array(feats)


def assert_same_stats(got, want, *, rtol: float):
    """Two FeatureStats hold the same statistics: counts exactly; sums within ``rtol`` of what a relative error of
    ``rtol`` in every feature (and F-label) value would move them: N * scale (first moments), N * scale^2 (second)."""
    a, b = got.centered(), want.centered()
    assert a.n == b.n
    n = b.n

    def scale(mean, scatter_diag):
        return np.abs(mean).max() + np.sqrt(scatter_diag.max() / n)

    sx = scale(b.mean_x, np.diag(b.scatter_x))
    sy = 1.0 if b.mean_y is None else scale(b.mean_y, np.einsum("jkk->jk", b.scatter_y))
    tolerance = {
        "mean_x": sx, "scatter_x": n * sx * sx, "class_scatter": n * sx, "head_soft": n,
        "mean_y": sy, "cross": n * sx * sy, "scatter_y": n * sy * sy,
    }
    for name in ("class_count", "head_hard", *tolerance):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if y is not None:
            np.testing.assert_allclose(x, y, rtol=0, atol=rtol * tolerance.get(name, 0), err_msg=name)
