"""The embedder's ONNX export: written once per home, the same vectors as sentence-transformers, and a damaged
or unsuitable export never breaks embedding."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from seasoned.memory import embedding, onnx_embedder

TEXTS = ["how do I retry a flaky socket call?", "", "Zürich ünïcode ✓ 数学 " * 60,  # past the 256-token cut
         "divide by zero", *[f"note {i}: sort the list before the binary search" for i in range(70)]]


@pytest.fixture
def fresh_embedder(tmp_path, monkeypatch):
    """A home of its own, and no embedder loaded in this process yet (restored afterwards)."""
    monkeypatch.setenv("SEASONED_HOME", str(tmp_path))
    monkeypatch.setattr(embedding, "_model", None)
    return tmp_path


def test_the_first_load_exports_and_the_next_runs_the_export_with_the_same_vectors(fresh_embedder, capfd):
    first = embedding.get_model()
    assert not isinstance(first, onnx_embedder.OnnxEmbedder)  # no export yet: sentence-transformers
    assert "Loading weights" not in capfd.readouterr().err  # no progress bar in the application's output
    exported = onnx_embedder.export_dir(fresh_embedder, embedding.model_path())
    assert (exported / "model.onnx").is_file() and (exported / onnx_embedder.MANIFEST).is_file()
    reference = embedding.embed(TEXTS, batch_size=16)

    embedding._model = None  # as a new process would
    assert isinstance(embedding.get_model(), onnx_embedder.OnnxEmbedder)
    vectors = embedding.embed(TEXTS, batch_size=16)
    assert vectors.shape == (len(TEXTS), embedding.DIMENSION) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors, reference, atol=2e-5)
    # the order of the input is kept although batches are formed by length
    np.testing.assert_allclose(embedding.embed(TEXTS[::-1], batch_size=16), vectors[::-1], atol=1e-6)


def test_a_damaged_export_falls_back_to_sentence_transformers_and_is_written_anew(fresh_embedder, caplog):
    exported = onnx_embedder.export_dir(fresh_embedder, embedding.model_path())
    exported.mkdir(parents=True)
    (exported / onnx_embedder.MANIFEST).write_text('{"format": 1, "inputs": ["input_ids"], "max_seq_length": 8,'
                                                   ' "pad_id": 0, "pad_token": "[PAD]", "normalize": true}')
    (exported / "model.onnx").write_bytes(b"not a model")
    (exported / "tokenizer.json").write_text("{}")
    with caplog.at_level(logging.WARNING, logger="seasoned.memory.embedding"):
        model = embedding.get_model()
    assert not isinstance(model, onnx_embedder.OnnxEmbedder)
    assert "cannot be loaded" in caplog.text
    assert embedding.embed(["still embeds"]).shape == (1, embedding.DIMENSION)
    embedding._model = None
    assert isinstance(embedding.get_model(), onnx_embedder.OnnxEmbedder)  # the export was written anew


def test_a_model_the_export_cannot_reproduce_is_not_exported(tmp_path):
    def named(name: str, config: dict | None = None):
        return type(name, (), {"get_config_dict": lambda self: config or {}})()

    dense = [named("Transformer"), named("Pooling", {"pooling_mode": "mean"}), named("Dense")]
    cls_pooling = [named("Transformer"), named("Pooling", {"pooling_mode": "cls"})]
    assert not onnx_embedder.exportable(dense) and not onnx_embedder.exportable(cls_pooling)
    assert onnx_embedder.exportable([named("Transformer"), named("Pooling", {"pooling_mode": "mean"}),
                                     named("Normalize")])
    assert onnx_embedder.export(dense, tmp_path / "x") is False
    assert not (tmp_path / "x").exists()


def test_a_home_the_export_cannot_be_written_to_is_no_error(tmp_path):
    plain = [type(name, (), {"get_config_dict": lambda self: {"pooling_mode": "mean"}})()
             for name in ("Transformer", "Pooling", "Normalize")]
    (tmp_path / "embedders").write_text("a file where the folder would go")
    assert onnx_embedder.export(plain, tmp_path / "embedders" / "key") is False


def test_the_export_key_changes_when_the_model_folder_changes(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    before = onnx_embedder.cache_key(tmp_path)
    assert onnx_embedder.cache_key(tmp_path) == before
    (tmp_path / "config.json").write_text('{"changed": true}')
    assert onnx_embedder.cache_key(tmp_path) != before
