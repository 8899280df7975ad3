"""LoRA adapters as memory items: trained on verified replies, checked on held-out ones, written for llama.cpp,
stored crash-safely, served only for the base model they were trained on, and managed by ``seasoned-admin``.

Weights come from a tiny randomly initialised llama model written as a GGUF (``tiny_llama.py``); one test
runs the embedded SmolLM2 to check the conversion on a real quantized model.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

for _module in ("torch", "transformers", "peft", "gguf", "llama_cpp"):
    pytest.importorskip(_module)

from seasoned.errors import AdapterError
from seasoned.graphs.context import demonstration_item
from seasoned.memory import MemoryBank
from seasoned.memory.adapters import AdapterRow, AdapterStore
from seasoned.memory.admin import main as admin
from seasoned.memory.lora_gguf import read_adapter_digest, read_base_info, write_adapter
from seasoned.memory.training import (
    TrainingConfig,
    due,
    maybe_train_in_background,
    train_adapter,
    wait_for_training,
)
from tiny_llama import write_tiny_llama

NS, SCOPE = "adapters", "addition"
SYSTEM = {"role": "system", "content": "You are a careful problem solver."}
# Tiny random model: a large step size learns the replies in two short epochs.
FAST = TrainingConfig(epochs=2, learning_rate=1e-2, batch_size=4, seed=0, max_seconds=900)


def files(folder) -> list:
    return [p for p in folder.rglob("*") if p.is_file()]


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-model")
    return write_tiny_llama(folder / "tiny.gguf", seed=0)


@pytest.fixture
def bank(tmp_path):
    bank = MemoryBank.open(f"sqlite:///{tmp_path}/mem.db", namespace=NS, chroma_path=str(tmp_path / "chroma"))
    yield bank
    bank.close()


def add_demonstrations(bank, model: str, count: int, start: int = 0, scope: str = SCOPE) -> None:
    """Verified replies as the curator stores them (key per task, the messages the model was given)."""
    for i in range(start, start + count):
        a, b = 11 + 7 * i % 80, 23 + 5 * i % 70
        task = f"What is {a} + {b}?\nGive the final answer on the last line as: Answer: <number>"
        item = demonstration_item(task=task, reply=f"{a} + {b} = {a + b}\nAnswer: {a + b}", scope=scope, model=model,
                                  run_id=f"run{i}", checker="env:addition", answer=str(a + b))
        item["data"]["messages"] = [SYSTEM, {"role": "user", "content": task}]
        bank.put(item["key"], item, namespace=NS, actor="curator", reason="verified demonstration")


@pytest.fixture
def own_model(tiny, tmp_path):
    """A private copy of the tiny model (tests change its file)."""
    path = tmp_path / "model.gguf"
    shutil.copyfile(tiny, path)
    return path, f"local/{path}"


def test_an_adapter_is_trained_stored_reloaded_and_served_only_for_its_model(bank, own_model, tmp_path):
    path, model = own_model
    add_demonstrations(bank, model, 12)
    result = train_adapter(bank.db, NS, model, SCOPE, config=FAST)
    adapter = result.adapter
    check = result.figures
    assert adapter.status == "active", adapter.reason
    assert check["adapter"]["nll"] < check["base"]["nll"]
    assert check["heldout"] == 2 and adapter.train_items == 10
    assert check["conversion"]["agree"] == check["conversion"]["of"] > 0  # llama.cpp + adapter == trained model
    assert adapter.path.is_file() and read_adapter_digest(adapter.path) == sha256(path)
    assert adapter.train_seconds > 0 and adapter.peak_rss_mb > 0

    with MemoryBank.open(f"sqlite:///{tmp_path}/mem.db", namespace=NS, chroma_path=str(tmp_path / "chroma")) as again:
        served = again.active_adapter(model, SCOPE)
        assert served is not None and served.id == adapter.id and served.path == adapter.path
        assert again.active_adapter(model, "general") is None
        assert again.active_adapter(model, SCOPE, namespace="elsewhere") is None
        assert again.active_adapter("openai/gpt-4o-mini", SCOPE) is None  # API models have no adapters

    write_tiny_llama(path, seed=1)  # the same model string, another base file: its digest differs
    assert bank.adapters.active(NS, model, SCOPE) is None
    assert bank.adapters.active(NS, model, SCOPE, digest=adapter.base_digest).id == adapter.id


def test_a_held_out_check_that_fails_keeps_the_adapter_out(bank, own_model):
    _, model = own_model
    add_demonstrations(bank, model, 8)
    # Learning rate 0: the LoRA stays at its initialisation (B = 0), so it cannot lower the held-out NLL.
    result = train_adapter(bank.db, NS, model, SCOPE, config=TrainingConfig(learning_rate=0.0, epochs=1, seed=0))
    assert result.adapter.status == "rejected"
    assert "NLL" in result.adapter.reason and result.figures["passed"] is False
    assert result.adapter.path.is_file()  # kept for inspection...
    assert bank.active_adapter(model, SCOPE) is None  # ...never served


def test_training_refuses_what_it_cannot_do(bank, own_model):
    _, model = own_model
    with pytest.raises(AdapterError, match="local models"):
        train_adapter(bank.db, NS, "openai/gpt-4o-mini", SCOPE)
    add_demonstrations(bank, model, 3)
    with pytest.raises(AdapterError, match="at least"):
        train_adapter(bank.db, NS, model, SCOPE, config=FAST)
    add_demonstrations(bank, model, 8, start=3)
    with pytest.raises(AdapterError, match="memory cap"):
        train_adapter(bank.db, NS, model, SCOPE, config=TrainingConfig(max_rss_mb=10))
    assert bank.adapters.list() == []  # a refusal before any work leaves nothing


def test_the_conversion_agrees_with_transformers_and_needs_the_qk_permutation(tiny, tmp_path, monkeypatch):
    """Random LoRA weights (not trained, so every matrix matters): llama.cpp with the adapter GGUF gives the
    logits of the transformers model with the LoRA merged; without the Q/K row permutation it does not."""
    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model
    from seasoned.memory import lora_gguf
    from seasoned.models.llama_cpu import open_llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(str(tiny.parent), gguf_file=tiny.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny.parent), gguf_file=tiny.name)
    torch.manual_seed(3)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear",
                                            init_lora_weights=False)).eval()
    weights = {name: (m.lora_A["default"].weight.detach().numpy(), m.lora_B["default"].weight.detach().numpy())
               for name, m in model.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A}
    ids = tokenizer("What is 12 + 34? Answer: 46", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        expected = model.merge_and_unload()(torch.tensor([ids])).logits[0].numpy()

    def llama_cpp_logits(adapter):
        llm = open_llama(tiny, lora_path=str(adapter), n_ctx=128, logits_all=True, verbose=False)
        llm.eval(ids)
        logits = np.array(llm.scores[:len(ids)])
        llm.close()
        return logits

    info = read_base_info(tiny)
    good = tmp_path / "good.gguf"
    write_adapter(good, weights, info=info, alpha=16, base_digest=sha256(tiny))
    got = llama_cpp_logits(good)
    assert np.abs(got - expected).max() < 1e-3 * max(1.0, np.abs(expected).max())
    assert (got.argmax(-1) == expected.argmax(-1)).all()

    monkeypatch.setattr(lora_gguf, "permute_rows", lambda matrix, n_head: matrix)
    wrong = tmp_path / "unpermuted.gguf"
    write_adapter(wrong, weights, info=info, alpha=16, base_digest=sha256(tiny))
    assert np.abs(llama_cpp_logits(wrong) - expected).max() > 1e-2


def test_a_crash_mid_write_leaves_no_half_written_adapter(bank, tmp_path, monkeypatch):
    store = AdapterStore(bank.db, root=tmp_path / "adapters")
    key = {"namespace": NS, "model": "local/x.gguf", "digest": "d" * 64, "scope": SCOPE}

    def half(path):
        path.write_bytes(b"GGUF half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        store.add(half, **key)
    assert store.list() == [] and not files(tmp_path / "adapters")  # no row, no file, no temp file

    def crash_before_commit(*args, **kwargs):
        raise KeyboardInterrupt  # killed between the rename and the commit

    monkeypatch.setattr(store, "_insert", crash_before_commit)
    with pytest.raises(KeyboardInterrupt):
        store.add(lambda path: path.write_bytes(b"GGUF whole"), **key)
    monkeypatch.undo()
    assert store.list() == [] and not files(tmp_path / "adapters")

    adapter = store.add(lambda path: path.write_bytes(b"GGUF whole"), **key, status="active")
    assert store.active(NS, "local/x.gguf", SCOPE, digest="d" * 64).id == adapter.id
    adapter.path.write_bytes(b"GGUF changed")  # damaged after it was written: not served
    assert store.active(NS, "local/x.gguf", SCOPE, digest="d" * 64) is None
    adapter.path.unlink()  # a row whose file is missing: not served
    assert store.active(NS, "local/x.gguf", SCOPE, digest="d" * 64) is None
    orphan = adapter.path.with_name("0" * 32 + ".gguf")
    orphan.write_bytes(b"GGUF orphan")  # a file whose row never committed
    assert store.sweep_orphans() == [orphan] and not orphan.exists()


def test_admin_lists_shows_exports_and_deletes_adapters(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SEASONED_HOME", str(tmp_path))
    url = f"sqlite:///{tmp_path}/mem.db"
    from seasoned.memory.db import Database

    db = Database(url)
    store = AdapterStore(db)
    adapter = store.add(lambda path: path.write_bytes(b"GGUF adapter bytes"), namespace=NS, model="local/x.gguf",
                        digest="d" * 64, scope=SCOPE, status="active", train_items=9)
    db.dispose()

    assert admin(["adapters", "list", "--db", url, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(a["id"], a["status"], a["train_items"]) for a in listed] == [(adapter.id, "active", 9)]
    assert admin(["adapters", "show", adapter.id[:8], "--db", url]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "local/x.gguf"
    assert admin(["adapters", "export", adapter.id[:8], str(tmp_path / "out.gguf"), "--db", url]) == 0
    assert (tmp_path / "out.gguf").read_bytes() == b"GGUF adapter bytes"
    assert admin(["adapters", "delete", adapter.id, "--db", url]) == 0
    capsys.readouterr()
    assert not adapter.path.exists()
    assert admin(["adapters", "list", "--db", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert admin(["adapters", "show", "abc123", "--db", url]) == 1
    assert "no adapter 'abc123'" in capsys.readouterr().err
    assert admin(["train", "--model", "openai/gpt-4o-mini", "--db", url]) == 1
    assert "local models" in capsys.readouterr().err


def test_training_starts_in_the_background_every_n_verified_demonstrations(bank, own_model):
    _, model = own_model
    add_demonstrations(bank, model, 7)
    assert not due(bank.db, NS, model, SCOPE, every=8)
    assert not maybe_train_in_background(bank.db, NS, model, SCOPE, every=8)
    add_demonstrations(bank, model, 1, start=7)
    assert maybe_train_in_background(bank.db, NS, model, SCOPE, every=8)
    assert not maybe_train_in_background(bank.db, NS, model, SCOPE, every=8)  # one training per key at a time
    assert wait_for_training(timeout=900)
    trained = bank.adapters.list(namespace=NS)
    assert len(trained) == 1 and trained[0].demos_seen == 8 and trained[0].status in ("active", "rejected")
    assert not due(bank.db, NS, model, SCOPE, every=8)  # nothing new since
    assert bank.db.url and AdapterRow.__tablename__ == "memory_adapters"


def test_curation_keeps_the_messages_the_model_was_given(bank, tmp_path):
    """What an adapter trains on is what the solver sends: the demonstration stores those very messages."""
    from types import SimpleNamespace

    from seasoned.graphs import Agent, parse_strategy
    from seasoned.models import Gateway, Ledger, scripted

    model = scripted.register("adapter-curation", fn=lambda messages, params: "40 + 2 = 42\nAnswer: 42")

    async def check(text):
        return SimpleNamespace(passed=text.endswith("42"), reward=1.0, details="")

    agent = Agent(gateway=Gateway("scripted/adapter-curation", ledger=Ledger()), memory=bank, namespace=NS,
                  strategy=parse_strategy("adaptive-2", seed=0), db_url=f"sqlite:///{tmp_path}/runs.db",
                  memory_channel="none")
    result = agent.run("What is 40 + 2?", checker=check)
    assert result.verified
    demo = next(i for i in bank.list(kinds=["demonstration"]))
    assert demo.data["messages"] == model.seen[-1][0]
    assert demo.data["raw_reply"] == "40 + 2 = 42\nAnswer: 42"


@pytest.mark.real_model
def test_the_conversion_on_the_embedded_model_keeps_its_greedy_tokens(tmp_path):
    """SmolLM2 (Q4_1 in llama.cpp, dequantized in transformers) with a random LoRA: at each of 20 steps of
    the merged model's greedy decode, llama.cpp + the adapter GGUF picks the same next token; and the
    chat-templated prompt tokenizes exactly as the local provider tokenizes it (training matches serving)."""
    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model
    from seasoned.models.llama_cpu import open_llama
    from seasoned.models.local import load, resolve_model_path
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = resolve_model_path("smollm2-135m")
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    messages = [SYSTEM, {"role": "user", "content": "What is 27 + 58?\nGive the final answer on the last line "
                                                      "as: Answer: <number>"}]
    prompt = tokenizer(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True),
                       add_special_tokens=False)["input_ids"]
    assert prompt == load("smollm2-135m").prompt_tokens(messages)

    base = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    torch.manual_seed(0)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear",
                                            init_lora_weights=False))
    weights = {}
    for module_name, module in model.named_modules():
        if hasattr(module, "lora_A") and "default" in module.lora_A:
            module.lora_B["default"].weight.data *= 0.05  # a LoRA of a trained size, not a random takeover
            weights[module_name] = (module.lora_A["default"].weight.detach().numpy(),
                                    module.lora_B["default"].weight.detach().numpy())
    merged = model.merge_and_unload().eval()
    with torch.no_grad():
        out = merged.generate(input_ids=torch.tensor([prompt]), do_sample=False, max_new_tokens=20,
                              pad_token_id=tokenizer.eos_token_id, eos_token_id=None)
        sequence = out[0].tolist()
        expected = merged(torch.tensor([sequence])).logits[0].numpy()
    adapter = tmp_path / "adapter.gguf"
    write_adapter(adapter, weights, info=read_base_info(gguf_path), alpha=16, base_digest=sha256(gguf_path))
    llm = open_llama(gguf_path, lora_path=str(adapter), n_ctx=256, logits_all=True, verbose=False)
    llm.eval(sequence)
    got = np.array(llm.scores[:len(sequence)])
    llm.close()
    steps = range(len(prompt) - 1, len(sequence) - 1)  # the positions that chose the 20 new tokens
    assert [int(got[i].argmax()) for i in steps] == [int(expected[i].argmax()) for i in steps]
