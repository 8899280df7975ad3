"""The context builder: which memory goes into a prompt, and in which form.

Experience reaches a model through two channels:

* **demonstrations**: verified trajectories of earlier tasks (the task as given, the accepted reply as
  produced), replayed as earlier user/assistant turns of the chat. Small models use these far better
  than prose;
* **notes**: distilled items (strategies, lessons, cheatsheets, code, behaviours) in the system message.

Which channel pays depends on the model and the kind of task, so it is learned, not hard-coded: a
Thompson sampler draws a success rate for each channel (``none``, ``demos``, ``notes``, ``demos+notes``)
from its Beta posterior (counts kept per namespace, model and scope in SQL, ``memory/channels.py``),
turns it into the chance that the solve succeeds with the samples the budget can pay for at that
channel's prompt cost, and picks the best. Every checked sample credits the channel it was drawn with.

A verified reply to the very same task (normalised text) is offered as a cached first candidate: with
a checker it is re-checked and accepted at no model tokens.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from seasoned.memory.channels import CHANNELS, ChannelCounts
from seasoned.memory.items import NOTE_KINDS, MemoryItem
from seasoned.models import Budget

MAX_DEMOS = 2
DEMO_POOL = 12  # demonstrations considered before fitting the allowance
MAX_DEMO_REPLY_CHARS = 1200
NOTE_ITEMS = 3
NOTE_ITEM_CHARS = 160
NOTE_CONTEXT_CHARS = 320
MIN_ITEM_UTILITY = 0.5  # new items start at 0.5; items whose runs keep failing drop below and are left out
CONTEXT_SHARE = 0.35  # at most this share of a sample's affordable prompt goes to memory
MAX_CONTEXT_TOKENS = 900
CHARS_PER_TOKEN = 3.2
RECENCY_DAYS = 30.0  # a demonstration's recency bonus halves over this many days
PRIOR_STRENGTH = 2.0  # pseudo-samples of the pooled success rate in each channel's prior


def normalize_task(text: str) -> str:
    """The form under which two task texts count as the same task: case and whitespace folded."""
    return re.sub(r"\s+", " ", (text or "").strip().lower())


def demo_key(task_text: str) -> str:
    """The memory key of the demonstration (and cached answer) of a task: its normalised text."""
    digest = hashlib.sha256(normalize_task(task_text).encode()).hexdigest()[:32]
    return f"demo:{digest}"


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text or "") / CHARS_PER_TOKEN)


@dataclass
class Demonstration:
    """A verified trajectory: the task as the model was given it, and the reply that passed."""

    id: str
    task: str
    reply: str
    tokens: int = 0


@dataclass
class MemoryContext:
    """What the builder chose for one solve (JSON-serialisable: it lives in the checkpointed state)."""

    channel: str = "none"  # the channel in force (what the prompt really holds)
    reason: str = ""
    notes: str = ""
    demos: list[dict] = field(default_factory=list)
    cached: dict | None = None  # a verified reply to this very task
    ids: list[str] = field(default_factory=list)
    context_tokens: int = 0
    posterior: dict[str, list[int]] = field(default_factory=dict)  # channel -> [successes, failures]

    def as_dict(self) -> dict:
        return asdict(self)


class ContextBuilder:
    """Builds the memory context of each solve from a bank, and credits the channel it chose.

    ``channel="auto"`` learns the channel (Thompson sampling); a fixed channel name forces one.
    """

    def __init__(self, bank: Any, namespace: str, model: str, scope: str = "general", *,
                 channel: str = "auto", max_demos: int = MAX_DEMOS, seed: int | None = None):
        if channel != "auto" and channel not in CHANNELS:
            raise ValueError(f"memory_channel must be 'auto' or one of {', '.join(CHANNELS)}, not {channel!r}")
        self.bank, self.namespace, self.model, self.scope = bank, namespace, model, scope
        self.channel, self.max_demos = channel, max_demos
        self.seed = seed

    # --- building --------------------------------------------------------------------------------------
    async def build(self, task: str, budget: Budget, *, samples: int = 1, max_samples: int = 1,
                    reply_tokens: int = 96) -> MemoryContext:
        """The memory for one solve of ``task`` within ``budget``. ``samples``: how many samples surely pay
        for the context (all n for best-of-n; 1 for first-finish strategies); ``max_samples``: at most."""
        return await asyncio.to_thread(self._build, task, budget, samples, reply_tokens,
                                       max(samples, max_samples))

    def _build(self, task: str, budget: Budget, samples: int, reply_tokens: int,
               max_samples: int = 1) -> MemoryContext:
        cached = self._cached(task)
        allowance = self._allowance(task, budget, samples, reply_tokens)
        # a fixed channel reads only the forms it can use
        demos = self._demos(task, allowance) if self.channel in ("auto", "demos", "demos+notes") else []
        notes, note_ids = self._notes(task) if self.channel in ("auto", "notes", "demos+notes") else ("", [])
        counts = self.bank.channels.counts(self.namespace, self.model, self.scope)
        options = {"none": ("", [], 0)}
        if demos:
            options["demos"] = ("", demos, sum(d.tokens for d in demos))
        if notes and estimate_tokens(notes) <= allowance:
            options["notes"] = (notes, [], estimate_tokens(notes))
            if demos and estimate_tokens(notes) + options["demos"][2] <= allowance:
                options["demos+notes"] = (notes, demos, estimate_tokens(notes) + options["demos"][2])
        chosen, reason = self._choose(options, counts, task, budget, max_samples, reply_tokens)
        note_text, chosen_demos, tokens = options.get(chosen, options["none"])
        ids = [d.id for d in chosen_demos] + (note_ids if note_text else [])
        self.bank.mark_retrieved(ids)  # only what reaches the prompt counts as retrieved
        return MemoryContext(channel=chosen, reason=reason, notes=note_text,
                             demos=[asdict(d) for d in chosen_demos],
                             cached=asdict(cached) if cached else None, ids=ids, context_tokens=tokens,
                             posterior={c: [n.successes, n.failures] for c, n in counts.items()})

    def _allowance(self, task: str, budget: Budget, samples: int, reply_tokens: int) -> int:
        """Prompt tokens memory may take: a share of what one sample can afford, capped."""
        left = budget.remaining_tokens()
        if left == float("inf"):
            return MAX_CONTEXT_TOKENS
        per_sample = left / max(1, samples)
        room = per_sample - estimate_tokens(task) - reply_tokens
        return int(max(0.0, min(MAX_CONTEXT_TOKENS, per_sample * CONTEXT_SHARE, room)))

    def _cached(self, task: str) -> Demonstration | None:
        item = self.bank.get_by_key(demo_key(task), namespace=self.namespace)
        if item is None or not item.verified or not item.data:
            return None
        return Demonstration(item.id, item.data.get("task", task), item.data.get("reply", ""))

    def _demos(self, task: str, allowance: int) -> list[Demonstration]:
        """Verified demonstrations that show their work first, then by similarity x utility x recency, fitted
        to the allowance."""
        if allowance <= 0 or self.max_demos <= 0:
            return []
        hits = self.bank.retrieve(task, k=DEMO_POOL, kinds=["demonstration"], namespace=self.namespace,
                                  track=False)
        same = demo_key(task)
        now = datetime.now(UTC)
        ranked = []
        for hit in hits:
            item: MemoryItem = hit.item
            data = item.data or {}
            if item.key == same or not data.get("reply"):
                continue  # (verified by construction: utility only ranks them, it never drops one)
            age_days = max(0.0, (now - (item.updated_at or now)).total_seconds() / 86400)
            recency = 0.5 ** (age_days / RECENCY_DAYS)
            ranked.append((shows_its_work(str(data["reply"])), hit.score + 0.1 * recency, item))
        ranked.sort(key=lambda entry: (not entry[0], -entry[1]))
        chosen: list[Demonstration] = []
        used = 0
        for _, _, item in ranked:
            data = item.data or {}
            reply = str(data["reply"])[:MAX_DEMO_REPLY_CHARS]
            demo = Demonstration(item.id, str(data.get("task", item.title)), reply)
            demo.tokens = estimate_tokens(demo.task) + estimate_tokens(demo.reply) + 8  # + chat markup
            if used + demo.tokens > allowance:
                continue
            chosen.append(demo)
            used += demo.tokens
            if len(chosen) >= self.max_demos:
                break
        return list(reversed(chosen))  # the most relevant one closest to the task

    def _notes(self, task: str) -> tuple[str, list[str]]:
        """Distilled items, compact: memory must not cost more prompt tokens than it saves."""
        hits = self.bank.retrieve(task, k=NOTE_ITEMS, kinds=list(NOTE_KINDS), namespace=self.namespace,
                                  track=False)
        lines, used, ids = [], 0, []
        for hit in hits:
            if hit.item.utility < MIN_ITEM_UTILITY:
                continue  # its runs failed more often than not: it does not earn its prompt tokens
            line = " ".join(f"- {hit.item.content}".split())[:NOTE_ITEM_CHARS]
            if used + len(line) > NOTE_CONTEXT_CHARS:
                break
            lines.append(line)
            used += len(line)
            ids.append(hit.item.id)
        return "\n".join(lines), ids

    def _choose(self, options: dict, counts: dict[str, ChannelCounts], task: str, budget: Budget,
                samples: int, reply_tokens: int) -> tuple[str, str]:
        available = [c for c in CHANNELS if c in options]
        if self.channel != "auto":
            picked = self.channel if self.channel in options else "none"
            why = "fixed by memory_channel" if picked == self.channel else f"{self.channel} has nothing to offer"
            return picked, why
        if len(available) == 1:
            return "none", "no memory to offer yet"
        # seeded runs draw reproducibly, yet differently for every task
        rng = random.Random(f"{self.seed}:{task}") if self.seed is not None else random.Random()
        base = estimate_tokens(task) + reply_tokens
        left = budget.remaining_tokens()
        alpha, beta = pooled_prior(counts)
        draws = {}
        for channel in available:
            theta = rng.betavariate(counts[channel].successes + alpha, counts[channel].failures + beta)
            cost = base + options[channel][2]
            affordable = samples if left == float("inf") else max(1, min(samples, int(left // cost)))
            draws[channel] = (1 - (1 - theta) ** affordable, -cost, theta)
        picked = max(available, key=lambda c: draws[c][:2])
        parts = ", ".join(f"{c} {draws[c][2]:.2f} ({counts[c].successes}/{counts[c].trials})" for c in available)
        return picked, f"thompson draw per sample: {parts}"

    # --- crediting -------------------------------------------------------------------------------------
    def credit(self, channel: str, successes: int, failures: int) -> None:
        if successes or failures:
            self.bank.channels.credit(self.namespace, self.model, self.scope, channel,
                                      successes=successes, failures=failures)

    async def acredit(self, channel: str, successes: int, failures: int) -> None:
        await asyncio.to_thread(self.credit, channel, successes, failures)


def shows_its_work(reply: str) -> bool:
    """Whether a demonstration's reply shows how it got there (code, steps, or a line of reasoning before
    its answer) rather than a bare ``Answer: X``, which lifts a small model far less."""
    return reply.lstrip().startswith("```") or sum(bool(line.strip()) for line in reply.splitlines()) > 1


def pooled_prior(counts: dict[str, ChannelCounts]) -> tuple[float, float]:
    """Each channel's Beta prior: the success rate pooled over all channels, worth ``PRIOR_STRENGTH``
    samples (empirical Bayes). With no data it is Beta(1, 1); once the scope's base rate is known (say
    5%), an untried channel is drawn around that rate instead of around 50%, so a rare-success task
    kind does not spend its stream exploring channels no better than the rest."""
    successes = sum(c.successes for c in counts.values())
    trials = sum(c.trials for c in counts.values())
    rate = (successes + 1) / (trials + 2)
    return PRIOR_STRENGTH * rate, PRIOR_STRENGTH * (1 - rate)


def demonstration_item(*, task: str, reply: str, scope: str, model: str, run_id: str | None,
                       checker: str | None, answer: str | None = None, steps: list[dict] | None = None,
                       raw_reply: str | None = None) -> dict:
    """A verified trajectory as a memory item (dict for ``MemoryItem``), stored under ``demo_key``:
    ``reply`` is what is replayed (compacted), ``raw_reply`` the reply as the model produced it."""
    data: dict[str, Any] = {"task": task, "reply": reply[:MAX_DEMO_REPLY_CHARS * 2], "scope": scope,
                            "model": model, "answer": answer, "checker": checker, "outcome": "verified",
                            "raw_reply": (raw_reply or reply)[:MAX_DEMO_REPLY_CHARS * 2]}
    if steps:
        data["steps"] = steps
    return {"kind": "demonstration", "key": demo_key(task), "title": task[:300],
            "content": reply[:MAX_DEMO_REPLY_CHARS] or "(empty reply)", "data": data, "tags": [scope],
            "task_signature": scope, "source": "success", "verified": True,
            "run_ids": [run_id] if run_id else []}
