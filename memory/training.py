"""Test-time training: a LoRA adapter trained on a namespace's own verified replies, checked before it is used.

For a local model (``local/...``), the demonstrations the curator keeps (memory kind ``demonstration``: the
task as the model was given it, and the reply an environment's check accepted) are training data
(rejection-sampling fine-tuning, as STaR/ReST; no text written by anyone but the model). ``train_adapter``
gathers those of one (namespace, model, scope), holds out a slice, trains a LoRA with transformers + peft on
the base GGUF dequantized (CPU, torch threads = the free cores, seeded), runs the held-out check, writes the adapter
as a llama.cpp GGUF (``lora_gguf``) and stores it (``adapters``): ``active`` when it passed, ``rejected``
(kept for inspection, never served) when it did not.

The held-out check (robust with few items): the adapter is used only if, on the held-out verified replies,
(1) their mean negative log-likelihood per reply token given their prompts is lower with the adapter than
without, pooled over all held-out tokens (a low-variance figure even for 2 items: every token counts), and
(2) when the items carry a verified answer, greedy replies with the adapter contain it (as the reply's
``Answer:`` line, or its last line) at least as often as greedy replies without: an adapter that fits the
replies' wording but breaks their answers is kept out. Greedy decoding makes (2) deterministic, and it runs
through llama.cpp with the written adapter GGUF, so it checks what will be served; at every step of those
replies the trained model must mostly pick the same token (a conversion check: a broken file is refused).

Heavy libraries (torch, transformers, peft, gguf) are imported inside the functions that use them. Training
runs on demand (``seasoned-admin train``) or in the background every ``SEASONED_TRAIN_EVERY`` new verified
demonstrations of a key (``maybe_train_in_background``: one subprocess per key, off the request path;
``wait_for_training`` waits for them).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from seasoned.errors import AdapterError
from seasoned.settings import settings
from sqlalchemy import select

from .adapters import Adapter, AdapterStore, base_digest, local_model_name
from .db import Database, ItemRow

log = logging.getLogger(__name__)

MAX_PROMPT_TOKENS = 1024
MAX_CHECK_TOKENS = 96  # greedy reply length in the held-out check (answers come within a few lines)
MIN_ITEMS = 6  # fewer verified replies than this are not worth an adapter (and leave < 2 held out)


@dataclass(frozen=True)
class Example:
    """One verified reply: the messages the model was given (system + task), its reply, the verified answer."""

    item_id: str
    messages: list[dict]
    reply: str
    answer: str | None = None


@dataclass
class TrainingConfig:
    """How an adapter is trained and checked (``max_seconds``/``max_rss_mb`` default to the settings)."""

    rank: int = 8
    alpha: float = 16.0
    epochs: int = 3
    learning_rate: float = 3e-4  # SmolLM2, 19 replies, batch 4: 1e-3 lowered the held-out NLL after 1 step, raised it after 9
    batch_size: int = 4
    seed: int = 0
    heldout_fraction: float = 0.2
    min_heldout: int = 2
    min_items: int = MIN_ITEMS
    max_items: int = 200  # the newest verified replies first
    max_reply_tokens: int = 256
    reply: str = "raw"  # "raw": the reply as the model wrote it; "compact": the curator's compacted form
    max_seconds: float | None = None
    max_rss_mb: float | None = None
    threads: int | None = None  # torch threads (default: the cores not busy; see training_threads)
    cache_base: bool = True  # keep the dequantized base under SEASONED_HOME/adapters/.base (about 4 bytes a weight)

    def resolved(self) -> TrainingConfig:
        s = settings()
        return TrainingConfig(**{**asdict(self),
                                 "max_seconds": self.max_seconds if self.max_seconds is not None else s.train_max_seconds,
                                 "max_rss_mb": self.max_rss_mb if self.max_rss_mb is not None else s.train_max_rss_mb,
                                 "threads": self.threads or training_threads()})


def training_threads() -> int:
    """The cores not busy (at least one). torch's threads, like llama.cpp's, wait for each other: on 2 cores
    beside one busy process, a training step took 21 s with 2 threads and 2.3 s with 1."""
    from seasoned.models.local import default_threads

    return default_threads()


# --- training data ---------------------------------------------------------------------------------------
def demonstration_rows(db: Database, namespace: str, model: str, scope: str) -> list[ItemRow]:
    """The active, verified demonstrations of (namespace, model, scope) that hold a model's reply (acting
    episodes, replayed as steps, are not replies to train on), newest first."""
    with db.read() as s:
        rows = list(s.scalars(select(ItemRow).where(
            ItemRow.namespace == namespace, ItemRow.kind == "demonstration", ItemRow.status == "active",
            ItemRow.verified.is_(True), ItemRow.task_signature == scope,
        ).order_by(ItemRow.updated_at.desc(), ItemRow.id)))
    return [r for r in rows if isinstance(r.data, dict) and r.data.get("model") == model
            and not r.data.get("steps") and r.data.get("task")]


def gather(db: Database, namespace: str, model: str, scope: str, *, reply: str = "raw",
           limit: int = 200) -> list[Example]:
    """The training examples of a key: each demonstration's messages (as stored by the curator; an older
    item without them gets the system message its siblings were given, and its task as the user turn) and
    its verified reply (``raw``: as the model produced it; ``compact``: as the curator compacted it)."""
    if reply not in ("raw", "compact"):
        raise AdapterError(f"reply must be 'raw' or 'compact', not {reply!r}")
    rows = demonstration_rows(db, namespace, model, scope)[:limit]
    stored = [r.data.get("messages") for r in rows if _valid_messages(r.data.get("messages"))]
    system = next((m[0] for m in stored if m[0].get("role") == "system"), None)
    examples = []
    for row in rows:
        data = row.data
        text = (data.get("raw_reply") if reply == "raw" else None) or data.get("reply") or row.content
        messages = data.get("messages")
        if not _valid_messages(messages):
            messages = [*([system] if system else []), {"role": "user", "content": str(data["task"])}]
        if str(text or "").strip():
            answer = data.get("answer")
            examples.append(Example(row.id, [dict(m) for m in messages], str(text).strip(),
                                    None if answer is None else str(answer)))
    return examples


def _valid_messages(messages: Any) -> bool:
    return (isinstance(messages, list) and bool(messages) and len(messages) <= 8
            and all(isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("role") in
                    ("system", "user", "assistant") for m in messages)
            and messages[-1]["role"] == "user")


def split(examples: Sequence[Example], fraction: float = 0.2, minimum: int = 2,
          seed: int = 0) -> tuple[list[Example], list[Example]]:
    """(train, held out): a seeded shuffle of the items in a stable order (their text, not their random
    ids: the same replies give the same split), ``fraction`` held out (at least ``minimum``)."""
    order = sorted(examples, key=lambda e: (json.dumps(e.messages, sort_keys=True), e.reply, e.item_id))
    random.Random(seed).shuffle(order)
    held = max(minimum, round(len(order) * fraction))
    if len(order) - held < 2:
        raise AdapterError(f"{len(order)} verified replies leave too few to train on after holding out {held}")
    return order[held:], order[:held]


# --- the answer in a reply (for the held-out check; model output is untrusted: bounded, linear) ----------
_ANSWER = re.compile(r"answer\s*+(?:is)?\s*+[:=]\s*+([^\n]{0,200})", re.IGNORECASE)


def reply_answer(text: str) -> str:
    """The answer a reply gives: its last ``Answer: X``, else its last non-empty line (normalised)."""
    text = (text or "")[-4000:]
    found = _ANSWER.findall(text)
    value = found[-1] if found else next((ln for ln in reversed(text.splitlines()) if ln.strip()), "")
    return _normal(value)


def _normal(value: str) -> str:
    return re.sub(r"\s+", " ", value.strip().strip("`*").strip().rstrip(".").replace(",", "")).lower()


# --- measuring -----------------------------------------------------------------------------------------
def current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


# --- the model -------------------------------------------------------------------------------------------
def _load_base(gguf_path: Path, cache: Path | None, tokenizer_class: Any, model_class: Any, torch: Any):
    """(tokenizer, float32 model) of a GGUF: from ``cache`` (safetensors written by an earlier training of
    the same file; a load in seconds), else dequantized from the GGUF (slow: Q4 blocks in numpy) and then
    written to ``cache`` under a temporary name and renamed, so a cache is whole or absent."""
    if cache is not None and (cache / "config.json").is_file():
        try:
            return (tokenizer_class.from_pretrained(str(cache)),
                    model_class.from_pretrained(str(cache), dtype=torch.float32))
        except Exception as err:  # noqa: BLE001 - a damaged cache: load from the GGUF and write it again
            log.warning("cached base model %s unusable (%s); loading the GGUF", cache, err)
            shutil.rmtree(cache, ignore_errors=True)
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = tokenizer_class.from_pretrained(folder, gguf_file=name)
    model = model_class.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    if cache is not None:
        temporary = cache.with_name(f".{cache.name}.tmp-{os.getpid()}")
        try:
            shutil.rmtree(temporary, ignore_errors=True)
            # ``save_pretrained`` refuses a model loaded from a GGUF: write its config and weights directly
            from safetensors.torch import save_model

            temporary.mkdir(parents=True)
            model.config.save_pretrained(str(temporary))
            save_model(model, str(temporary / "model.safetensors"))
            tokenizer.save_pretrained(str(temporary))
            os.replace(temporary, cache)
        except OSError as err:  # a read-only or full home: train without a cache
            log.warning("cannot cache the base model at %s: %s", cache, err)
            shutil.rmtree(temporary, ignore_errors=True)
    return tokenizer, model


class Trainer:
    """The base model (dequantized from its GGUF) with a LoRA on every linear layer, and its tokenizer."""

    def __init__(self, gguf_path: Path, config: TrainingConfig, cache: Path | None = None):
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        torch.manual_seed(config.seed)
        torch.set_num_threads(config.threads or training_threads())
        self.torch, self.config = torch, config
        self.tokenizer, base = _load_base(gguf_path, cache, AutoTokenizer, AutoModelForCausalLM, torch)
        lora = LoraConfig(r=config.rank, lora_alpha=config.alpha, target_modules="all-linear", lora_dropout=0.0,
                          bias="none", task_type="CAUSAL_LM")
        self.model = get_peft_model(base, lora)
        self.eos = self.tokenizer.eos_token or ""
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    # --- text -> tokens -------------------------------------------------------------------------------
    def prompt_ids(self, messages: list[dict]) -> list[int]:
        """The prompt as the local provider formats it: the model's chat template, generation prompt on."""
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode(self, example: Example) -> tuple[list[int], list[int]] | None:
        """(prompt ids, reply ids ending with the end-of-turn token), or None when the prompt is too long."""
        prompt = self.prompt_ids(example.messages)
        reply = self.tokenizer(example.reply + self.eos, add_special_tokens=False)["input_ids"]
        if len(prompt) > MAX_PROMPT_TOKENS:
            return None
        return prompt, reply[-self.config.max_reply_tokens:] if len(reply) > self.config.max_reply_tokens else reply

    def batch(self, pairs: list[tuple[list[int], list[int]]]) -> dict[str, Any]:
        """Right-padded ids, attention mask, and labels on the reply tokens only."""
        torch = self.torch
        width = max(len(p) + len(r) for p, r in pairs)
        ids, mask, labels = [], [], []
        for prompt, reply in pairs:
            pad = width - len(prompt) - len(reply)
            ids.append(prompt + reply + [self.pad_id] * pad)
            mask.append([1] * (len(prompt) + len(reply)) + [0] * pad)
            labels.append([-100] * len(prompt) + reply + [-100] * pad)
        return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask), "labels": torch.tensor(labels)}

    # --- training ----------------------------------------------------------------------------------------
    def fit(self, examples: list[Example], deadline: float, max_rss_mb: float) -> dict[str, Any]:
        """Train the LoRA: AdamW, seeded shuffles, loss on reply tokens only. Stops early at ``deadline``
        (monotonic seconds); over ``max_rss_mb`` of resident memory it raises (nothing is kept)."""
        torch, config = self.torch, self.config
        pairs = [p for p in (self.encode(e) for e in examples) if p is not None]
        if len(pairs) < 2:
            raise AdapterError("fewer than 2 verified replies fit the prompt limit: nothing to train on")
        self.model.train()
        optimizer = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad],
                                      lr=config.learning_rate, weight_decay=0.0)
        steps_per_epoch = -(-len(pairs) // config.batch_size)
        planned, done, losses = steps_per_epoch * config.epochs, 0, []
        stopped = ""
        for epoch in range(config.epochs):
            order = list(range(len(pairs)))
            random.Random(config.seed * 1000 + epoch).shuffle(order)
            for start in range(0, len(order), config.batch_size):
                if time.monotonic() >= deadline:
                    stopped = f"stopped at the time cap after {done} of {planned} steps"
                    break
                loss = self.model(**self.batch([pairs[i] for i in order[start:start + config.batch_size]])).loss
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
                done += 1
                rss = current_rss_mb()
                if rss > max_rss_mb:
                    raise AdapterError(f"training stopped: {rss:.0f} MB resident is over the memory cap of "
                                       f"{max_rss_mb:.0f} MB (SEASONED_TRAIN_MAX_RSS_MB)")
            if stopped:
                break
        if done == 0:
            raise AdapterError("the time cap (SEASONED_TRAIN_MAX_SECONDS) ran out before the first training step")
        self.model.eval()
        return {"steps": done, "planned_steps": planned, "first_loss": round(losses[0], 4),
                "last_loss": round(losses[-1], 4), "stopped": stopped, "examples": len(pairs)}

    # --- the held-out check -----------------------------------------------------------------------------
    def mean_nll(self, examples: list[Example]) -> float:
        """Mean negative log-likelihood per reply token of the examples' replies (pooled over tokens)."""
        torch = self.torch
        total, count = 0.0, 0
        with torch.no_grad():
            for example in examples:
                pair = self.encode(example)
                if pair is None:
                    continue
                batch = self.batch([pair])
                logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                labels = batch["labels"][0, 1:]
                scores = torch.nn.functional.cross_entropy(logits[0, :-1], labels, ignore_index=-100,
                                                           reduction="sum")
                total += float(scores)
                count += int((labels != -100).sum())
        return total / max(1, count)

    def greedy(self, messages: list[dict], max_tokens: int = MAX_CHECK_TOKENS) -> tuple[str, int]:
        """The greedy reply of the model as it is now (adapter on, unless disabled) and its token count."""
        torch = self.torch
        prompt = torch.tensor([self.prompt_ids(messages)])
        with torch.no_grad():
            out = self.model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                                      max_new_tokens=max_tokens, eos_token_id=self.tokenizer.eos_token_id,
                                      pad_token_id=self.pad_id)
        new = out[0, prompt.shape[1]:].tolist()
        return self.tokenizer.decode(new, skip_special_tokens=True), len(new)

    def nll_figures(self, heldout: list[Example]) -> dict[str, Any]:
        """Held-out NLL per reply token, without and with the adapter."""
        with self.model.disable_adapter():
            base = self.mean_nll(heldout)
        return {"heldout": len(heldout), "base": {"nll": round(base, 4)},
                "adapter": {"nll": round(self.mean_nll(heldout), 4)}}

    def agreement(self, sequences: list[tuple[list[int], list[int]]]) -> dict[str, int]:
        """At each step of the given greedy replies (prompt ids, reply ids), whether the trained model's most
        likely next token is the one chosen (teacher-forced: one forward pass per reply)."""
        torch = self.torch
        agree = of = 0
        with torch.no_grad():
            for prompt, reply in sequences:
                if not reply:
                    continue
                logits = self.model(input_ids=torch.tensor([prompt + reply])).logits[0]
                chosen = logits[len(prompt) - 1:len(prompt) - 1 + len(reply)].argmax(-1).tolist()
                agree += sum(a == b for a, b in zip(chosen, reply))
                of += len(reply)
        return {"agree": agree, "of": of}

    def check_tokens(self, heldout: list[Example]) -> int:
        """Greedy length for the check: twice the longest held-out reply (capped), so replies can finish."""
        longest = max((len(self.tokenizer(e.reply, add_special_tokens=False)["input_ids"]) for e in heldout),
                      default=MAX_CHECK_TOKENS)
        return min(MAX_CHECK_TOKENS, 2 * longest + 8)

    def lora_weights(self) -> dict[str, tuple[Any, Any]]:
        """``{module name: (A, B)}`` of the trained LoRA, as float32 numpy arrays."""
        from peft.tuners.lora import LoraLayer

        found = {}
        for name, module in self.model.named_modules():
            if isinstance(module, LoraLayer) and "default" in getattr(module, "lora_A", {}):
                found[name] = (module.lora_A["default"].weight.detach().float().numpy(),
                               module.lora_B["default"].weight.detach().float().numpy())
        return found


# --- the held-out check ----------------------------------------------------------------------------------
def answer_figures(trainer: Trainer, base: Path, adapter: Path, heldout: list[Example]) -> dict[str, Any]:
    """Greedy answers on the held-out items with a verified answer, without and with the adapter: through
    llama.cpp with the adapter GGUF (what the local provider serves) when it is installed, else through the
    trained model. With llama.cpp, also how far the conversion agrees with the trained model (``conversion``:
    at each step of llama.cpp's greedy replies, whether the trained model picks the same next token)."""
    with_answers = [e for e in heldout if e.answer]
    tokens = trainer.check_tokens(heldout)
    out: dict[str, Any] = {"with_answer": len(with_answers)}
    try:
        import llama_cpp  # noqa: F401 - where llama.cpp is installed, it decodes the check (as it will serve)
    except ImportError:
        with trainer.model.disable_adapter():
            out["base"] = _matches([trainer.greedy(e.messages, tokens)[0] for e in with_answers], with_answers)
        out["adapter"] = _matches([trainer.greedy(e.messages, tokens)[0] for e in with_answers], with_answers)
        return {**out, "answers_by": "transformers"}
    from seasoned.models.llama_cpu import open_llama
    from seasoned.models.local import default_threads

    prompts = [trainer.prompt_ids(e.messages) for e in with_answers]
    n_ctx = max((len(p) for p in prompts), default=0) + tokens + 16
    threads = default_threads()  # llama.cpp's threads spin: more than the free cores is many times slower
    for arm, lora in (("base", None), ("adapter", adapter)):
        llm = open_llama(base, lora_path=str(lora) if lora else None, n_ctx=n_ctx, n_threads=threads, verbose=False)
        try:
            replies = [_llama_greedy(llm, prompt, tokens) for prompt in prompts]
            texts = [llm.detokenize(r, special=False).decode("utf-8", "replace") for r in replies]
        finally:
            llm.close()
        out[arm] = _matches(texts, with_answers, sum(map(len, replies)))
        if arm == "adapter":
            out["conversion"] = trainer.agreement(list(zip(prompts, replies))[:3])
    return {**out, "answers_by": "llama.cpp"}


def _llama_greedy(llm: Any, prompt: list[int], max_tokens: int) -> list[int]:
    llm.reset()
    found: list[int] = []
    for token in llm.generate(prompt, temp=0.0, top_k=1, reset=True):
        found.append(int(token))
        if token == llm.token_eos() or len(found) >= max_tokens:
            break
    return found


def _matches(texts: list[str], examples: list[Example], tokens: int | None = None) -> dict[str, Any]:
    matches = sum(reply_answer(t) == _normal(e.answer or "") for t, e in zip(texts, examples))
    return {"matches": matches,
            "tokens_per_answer": round(tokens / len(examples), 1) if tokens is not None and examples else None}


def verdict(figures: dict[str, Any]) -> dict[str, Any]:
    """The check's decision on its figures (rule: the module docstring); a conversion that disagrees with
    the trained model on most greedy steps is refused too (a broken file, not a worse model)."""
    base, adapter = figures["base"], figures["adapter"]
    reasons = []
    if not adapter["nll"] < base["nll"]:
        reasons.append(f"held-out NLL {adapter['nll']:.3f} is not below the base's {base['nll']:.3f}")
    if adapter.get("matches", 0) < base.get("matches", 0):
        reasons.append(f"greedy answers matched {adapter['matches']}/{figures['with_answer']}, the base model's "
                       f"{base['matches']}/{figures['with_answer']}")
    conversion = figures.get("conversion") or {}
    if conversion.get("of") and conversion["agree"] < 0.5 * conversion["of"]:
        reasons.append(f"llama.cpp with the adapter agrees with the trained model on {conversion['agree']}/"
                       f"{conversion['of']} greedy steps")
    return {**figures, "passed": not reasons, "why": "; ".join(reasons),
            "rule": "adapter NLL < base NLL, and adapter greedy answer matches >= base"}


# --- the whole job -------------------------------------------------------------------------------------------
@dataclass
class TrainingResult:
    adapter: Adapter
    seconds: float
    figures: dict = field(default_factory=dict)


def train_adapter(db: Database, namespace: str, model: str, scope: str = "general", *,
                  config: TrainingConfig | None = None, store: AdapterStore | None = None,
                  progress: Callable[[str], None] | None = None) -> TrainingResult:
    """Train, check, convert and store an adapter for (namespace, model, scope); see the module docstring.

    Raises ``AdapterError`` before any work when the model is not local, its architecture cannot be
    converted, there are too few verified replies, or the base model would not fit the memory cap. A
    training stopped by the memory cap (or another error once started) is recorded as a ``rejected``
    row without a file and re-raised; one that reaches the time cap keeps what it learned so far. The
    adapter's file is stored (``candidate``) before the answer check runs on it through llama.cpp."""
    from seasoned.models.local import resolve_model_path

    from .lora_gguf import check_supported, read_base_info, write_adapter

    say = progress or (lambda text: log.info("%s", text))
    config = (config or TrainingConfig()).resolved()
    store = store or AdapterStore(db)
    started = time.monotonic()
    gguf_path = resolve_model_path(local_model_name(model))
    digest = base_digest(model)
    info = read_base_info(gguf_path)
    check_supported(info, gguf_path)
    needed = info.n_params * 4 / 2**20 * 2.2 + 300  # float32 weights, a working copy, torch itself
    if needed > config.max_rss_mb:
        raise AdapterError(f"training {model} needs about {needed:.0f} MB, over the memory cap of "
                           f"{config.max_rss_mb:.0f} MB (SEASONED_TRAIN_MAX_RSS_MB)")
    examples = gather(db, namespace, model, scope, reply=config.reply, limit=config.max_items)
    seen = len(demonstration_rows(db, namespace, model, scope))
    if len(examples) < max(config.min_items, config.min_heldout + 2):
        raise AdapterError(f"{len(examples)} verified replies of {model} in namespace {namespace!r}, scope "
                           f"{scope!r}: at least {max(config.min_items, config.min_heldout + 2)} are needed")
    train, heldout = split(examples, config.heldout_fraction, config.min_heldout, config.seed)
    common = {"namespace": namespace, "model": model, "digest": digest, "scope": scope}
    record = {"train_items": len(train), "demos_seen": seen,
              "item_ids": {"train": [e.item_id for e in train], "heldout": [e.item_id for e in heldout]},
              "params": asdict(config)}
    say(f"training an adapter for {model} on {len(train)} verified replies ({len(heldout)} held out), "
        f"namespace {namespace!r}, scope {scope!r}")
    try:
        cache = store.root / ".base" / digest[:16] if config.cache_base else None
        trainer = Trainer(gguf_path, config, cache)
        loaded = time.monotonic() - started
        fit = trainer.fit(train, started + config.max_seconds, config.max_rss_mb)
        fit.update(load_seconds=round(loaded, 1), fit_seconds=round(time.monotonic() - started - loaded, 1))
        figures = trainer.nll_figures(heldout)
        weights = trainer.lora_weights()
    except AdapterError as err:
        store.record_failure(**common, reason=str(err), **record, train_seconds=time.monotonic() - started,
                             peak_rss_mb=peak_rss_mb())
        raise
    adapter = store.add(lambda path: write_adapter(path, weights, info=info, alpha=config.alpha, base_digest=digest,
                                                   metadata={"namespace": namespace, "model": model, "scope": scope}),
                        **common, status="candidate", **record, check={**figures, "fit": fit})
    checking = time.monotonic()
    answers = answer_figures(trainer, gguf_path, adapter.path, heldout)
    figures = verdict({**figures, **answers, "base": {**figures["base"], **answers["base"]},
                       "adapter": {**figures["adapter"], **answers["adapter"]}})
    fit["check_seconds"] = round(time.monotonic() - checking, 1)
    seconds = time.monotonic() - started
    adapter = store.set_status(adapter.id, "active" if figures["passed"] else "rejected",
                               check={**figures, "fit": fit},
                               reason=figures["why"] or fit["stopped"],
                               train_seconds=round(seconds, 1), peak_rss_mb=round(peak_rss_mb(), 1))
    say(f"adapter {adapter.id[:12]} v{adapter.version}: {adapter.status} in {seconds:.0f} s (load "
        f"{fit['load_seconds']} s, fit {fit['fit_seconds']} s for {fit['steps']} steps, check {fit['check_seconds']} s; "
        f"peak RSS {adapter.peak_rss_mb:.0f} MB); held-out NLL {figures['base']['nll']} -> {figures['adapter']['nll']}, "
        f"greedy answers {figures['base'].get('matches')} -> {figures['adapter'].get('matches')} of "
        f"{figures.get('with_answer')}" + (f"; {adapter.reason}" if adapter.reason else ""))
    return TrainingResult(adapter, seconds, {**figures, "fit": fit})


# --- when training happens -----------------------------------------------------------------------------------
_running: dict[tuple[str, str, str, str], threading.Thread] = {}
_running_lock = threading.Lock()


def due(db: Database, namespace: str, model: str, scope: str, *, every: int | None = None,
        store: AdapterStore | None = None) -> bool:
    """Whether (namespace, model, scope) has ``every`` (default ``SEASONED_TRAIN_EVERY``) verified
    demonstrations more than when its last adapter was trained (any status, failures too)."""
    every = settings().train_every if every is None else every
    if every <= 0 or not str(model).startswith("local/"):
        return False
    count = len(demonstration_rows(db, namespace, model, scope))
    if count < max(every, MIN_ITEMS):
        return False
    latest = (store or AdapterStore(db)).latest(namespace, model, scope, base_digest(model))
    return count - (latest.demos_seen if latest else 0) >= every


def maybe_train_in_background(db: Database, namespace: str, model: str, scope: str = "general", *,
                              every: int | None = None, home: str | Path | None = None) -> bool:
    """Start training an adapter for the key in a background process when it is due (see ``due``) and none
    is training for it already; True when one was started. Never blocks on training and never raises
    (a problem is logged): it is called after curation, on the request path."""
    try:
        if db.sqlite_path is None and db.is_sqlite:
            return False  # an in-memory database cannot be shared with another process
        key = (db.url, namespace, model, scope)
        with _running_lock:
            if key in _running and _running[key].is_alive():
                return False
            if not due(db, namespace, model, scope, every=every):
                return False
            thread = threading.Thread(target=_train_process, args=(db.url, namespace, model, scope, home),
                                      name=f"seasoned-train-{namespace}-{scope}", daemon=True)
            _running[key] = thread
            thread.start()
        return True
    except Exception as err:  # noqa: BLE001 - training is an extra: the run goes on without it
        log.warning("adapter training for %s/%s/%s not started: %s", namespace, model, scope, err)
        return False


def _train_process(url: str, namespace: str, model: str, scope: str, home: str | Path | None) -> None:
    """One training as ``seasoned-admin train`` in a child process (its memory is returned when it ends)."""
    env = {**os.environ, "SEASONED_DB_URL": url}
    if home is not None:
        env["SEASONED_HOME"] = str(home)
    from seasoned.models.cores import lend_cores

    # Beside the models that go on serving: half the cores (at least one) train, and the models decode with
    # that many fewer threads meanwhile, so neither spins against the other.
    threads = max(1, (os.cpu_count() or 2) // 2)
    command = [sys.executable, "-m", "seasoned.memory", "train", "--namespace", namespace, "--model", model,
               "--scope", scope, "--threads", str(threads)]
    started = time.monotonic()
    with lend_cores(threads):
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    lines = (done.stdout.strip() or done.stderr.strip()).splitlines()
    last = lines[-1] if lines else ""
    level = logging.INFO if done.returncode == 0 else logging.WARNING
    log.log(level, "background adapter training %s/%s/%s ended in %.0f s (exit %d): %s", namespace, model, scope,
            time.monotonic() - started, done.returncode, last[:500])


def wait_for_training(timeout: float | None = None) -> bool:
    """Wait for the background trainings of this process; True when none is left running."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        with _running_lock:
            threads = [t for t in _running.values() if t.is_alive()]
        if not threads:
            return True
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return False
        threads[0].join(left)
