"""Tiny random transformers checkpoints built by the tests (tens of KB each, seconds to build, fully offline).

Each builder writes a complete Hugging Face folder (``config.json``, ``model.safetensors``, and the tokenizer,
image processor, feature extractor or processor beside it) and returns its path. Weights are random but seeded, so two
builds with the same arguments are byte-identical in their weights. Tokenizers are trained here on a small
corpus with the ``tokenizers`` library: no download is ever needed.

Shared by every test that needs a model: label encoders, feature extraction, the Hub server, the pipeline.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

CORPUS = (
    "a photo of a dog", "a photo of a cat", "a puppy plays in the park", "the airplane flies over the city",
    "what is the capital of france", "how many people live in paris", "this movie was great", "this film was awful",
    "free entry win a prize now", "are we meeting for lunch today", "a red car on the road", "the stock market fell",
)

WORDPIECE_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
BPE_SPECIAL = "<|endoftext|>"


def _wordpiece_tokenizer():
    """A BERT-style tokenizer (lower-casing, [CLS] ... [SEP], [PAD] = 0)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(CORPUS * 4, trainers.WordPieceTrainer(vocab_size=200, special_tokens=WORDPIECE_SPECIALS))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=64,
    )


def _bpe_tokenizer(*, pad: bool):
    """A GPT-2-style byte-level BPE tokenizer; like GPT-2 it has no pad token unless ``pad``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=[BPE_SPECIAL], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    specials = dict(bos_token=BPE_SPECIAL, eos_token=BPE_SPECIAL, unk_token=BPE_SPECIAL)
    if pad:
        specials["pad_token"] = BPE_SPECIAL
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=64, **specials)


def _save(model, preprocessor, path: Path, *, trained_pooler: bool = True) -> Path:
    """Save ``model`` and its preprocessor; a pooler's biases are given values as training leaves them (transformers
    initialises them to zero, which hf-emms reads as a pooler that never trained) unless ``trained_pooler=False``."""
    if trained_pooler:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "pooler" in name and name.endswith("bias"):
                    p.normal_(0.0, 0.02)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)  # safetensors by default
    preprocessor.save_pretrained(path)
    return path


def _seeded(fn):
    @functools.wraps(fn)
    def wrapper(path, *args, seed: int = 0, **kwargs):
        torch.manual_seed(seed)
        return fn(Path(path), *args, **kwargs)

    return wrapper


@_seeded
def bert(path, *, hidden: int = 32, layers: int = 2, classifier_labels: list[str] | None = None,
         trained_pooler: bool = True) -> Path:
    """A BERT text encoder (``BertModel``), or ``BertForSequenceClassification`` with ``classifier_labels``;
    ``trained_pooler=False`` keeps the pooler as initialised (biases exactly zero)."""
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    tokenizer = _wordpiece_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
    )
    if classifier_labels:
        config.id2label = dict(enumerate(classifier_labels))
        config.label2id = {name: i for i, name in enumerate(classifier_labels)}
        return _save(BertForSequenceClassification(config), tokenizer, path, trained_pooler=trained_pooler)
    return _save(BertModel(config), tokenizer, path, trained_pooler=trained_pooler)


@_seeded
def t5(path, *, hidden: int = 32, layers: int = 2) -> Path:
    """A T5 encoder-decoder (``T5Model``: its forward needs decoder inputs, so only its encoder can read a text)."""
    from transformers import T5Config, T5Model

    tokenizer = _wordpiece_tokenizer()
    config = T5Config(vocab_size=len(tokenizer), d_model=hidden, d_ff=2 * hidden, d_kv=hidden // 2, num_layers=layers,
                      num_heads=2, pad_token_id=tokenizer.pad_token_id, decoder_start_token_id=tokenizer.pad_token_id)
    return _save(T5Model(config), tokenizer, path)


@_seeded
def bart(path, *, hidden: int = 32, layers: int = 2) -> Path:
    """A BART encoder-decoder (``BartModel``, which feeds its decoder the shifted input when given none)."""
    from transformers import BartConfig, BartModel

    tokenizer = _wordpiece_tokenizer()
    config = BartConfig(vocab_size=len(tokenizer), d_model=hidden, encoder_layers=layers, decoder_layers=layers,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=2 * hidden,
                        decoder_ffn_dim=2 * hidden, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id)
    return _save(BartModel(config), tokenizer, path)


@_seeded
def gpt2(path, *, hidden: int = 32, layers: int = 2) -> Path:
    """A GPT-2 causal LM (``GPT2LMHeadModel``) whose tokenizer, like GPT-2's, has no pad token."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = _bpe_tokenizer(pad=False)
    eos = tokenizer.convert_tokens_to_ids(BPE_SPECIAL)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_embd=hidden, n_layer=layers, n_head=2, n_positions=64,
        bos_token_id=eos, eos_token_id=eos,
    )
    return _save(GPT2LMHeadModel(config), tokenizer, path)


@_seeded
def clip_text(path, *, hidden: int = 32, layers: int = 2, projection: int = 16) -> Path:
    """A CLIP text tower with its projection (``CLIPTextModelWithProjection``)."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    tokenizer = _bpe_tokenizer(pad=True)
    eos = tokenizer.convert_tokens_to_ids(BPE_SPECIAL)
    config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=2, max_position_embeddings=64, projection_dim=projection,
        bos_token_id=eos, eos_token_id=eos, pad_token_id=eos,
    )
    return _save(CLIPTextModelWithProjection(config), tokenizer, path)


@_seeded
def vit(path, *, hidden: int = 32, layers: int = 2, image_size: int = 32,
        classifier_labels: list[str] | None = None) -> Path:
    """A ViT image encoder (``ViTModel``), or ``ViTForImageClassification`` with ``classifier_labels``."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor, ViTModel

    config = ViTConfig(
        hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=2 * hidden,
        image_size=image_size, patch_size=8,
    )
    processor = ViTImageProcessor(size={"height": image_size, "width": image_size})
    if classifier_labels:
        config.id2label = dict(enumerate(classifier_labels))
        config.label2id = {name: i for i, name in enumerate(classifier_labels)}
        return _save(ViTForImageClassification(config), processor, path)
    return _save(ViTModel(config), processor, path)


@_seeded
def resnet(path, *, image_size: int = 32) -> Path:
    """A ResNet (``ResNetModel``): a CNN whose last hidden state is a 4-D map (batch, channels, h, w)."""
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetModel

    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic")
    processor = ConvNextImageProcessor(size={"shortest_edge": image_size}, crop_pct=1.0)
    return _save(ResNetModel(config), processor, path)


@_seeded
def wav2vec2(path, *, hidden: int = 32, layers: int = 2) -> Path:
    """A wav2vec2 audio encoder (``Wav2Vec2Model``) with its feature extractor (16 kHz raw waveforms)."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    config = Wav2Vec2Config(
        hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=2 * hidden,
        conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2, vocab_size=8,
    )
    extractor = Wav2Vec2FeatureExtractor(sampling_rate=16_000, return_attention_mask=True)
    return _save(Wav2Vec2Model(config), extractor, path)


@_seeded
def vilt(path, *, hidden: int = 32, layers: int = 2, image_size: int = 32) -> Path:
    """A ViLT-like joint image + text encoder (``ViltModel``: text tokens and image patches in one transformer),
    saved with its ``ViltProcessor`` (a BERT-style tokenizer + ``ViltImageProcessor``)."""
    from transformers import ViltConfig, ViltImageProcessor, ViltModel, ViltProcessor

    tokenizer = _wordpiece_tokenizer()
    config = ViltConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=2 * hidden, image_size=image_size, patch_size=8, max_position_embeddings=64,
        max_image_length=-1, pad_token_id=tokenizer.pad_token_id,
    )
    images = ViltImageProcessor(size={"shortest_edge": image_size}, size_divisor=8)
    return _save(ViltModel(config), ViltProcessor(image_processor=images, tokenizer=tokenizer), path)


@_seeded
def clip(path, *, hidden: int = 32, layers: int = 2, image_size: int = 32, projection: int = 16) -> Path:
    """A CLIP-like dual encoder (``CLIPModel``: separate image and text towers, each projected to ``projection``),
    saved with its ``CLIPProcessor`` (a byte-level BPE tokenizer + ``CLIPImageProcessor``)."""
    from tokenizers import processors
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = _bpe_tokenizer(pad=True)
    eos = tokenizer.convert_tokens_to_ids(BPE_SPECIAL)
    # Like CLIP's own tokenizer, every text ends with the end token: the text tower pools at its first occurrence
    # (padding uses the same token and must come after it).
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {BPE_SPECIAL}", pair=f"$A {BPE_SPECIAL} $B {BPE_SPECIAL}", special_tokens=[(BPE_SPECIAL, eos)])
    tower = dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=2)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), max_position_embeddings=64, bos_token_id=eos, eos_token_id=eos,
                         pad_token_id=eos, **tower),
        vision_config=dict(image_size=image_size, patch_size=8, **tower), projection_dim=projection,
    )
    crop = {"height": image_size, "width": image_size}
    images = CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size=crop)
    return _save(CLIPModel(config), CLIPProcessor(image_processor=images, tokenizer=tokenizer), path)
