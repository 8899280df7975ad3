"""The numpy embedder (memory/minilm.py) gives sentence-transformers' vectors without importing torch."""

import subprocess
import sys

import numpy as np
from seasoned.memory import embedding
from seasoned.memory.minilm import MiniLM

TEXTS = ["HTTP calls need a timeout of 10 s.", "timeout", "Read the last 50 lines of the log first.",
         "Add the tens, then the ones: 40 + 2 = 42. " * 40,  # longer than max_seq_length: truncated alike
         "émoji ✓ naïve café", "a"]


def test_vectors_match_sentence_transformers_in_the_order_given():
    from sentence_transformers import SentenceTransformer

    ours = MiniLM(embedding.model_path()).encode(TEXTS, batch_size=2)
    reference = SentenceTransformer(str(embedding.model_path()), device="cpu",
                                    local_files_only=True).encode(TEXTS, normalize_embeddings=True)
    assert ours.shape == (len(TEXTS), embedding.DIMENSION) and ours.dtype == np.float32
    assert np.abs(ours - reference).max() < 1e-4
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_embedding_a_query_does_not_import_torch():
    code = ("import sys; from seasoned.memory import embedding; v = embedding.embed_one('a timeout'); "
            "assert v.shape == (384,); assert embedding.get_model() is embedding.get_model(); "
            "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers', 'scipy') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
