"""Test-time training: a LoRA adapter trained on a namespace's own verified replies, checked before it is used.

For a local model (``local/...``), the demonstrations the curator keeps (memory kind ``demonstration``: the
task as the model was given it, and the reply an environment's check accepted) are training data
(rejection-sampling fine-tuning, as STaR/ReST; no text written by anyone but the model). ``train_adapter``
gathers those of one (namespace, model, scope), holds out a slice, trains a LoRA with transformers + peft on
the base GGUF dequantized (CPU, torch threads = cores, seeded), runs the held-out check, writes the adapter
as a llama.cpp GGUF (``lora_gguf``) and stores it (``adapters``): ``active`` when it passed, ``rejected``
(kept for inspection, never served) when it did not.

The held-out check (robust with few items): the adapter is used only if, on the held-out verified replies,
(1) their mean negative log-likelihood per reply token given their prompts is lower with the adapter than
without, pooled over all held-out tokens (a low-variance figure even for 2 items: every token counts), and
(2) when the items carry a verified answer, greedy replies with the adapter contain it (as the reply's
``Answer:`` line, or its last line) at least as often as greedy replies without: an adapter that fits the
replies' wording but breaks their answers is kept out. Greedy decoding makes (2) deterministic.

Heavy libraries (torch, transformers, peft, gguf) are imported inside the functions that use them. Training
runs on demand (``seasoned-admin train``) or in the background every ``SEASONED_TRAIN_EVERY`` new verified
demonstrations of a key (``maybe_train_in_background``: one subprocess per key, off the request path;
``wait_for_training`` waits for them).
"""

from __future__ import annotations

import logging
import os
import random
import re
import resource
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
    learning_rate: float = 1e-3
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
    threads: int | None = None  # torch threads (default: every core)
    verify_conversion: bool = True  # compare llama.cpp with the adapter against the trained model

    def resolved(self) -> TrainingConfig:
        s = settings()
        return TrainingConfig(**{**asdict(self),
                                 "max_seconds": self.max_seconds if self.max_seconds is not None else s.train_max_seconds,
                                 "max_rss_mb": self.max_rss_mb if self.max_rss_mb is not None else s.train_max_rss_mb,
                                 "threads": self.threads or os.cpu_count() or 1})


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
    """(train, held out): a seeded shuffle, ``fraction`` held out (at least ``minimum``)."""
    order = sorted(examples, key=lambda e: e.item_id)
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
class Trainer:
    """The base model (dequantized from its GGUF) with a LoRA on every linear layer, and its tokenizer."""

    def __init__(self, gguf_path: Path, config: TrainingConfig):
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        torch.manual_seed(config.seed)
        torch.set_num_threads(config.threads or os.cpu_count() or 1)
        self.torch, self.config = torch, config
        folder, name = str(gguf_path.parent), gguf_path.name
        self.tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        base = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
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
        """The greedy reply to ``messages`` and its token count."""
        torch = self.torch
        prompt = torch.tensor([self.prompt_ids(messages)])
        with torch.no_grad():
            out = self.model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                                      max_new_tokens=max_tokens, eos_token_id=self.tokenizer.eos_token_id,
                                      pad_token_id=self.pad_id)
        new = out[0, prompt.shape[1]:].tolist()
        return self.tokenizer.decode(new, skip_special_tokens=True), len(new)

    def check(self, heldout: list[Example]) -> dict[str, Any]:
        """The held-out check's figures and verdict (rule: the module docstring)."""
        with_answers = [e for e in heldout if e.answer]
        figures: dict[str, Any] = {"heldout": len(heldout), "with_answer": len(with_answers)}
        for arm in ("base", "adapter"):
            if arm == "base":
                with self.model.disable_adapter():
                    figures[arm] = self._arm(heldout, with_answers)
            else:
                figures[arm] = self._arm(heldout, with_answers)
        base, adapter = figures["base"], figures["adapter"]
        lower_nll = adapter["nll"] < base["nll"]
        answers_kept = adapter["matches"] >= base["matches"]
        figures["passed"] = bool(lower_nll and answers_kept)
        figures["rule"] = "adapter NLL < base NLL and adapter greedy answer matches >= base"
        reasons = []
        if not lower_nll:
            reasons.append(f"held-out NLL {adapter['nll']:.3f} is not below the base's {base['nll']:.3f}")
        if not answers_kept:
            reasons.append(f"greedy answers matched {adapter['matches']}/{len(with_answers)}, the base model's "
                           f"{base['matches']}/{len(with_answers)}")
        if reasons:
            figures["why"] = "; ".join(reasons)
        return figures

    def _arm(self, heldout: list[Example], with_answers: list[Example]) -> dict[str, Any]:
        matches, tokens = 0, 0
        for example in with_answers:
            text, count = self.greedy(example.messages)
            tokens += count
            matches += reply_answer(text) == _normal(example.answer or "")
        return {"nll": round(self.mean_nll(heldout), 4), "matches": matches,
                "tokens_per_answer": round(tokens / len(with_answers), 1) if with_answers else None}

    def lora_weights(self) -> dict[str, tuple[Any, Any]]:
        """``{module name: (A, B)}`` of the trained LoRA, as float32 numpy arrays."""
        from peft.tuners.lora import LoraLayer

        found = {}
        for name, module in self.model.named_modules():
            if isinstance(module, LoraLayer) and "default" in getattr(module, "lora_A", {}):
                found[name] = (module.lora_A["default"].weight.detach().float().numpy(),
                               module.lora_B["default"].weight.detach().float().numpy())
        return found


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
    row without a file and re-raised; one that reaches the time cap keeps what it learned so far."""
    from .lora_gguf import check_supported, read_base_info, write_adapter

    say = progress or (lambda text: log.info("%s", text))
    config = (config or TrainingConfig()).resolved()
    store = store or AdapterStore(db)
    started = time.monotonic()
    from seasoned.models.local import resolve_model_path

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
              "params": {k: v for k, v in asdict(config).items() if k not in ("verify_conversion",)}}
    say(f"training an adapter for {model} on {len(train)} verified replies ({len(heldout)} held out), "
        f"namespace {namespace!r}, scope {scope!r}")
    try:
        trainer = Trainer(gguf_path, config)
        loaded = time.monotonic() - started
        fit = trainer.fit(train, started + config.max_seconds, config.max_rss_mb)
        fit["load_seconds"] = round(loaded, 1)
        fit["fit_seconds"] = round(time.monotonic() - started - loaded, 1)
        checked = trainer.check(heldout)
        weights = trainer.lora_weights()
    except AdapterError as err:
        store.record_failure(**common, reason=str(err), **record, train_seconds=time.monotonic() - started,
                             peak_rss_mb=peak_rss_mb())
        raise
    if config.verify_conversion:
        checked["conversion"] = {}

    def write(path: Path) -> None:
        write_adapter(path, weights, info=info, alpha=config.alpha, base_digest=digest,
                      metadata={"namespace": namespace, "model": model, "scope": scope})
        if config.verify_conversion:
            checked["conversion"] = conversion_agreement(trainer, gguf_path, path, heldout)

    seconds = time.monotonic() - started
    adapter = store.add(write, **common, status="candidate", **record, train_seconds=round(seconds, 1),
                        peak_rss_mb=round(peak_rss_mb(), 1), check={**checked, "fit": fit})
    conversion = checked.get("conversion") or {}
    converted = not conversion or conversion.get("agree", 0) >= conversion.get("of", 0) * 0.5
    passed = checked["passed"] and converted
    why = checked.get("why") or ("" if converted else f"llama.cpp with the adapter agreed with the trained model "
                                 f"on {conversion.get('agree')}/{conversion.get('of')} greedy tokens")
    adapter = store.set_status(adapter.id, "active" if passed else "rejected",
                               reason=fit["stopped"] if passed else why)
    say(f"adapter {adapter.id[:12]} v{adapter.version}: {adapter.status} in {seconds:.0f} s "
        f"(load {fit['load_seconds']} s, fit {fit['fit_seconds']} s, {fit['steps']} steps, peak RSS "
        f"{adapter.peak_rss_mb:.0f} MB); held-out NLL {checked['base']['nll']} -> {checked['adapter']['nll']}, "
        f"greedy answers {checked['base']['matches']} -> {checked['adapter']['matches']} of {checked['with_answer']}"
        + (f"; {why}" if why else ""))
    return TrainingResult(adapter, seconds, {**checked, "fit": fit})


def conversion_agreement(trainer: Trainer, base: Path, adapter: Path, examples: list[Example],
                         tokens: int = 16) -> dict[str, int]:
    """How many of the first ``tokens`` greedy tokens llama.cpp (base GGUF + the adapter GGUF) and the trained
    model agree on, over a few prompts (the quantized base computes slightly differently: near-ties may
    flip, a wrong conversion disagrees from the first tokens). Empty when llama.cpp is not installed."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return {}
    llm = Llama(str(base), lora_path=str(adapter), n_ctx=MAX_PROMPT_TOKENS + tokens + 8,
                n_threads=trainer.config.threads, verbose=False, seed=0)
    agree = of = 0
    try:
        for example in examples[:3]:
            prompt = trainer.prompt_ids(example.messages)
            ids = trainer.torch.tensor([prompt])
            with trainer.torch.no_grad():
                out = trainer.model.generate(input_ids=ids, attention_mask=trainer.torch.ones_like(ids),
                                             do_sample=False, max_new_tokens=tokens,
                                             eos_token_id=trainer.tokenizer.eos_token_id, pad_token_id=trainer.pad_id)
            expected = out[0, len(prompt):].tolist()
            llm.reset()
            got = []
            for token in llm.generate(prompt, temp=0.0, top_k=1):
                got.append(token)
                if len(got) >= len(expected):
                    break
            for a, b in zip(expected, got):  # up to the first disagreement: afterwards the contexts differ
                if a != b:
                    break
                agree += 1
            of += len(expected)
    finally:
        llm.close()
    return {"agree": agree, "of": of}


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
    command = [sys.executable, "-m", "seasoned.memory", "train", "--namespace", namespace, "--model", model,
               "--scope", scope]
    started = time.monotonic()
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
