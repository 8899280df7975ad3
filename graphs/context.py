"""The context builder: which memory goes into a prompt, and in which form.

Experience reaches a model through three channels:

* **demonstrations**: verified trajectories of earlier tasks (the task as given, the accepted reply as
  produced), replayed as earlier user/assistant turns of the chat. Small models use these far better
  than prose;
* **notes**: distilled items (strategies, lessons, cheatsheets, code, behaviours) in the system message;
* **adapter**: a LoRA adapter trained on the namespace's verified replies (local models only; offered only
  when an active adapter exists for the model's file, ``memory/adapters.py``), served with the samples.

Which channel pays depends on the model and the kind of task, so it is learned, not hard-coded: a
Thompson sampler draws a success rate for each channel (``none``, ``demos``, ``notes``, ``demos+notes``,
``adapter``, ``adapter+demos``) from its Beta posterior (counts kept per namespace, model and scope in
SQL, ``memory/channels.py``), turns it into the chance that the solve succeeds with the samples the budget
can pay for at that channel's prompt cost, and picks the best. Every checked question credits the channel
its samples were drawn with, once (its samples share its difficulty: ``memory/channels.py``). A channel no
one has tried on this model and scope is tried once first (new content appears mid-stream: the first
demonstration, an adapter; a prior centred on a 3% base rate would leave it untried). A channel's prior is
what the same model showed on the same scope in *other* namespaces (pooled counts, worth at most
``POOLED_PRIOR_QUESTIONS`` questions): a new namespace tries first what pays on this model, and a few
unlucky questions do not bury it. Only counts cross namespaces; content never does.

Demonstrations are chosen to teach, not to be near-duplicates: the nearest stored tasks of an addition
stream share their numbers with the question ("71 + 99" retrieves "11 + 88 = 99" and "73 + 99 = 172"), and
such pairs lift SmolLM2 less (60 additions, one sample each: the two nearest 14/60, two sharing no number
18/60, two fixed hand-written ones 18/60, two at random 20/60; ``benchmarks/demo_forms.py --selection``).
So a demonstration whose task or reply shares a number with the new task is passed over while others exist.

Cold start: while a scope holds fewer verified demonstrations than a prompt shows (``cold``), a run with a
checker draws up to ``COLD_SAMPLES`` samples (first-finish) instead of one (``graphs/run_context.py``), so
the first verified replies, and the demonstrations made of them, come within a few tasks.

A verified reply to the very same task (normalised text) is offered as a cached first candidate: with
a checker it is re-checked and accepted at no model tokens.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from seasoned.memory.channels import ADAPTER_CHANNELS, CHANNELS, ChannelCounts
from seasoned.memory.items import NOTE_KINDS, MemoryItem
from seasoned.models import Budget

MAX_DEMOS = 2
DEMO_POOL = 24  # demonstrations considered before fitting the allowance
MAX_DEMO_REPLY_CHARS = 1200
NOTE_ITEMS = 3
NOTE_ITEM_CHARS = 160
NOTE_CONTEXT_CHARS = 320
MIN_ITEM_UTILITY = 0.5  # new items start at 0.5; items whose runs keep failing drop below and are left out
CONTEXT_SHARE = 0.35  # at most this share of a sample's affordable prompt goes to memory
MAX_CONTEXT_TOKENS = 900
CHARS_PER_TOKEN = 3.2
RECENCY_DAYS = 30.0  # a demonstration's recency bonus halves over this many days
PRIOR_STRENGTH = 2.0  # pseudo-questions of the pooled success rate in an unseen channel's prior
POOLED_PRIOR_QUESTIONS = 6.0  # what a channel's counts in other namespaces are worth here, at most (questions)
COLD_SAMPLES = 8  # samples a first-finish solve may draw while its scope has too few demonstrations
COLD_SCAN = 200  # the newest demonstrations of a namespace looked at to tell a cold scope


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
    adapter: dict | None = None  # {"id", "path", "version"}: the LoRA adapter the samples are drawn with
    cached: dict | None = None  # a verified reply to this very task
    ids: list[str] = field(default_factory=list)
    context_tokens: int = 0
    posterior: dict[str, list[float]] = field(default_factory=dict)  # channel -> [successes, failures]

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Option:
    """One channel's offer for a solve: what goes into the prompt and what it costs."""

    notes: str = ""
    demos: list[Demonstration] = field(default_factory=list)
    tokens: int = 0
    adapter: dict | None = None
    note_ids: list[str] = field(default_factory=list)


AdapterLookup = Callable[[str, str, str], Any]  # (namespace, model, scope) -> an active adapter or None


class ContextBuilder:
    """Builds the memory context of each solve from a bank, and credits the channel it chose.

    ``channel="auto"`` learns the channel (Thompson sampling); a fixed channel name forces one.
    ``adapters``: how to find the active adapter of (namespace, model, scope) (default: the bank's
    ``active_adapter``); adapter channels are offered only when it returns one with a file.
    ``examples``: the operator's hand-written demonstrations (``{"task", "reply"}``), shown while the
    namespace has fewer of its own than a prompt holds (an opt-in warm start; never another namespace's).
    """

    def __init__(self, bank: Any, namespace: str, model: str, scope: str = "general", *,
                 channel: str = "auto", max_demos: int = MAX_DEMOS, seed: int | None = None,
                 adapters: AdapterLookup | None = None, examples: list[dict] | None = None):
        if channel != "auto" and channel not in CHANNELS:
            raise ValueError(f"memory_channel must be 'auto' or one of {', '.join(CHANNELS)}, not {channel!r}")
        self.bank, self.namespace, self.model, self.scope = bank, namespace, model, scope
        self.channel, self.max_demos = channel, max_demos
        self.seed = seed
        self.adapters = adapters or (lambda ns, m, sc: bank.active_adapter(m, sc, namespace=ns))
        self.examples = as_examples(examples or [])
        self.cold_samples = 0  # set by the run while the scope is cold (shown in the reason)

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
        options = self._options(task, allowance_for(task, budget, samples, reply_tokens))
        counts = self.bank.channels.counts(self.namespace, self.model, self.scope)
        chosen, reason = self._choose(options, counts, task, budget, max_samples, reply_tokens)
        if self.cold_samples:
            reason += (f"; cold start: fewer than {self.max_demos} demonstrations of {self.scope} yet, "
                       f"up to {self.cold_samples} samples")
        option = options.get(chosen, options["none"])
        ids = [d.id for d in option.demos if not d.id.startswith("example:")] + (option.note_ids if option.notes else [])
        self.bank.mark_retrieved(ids)  # only what reaches the prompt counts as retrieved
        return MemoryContext(channel=chosen, reason=reason, notes=option.notes,
                             demos=[asdict(d) for d in option.demos], adapter=option.adapter,
                             cached=asdict(cached) if cached else None, ids=ids, context_tokens=option.tokens,
                             posterior={c: [n.successes, n.failures] for c, n in counts.items()})

    def _options(self, task: str, allowance: int) -> dict[str, Option]:
        """What each channel could put into this solve (a fixed channel reads only the forms it can use)."""
        wants = (lambda *forms: True) if self.channel == "auto" else (lambda *forms: self.channel in forms)
        demos = self._demos(task, allowance) if wants("demos", "demos+notes", "adapter+demos") else []
        notes, note_ids = self._notes(task) if wants("notes", "demos+notes") else ("", [])
        adapter = self._adapter() if wants(*ADAPTER_CHANNELS) else None
        demo_tokens = sum(d.tokens for d in demos)
        options = {"none": Option()}
        if demos:
            options["demos"] = Option(demos=demos, tokens=demo_tokens)
        if notes and estimate_tokens(notes) <= allowance:
            options["notes"] = Option(notes=notes, tokens=estimate_tokens(notes), note_ids=note_ids)
            if demos and estimate_tokens(notes) + demo_tokens <= allowance:
                options["demos+notes"] = Option(notes=notes, demos=demos, tokens=estimate_tokens(notes) + demo_tokens,
                                                note_ids=note_ids)
        if adapter:
            options["adapter"] = Option(adapter=adapter)
            if demos:
                options["adapter+demos"] = Option(demos=demos, tokens=demo_tokens, adapter=adapter)
        return options

    def _adapter(self) -> dict | None:
        """The active adapter of this namespace, model and scope, if any (never one of another model: the
        adapter store checks the model file's digest). A lookup that fails offers no adapter."""
        try:
            found = self.adapters(self.namespace, self.model, self.scope)
        except Exception:  # noqa: BLE001 - an unreadable adapter must not stop a solve: it is simply not offered
            return None
        path = getattr(found, "path", None)
        if found is None or not path:
            return None
        return {"id": str(found.id), "path": str(path), "version": getattr(found, "version", None)}

    def cold(self) -> bool:
        """Whether the scope holds fewer verified demonstrations than a prompt shows (nothing, or too little,
        to show yet): the cold start, when spending more samples gets the first ones sooner. Only when this
        builder shows demonstrations at all (a fixed channel without them has nothing to warm up)."""
        if self.max_demos <= 0 or len(self.examples) >= self.max_demos or (
                self.channel != "auto" and "demos" not in self.channel):
            return False
        newest = self.bank.list(namespace=self.namespace, kinds=["demonstration"], limit=COLD_SCAN)
        return sum(item.task_signature == self.scope for item in newest) < self.max_demos

    def _cached(self, task: str) -> Demonstration | None:
        item = self.bank.get_by_key(demo_key(task), namespace=self.namespace)
        if item is None or not item.verified or not item.data:
            return None
        return Demonstration(item.id, item.data.get("task", task), item.data.get("reply", ""))

    def _demos(self, task: str, allowance: int) -> list[Demonstration]:
        """Verified demonstrations that show their work first, then those sharing no number with the task
        (a near-duplicate teaches copying: see the module's docstring), then by similarity x utility x
        recency, fitted to the allowance."""
        if allowance <= 0 or self.max_demos <= 0:
            return []
        hits = self.bank.retrieve(task, k=DEMO_POOL, kinds=["demonstration"], namespace=self.namespace,
                                  track=False)
        same = demo_key(task)
        asked = numbers_in(task)
        now = datetime.now(UTC)
        ranked = []
        for hit in hits:
            item: MemoryItem = hit.item
            data = item.data or {}
            if item.key == same or not data.get("reply") or not item.verified:
                continue  # an imported item is unverified until checked here: never shown as an example
            age_days = max(0.0, (now - (item.updated_at or now)).total_seconds() / 86400)
            recency = 0.5 ** (age_days / RECENCY_DAYS)
            shared = len(asked & numbers_in(f"{data.get('task', '')} {data['reply']}"))
            ranked.append((shows_its_work(str(data["reply"])), shared, hit.score + 0.1 * recency, item))
        ranked.sort(key=lambda entry: (not entry[0], entry[1], -entry[2]))
        stored = []
        for *_, item in ranked:
            data = item.data or {}
            demo = Demonstration(item.id, str(data.get("task", item.title)), str(data["reply"])[:MAX_DEMO_REPLY_CHARS])
            demo.tokens = estimate_tokens(demo.task) + estimate_tokens(demo.reply) + 8  # + chat markup
            stored.append(demo)
        chosen = fit(stored + self.examples, allowance, self.max_demos)  # the operator's examples fill in
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

    def _choose(self, options: dict[str, Option], counts: dict[str, ChannelCounts], task: str, budget: Budget,
                samples: int, reply_tokens: int) -> tuple[str, str]:
        available = [c for c in CHANNELS if c in options]
        if self.channel != "auto":
            picked = self.channel if self.channel in options else "none"
            why = "fixed by memory_channel" if picked == self.channel else f"{self.channel} has nothing to offer"
            return picked, why
        if len(available) == 1:
            return "none", "no memory to offer yet"
        elsewhere = self.bank.channels.pooled(self.model, self.scope, exclude=self.namespace)
        untried = [c for c in available if not counts[c].trials and not elsewhere[c].trials]
        if untried:  # a channel nobody has tried on this model and scope: one question tells more than a prior
            picked = min(untried, key=lambda c: options[c].tokens)
            return picked, f"{picked}: not tried yet on this model and scope"
        # seeded runs draw reproducibly, yet differently for every task
        rng = random.Random(f"{self.seed}:{task}") if self.seed is not None else random.Random()
        base = estimate_tokens(task) + reply_tokens
        left = budget.remaining_tokens()
        priors = channel_priors(counts, elsewhere)
        draws = {}
        for channel in available:
            alpha, beta = priors[channel]
            theta = rng.betavariate(counts[channel].successes + alpha, counts[channel].failures + beta)
            cost = base + options[channel].tokens
            affordable = samples if left == float("inf") else max(1, min(samples, int(left // cost)))
            draws[channel] = (1 - (1 - theta) ** affordable, -cost, theta)
        picked = max(available, key=lambda c: draws[c][:2])
        parts = ", ".join(f"{c} {draws[c][2]:.2f} ({counts[c].successes:.3g}/{counts[c].trials:.3g})"
                          for c in available)
        return picked, f"thompson draw per sample: {parts}"

    # --- crediting -------------------------------------------------------------------------------------
    def credit(self, channel: str, passed: int, drawn: int) -> None:
        """One checked question: ``passed`` of the ``drawn`` samples drawn with ``channel`` verified."""
        self.bank.channels.credit_question(self.namespace, self.model, self.scope, channel, passed=passed,
                                           drawn=drawn)

    async def acredit(self, channel: str, passed: int, drawn: int) -> None:
        await asyncio.to_thread(self.credit, channel, passed, drawn)


def allowance_for(task: str, budget: Budget, samples: int, reply_tokens: int) -> int:
    """Prompt tokens memory may take: a share of what one sample can afford, capped."""
    left = budget.remaining_tokens()
    if left == float("inf"):
        return MAX_CONTEXT_TOKENS
    per_sample = left / max(1, samples)
    room = per_sample - estimate_tokens(task) - reply_tokens
    return int(max(0.0, min(MAX_CONTEXT_TOKENS, per_sample * CONTEXT_SHARE, room)))


def as_examples(examples: list[dict]) -> list[Demonstration]:
    """Hand-written demonstrations (``{"task", "reply"}``) as the builder shows them (ids ``example:N``: they
    are no memory items, so no outcome is ever credited to them)."""
    shown = []
    for index, example in enumerate(examples or []):
        task, reply = str(example.get("task") or "").strip(), str(example.get("reply") or "").strip()
        if not task or not reply:
            raise ValueError(f"example {index} needs a non-empty 'task' and 'reply'")
        shown.append(Demonstration(f"example:{index}", task, reply[:MAX_DEMO_REPLY_CHARS],
                                   estimate_tokens(task) + estimate_tokens(reply) + 8))
    return shown


def fit(demos: list[Demonstration], allowance: int, most: int) -> list[Demonstration]:
    """The first demonstrations (in order) that fit the token allowance, at most ``most``."""
    chosen, used = [], 0
    for demo in demos:
        if len(chosen) >= most:
            break
        if used + demo.tokens <= allowance:
            chosen.append(demo)
            used += demo.tokens
    return chosen


class FixedExamples:
    """A fixed few-shot prompt (``Agent(examples=...)`` without memory): the same hand-written demonstrations
    before every task, fitted to the budget; nothing is retrieved, learned or credited."""

    channel = "demos"

    def __init__(self, examples: list[dict], max_demos: int = MAX_DEMOS):
        self.examples, self.max_demos = as_examples(examples), max_demos

    async def build(self, task: str, budget: Budget, *, samples: int = 1, max_samples: int = 1,
                    reply_tokens: int = 96) -> MemoryContext:
        demos = fit(self.examples, allowance_for(task, budget, samples, reply_tokens), self.max_demos)
        return MemoryContext(channel="demos" if demos else "none", reason="fixed examples (no memory)",
                             demos=[asdict(d) for d in demos], context_tokens=sum(d.tokens for d in demos))

    async def acredit(self, channel: str, passed: int, drawn: int) -> None:
        return None

    def cold(self) -> bool:
        return False


def numbers_in(text: str) -> set[str]:
    """The numbers of two digits or more in a text (what a near-duplicate demonstration shares with a task)."""
    return set(re.findall(r"\d{2,}", text or ""))


def shows_its_work(reply: str) -> bool:
    """Whether a demonstration's reply shows how it got there (code, steps, or a line of reasoning before
    its answer) rather than a bare ``Answer: X``, which lifts a small model far less."""
    return reply.lstrip().startswith("```") or sum(bool(line.strip()) for line in reply.splitlines()) > 1


def channel_priors(counts: dict[str, ChannelCounts], elsewhere: dict[str, ChannelCounts] | None = None,
                   ) -> dict[str, tuple[float, float]]:
    """Each channel's Beta prior (alpha, beta) for one namespace.

    A channel this model has used on this scope in other namespaces (``elsewhere``, pooled counts) starts
    from its success rate there, worth at most ``POOLED_PRIOR_QUESTIONS`` questions here: what pays on this
    model is tried first, a channel that paid 25% elsewhere still leads one that paid 3% after six failed
    questions here, and the namespace's own counts soon outweigh it. A channel never seen anywhere starts
    from the success rate pooled over every channel (here and elsewhere), worth ``PRIOR_STRENGTH`` questions
    (empirical Bayes): Beta(1, 1) with no data at all; around a scope's 5% base rate once known, so a
    rare-success task kind does not spend its stream exploring channels no better than the rest."""
    elsewhere = elsewhere or {}
    everything = [*counts.values(), *elsewhere.values()]
    base = (sum(c.successes for c in everything) + 1) / (sum(c.trials for c in everything) + 2)
    priors = {}
    for channel in CHANNELS:
        seen = elsewhere.get(channel)
        if seen is not None and seen.trials:
            rate = (seen.successes + PRIOR_STRENGTH * base) / (seen.trials + PRIOR_STRENGTH)
            weight = min(max(float(seen.trials), PRIOR_STRENGTH), POOLED_PRIOR_QUESTIONS)
            priors[channel] = (weight * rate, weight * (1 - rate))
        else:
            priors[channel] = (PRIOR_STRENGTH * base, PRIOR_STRENGTH * (1 - base))
    return priors


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
