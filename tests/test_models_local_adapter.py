"""LoRA adapters on the embedded model: loaded for their own base file only, applied per call, recorded."""

from pathlib import Path

import pytest
from seasoned.benchmarks.adapter_speed import random_adapter
from seasoned.models import Gateway, Ledger, ModelConfigError, scripted
from seasoned.models.local import model_digest, resolve_model_path

pytestmark = pytest.mark.real_model
MODEL = "local/smollm2-135m"


def write_lora(path: Path, base_digest: str | None = None) -> Path:
    """A tiny random LoRA (rank 4, the first two blocks), strong enough to change greedy replies."""
    return random_adapter(path, MODEL, rank=4, blocks=2, scale=0.5, base_digest=base_digest)


@pytest.fixture(scope="module")
def adapter(tmp_path_factory) -> Path:
    return write_lora(tmp_path_factory.mktemp("lora") / "tiny.gguf")


def test_model_digest_is_the_sha256_of_the_file_and_names_agree():
    import hashlib

    path = resolve_model_path("smollm2-135m")
    assert model_digest(MODEL) == model_digest("smollm2-135m") == model_digest(path)
    assert model_digest(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_adapter_changes_the_reply_under_a_fixed_seed_and_is_recorded(adapter):
    gw = Gateway(MODEL, ledger=Ledger())
    prompt = "Name three colours."
    base = gw.complete(prompt, max_tokens=12, seed=3, temperature=0.0)
    tuned = gw.complete(prompt, max_tokens=12, seed=3, temperature=0.0, adapter=adapter)
    again = gw.complete(prompt, max_tokens=12, seed=3, temperature=0.0, adapter=str(adapter))
    base_again = gw.complete(prompt, max_tokens=12, seed=3, temperature=0.0)
    assert tuned.text != base.text  # the adapter is applied
    assert again.text == tuned.text and base_again.text == base.text  # and only to the calls that name it
    adapters = [record.adapter for record in gw.ledger.calls()]
    assert adapters == [None, str(adapter.resolve()), str(adapter.resolve()), None]


def test_a_gateway_wide_adapter_applies_to_every_call(adapter):
    gw = Gateway(MODEL, ledger=Ledger(), adapter=adapter)
    reply = gw.complete("Name three colours.", max_tokens=12, seed=3, temperature=0.0)
    direct = Gateway(MODEL, ledger=Ledger()).complete("Name three colours.", max_tokens=12, seed=3,
                                                      temperature=0.0, adapter=adapter)
    assert reply.text == direct.text and gw.ledger.calls()[0].adapter == str(adapter.resolve())


def test_an_adapter_for_another_model_file_is_refused(tmp_path):
    wrong = write_lora(tmp_path / "other.gguf", "0" * 64)
    gw = Gateway(MODEL, ledger=Ledger())
    with pytest.raises(ModelConfigError, match="trained on another model file"):
        gw.complete("Hi.", max_tokens=4, adapter=wrong)
    assert gw.ledger.calls() == []  # refused before any call


def test_files_that_are_not_adapters_of_this_model_are_refused(tmp_path):
    import gguf

    gw = Gateway(MODEL, ledger=Ledger())
    with pytest.raises(ModelConfigError, match="no file"):
        gw.complete("Hi.", max_tokens=4, adapter=tmp_path / "missing.gguf")
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf at all")
    with pytest.raises(ModelConfigError, match="not a readable GGUF"):
        gw.complete("Hi.", max_tokens=4, adapter=tmp_path / "junk.gguf")
    unstamped = tmp_path / "unstamped.gguf"
    writer = gguf.GGUFWriter(str(unstamped), "llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelConfigError, match="seasoned.base_digest"):
        gw.complete("Hi.", max_tokens=4, adapter=unstamped)
    with pytest.raises(ModelConfigError, match="not a LoRA adapter"):
        gw.complete("Hi.", max_tokens=4, adapter=resolve_model_path("smollm2-135m"))  # a model, not an adapter


def test_an_adapter_for_a_model_that_is_not_local_is_refused(adapter):
    scripted.register("no-adapters", replies=["never sent"])
    gw = Gateway("scripted/no-adapters", ledger=Ledger())
    with pytest.raises(ModelConfigError, match="local/ models only"):
        gw.complete("Hi.", max_tokens=4, adapter=adapter)
    with pytest.raises(ModelConfigError, match="fallback chain"):
        gw.complete("Hi.", model=f"{MODEL}|{MODEL}", max_tokens=4, adapter=adapter)
    assert scripted.get("no-adapters").calls == 0
