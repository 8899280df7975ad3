"""A planted ONNX export of the embedder is checked on every load, not only at export time (issue 22, row 10).

Before: a valid-but-wrong export under SEASONED_HOME/embedders (a constant vector, NaN output, a 768-d
model) was loaded without a check (3/3), so every later embedding was wrong. Now each load embeds the probe
texts and compares them with sentence-transformers' vectors kept at export time (and with what any
embedder of the model must give); a refused export is removed and written anew.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from seasoned.memory import embedding, onnx_embedder

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper

KINDS = {"constant": 384, "nan": 384, "768-d": 768, "zero": 384}


def planted_model(kind: str, path: Path) -> None:
    """A small ONNX graph with the export's inputs and output that runs fine and embeds wrongly."""
    dim = KINDS[kind]
    weights = np.random.default_rng(0).normal(size=dim).astype(np.float32)
    nodes = [helper.make_node("Cast", ["input_ids"], ["ids"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["ids", "axis"], ["column"]),
             helper.make_node("Mul", ["column", "weights"], ["spread"])]
    tail = {"constant": [helper.make_node("Mul", ["spread", "zero"], ["flat"]),
                         helper.make_node("Add", ["flat", "one"], ["last_hidden_state"])],
            "zero": [helper.make_node("Mul", ["spread", "zero"], ["last_hidden_state"])],
            "nan": [helper.make_node("Mul", ["spread", "nan"], ["last_hidden_state"])],
            "768-d": [helper.make_node("Sin", ["spread"], ["last_hidden_state"])]}[kind]
    constants = [numpy_helper.from_array(np.array([2], dtype=np.int64), "axis"),
                 numpy_helper.from_array(weights, "weights"),
                 numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
                 numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
                 numpy_helper.from_array(np.array(np.nan, dtype=np.float32), "nan")]
    inputs = [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "tokens"])
              for name in ("input_ids", "attention_mask")]
    output = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "tokens", dim])
    graph = helper.make_graph(nodes + tail, "planted", inputs, [output], constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def plant(folder: Path, kind: str, *, probes: str = "consistent") -> None:
    """An export folder a forger would write: the planted model, the real tokenizer, and a probe file that
    agrees with the planted model (``consistent``) or none at all (``missing``)."""
    folder.mkdir(parents=True, exist_ok=True)
    planted_model(kind, folder / "model.onnx")
    shutil.copy(embedding.model_path() / "tokenizer.json", folder / "tokenizer.json")
    manifest = {"format": onnx_embedder.FORMAT, "inputs": ["input_ids", "attention_mask"], "max_seq_length": 256,
                "pad_id": 0, "pad_token": "[PAD]", "normalize": True}
    (folder / onnx_embedder.MANIFEST).write_text(json.dumps(manifest))
    if probes == "consistent":
        with np.errstate(all="ignore"):
            vectors = onnx_embedder.OnnxEmbedder(folder).encode(list(onnx_embedder.PROBES), batch_size=3)
        np.save(folder / onnx_embedder.PROBE_FILE, vectors, allow_pickle=False)
        manifest["probes_sha256"] = hashlib.sha256((folder / onnx_embedder.PROBE_FILE).read_bytes()).hexdigest()
        (folder / onnx_embedder.MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("probes", ["consistent", "missing"])
def test_a_planted_export_that_runs_but_embeds_wrongly_is_refused_on_load(tmp_path, kind, probes):
    plant(tmp_path / "export", kind, probes=probes)
    dimension = onnx_embedder.model_dimension(embedding.model_path())
    assert dimension == embedding.DIMENSION
    with pytest.raises((onnx_embedder.ExportRefused, OSError)), np.errstate(all="ignore"):
        onnx_embedder.load(tmp_path / "export", dimension)


def test_a_probe_file_that_does_not_match_its_digest_is_refused(tmp_path):
    plant(tmp_path / "export", "768-d")
    np.save(tmp_path / "export" / onnx_embedder.PROBE_FILE, np.ones((3, 768), dtype=np.float32))
    with pytest.raises(onnx_embedder.ExportRefused, match="digest"):
        onnx_embedder.load(tmp_path / "export", None)


def test_probe_vectors_that_point_elsewhere_are_refused():
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(3, 384)).astype(np.float32)
    onnx_embedder.check_probes(reference * 2, reference, 384)  # the same directions: accepted
    with pytest.raises(onnx_embedder.ExportRefused, match="embeds differently"):
        onnx_embedder.check_probes(rng.normal(size=(3, 384)).astype(np.float32), reference, 384)


def test_a_planted_export_in_a_home_is_replaced_by_a_real_one(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SEASONED_HOME", str(tmp_path))
    monkeypatch.setattr(embedding, "_model", None)
    exported = onnx_embedder.export_dir(tmp_path, embedding.model_path())
    plant(exported, "constant")
    with caplog.at_level(logging.WARNING, logger="seasoned.memory.embedding"):
        model = embedding.get_model()
    assert not isinstance(model, onnx_embedder.OnnxEmbedder)  # refused: sentence-transformers embeds
    assert "cannot be loaded" in caplog.text and "one vector for different texts" in caplog.text
    good = embedding.embed(["sort the list first", "retry with backoff"])
    assert float(good[0] @ good[1]) < 0.9

    embedding._model = None  # as a new process would: the export was written anew, and it is right
    assert isinstance(embedding.get_model(), onnx_embedder.OnnxEmbedder)
    np.testing.assert_allclose(embedding.embed(["sort the list first", "retry with backoff"]), good, atol=2e-5)
