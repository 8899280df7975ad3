"""The ``sim/<world>`` provider: a calibrated simulator of a model, through the real litellm path.

    from seasoned.models import sim
    sim.register(sim.SimWorld("mix", kinds={"easy": sim.SimKind(8, 2, 60), "hopeless": sim.SimKind(0.05, 20, 150)}))
    gateway = Gateway("sim/mix")

A world has kinds of (sub)tasks. Each task of a kind carries a latent per-sample success probability drawn
from the kind's Beta(alpha, beta) (deterministic given the world's seed and the task id), and each kind a
tokens-per-sample figure. A prompt names its task with a tag ``[sim task=<id> kind=<kind>]`` (the last one in
the messages counts; ``task_tag`` writes it); a sample's reply is ``Answer: <correct>`` with that probability,
else a wrong answer (task-specific wrong values, so wrong answers can agree with each other), with exactly the
kind's completion tokens (fewer, and no answer, when ``max_tokens`` cuts it). Sample randomness is seeded by the
call's ``seed`` when given, else by a per-task call counter, so runs are reproducible.

Shapes of success-vs-samples curves follow from the Beta: Beta(2, 4) rises steeply with samples, Beta(0.3, 0.7)
is flat (a task is either easy or never solved), Beta(0.05, 20) is hopeless. The latent values are what a
benchmark needs for the oracle (``SimWorld.p``). Prompts without a tag get a wrong answer from the world's
``default`` kind. A judge prompt (``judge_accuracy``) is answered with a verdict that is right with that
probability, in the verifier's JSON.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import threading
from dataclasses import dataclass, field

from seasoned.errors import ModelConfigError

from .responses import text_response
from .tokens import count_message_tokens

TAG = re.compile(r"\[sim task=(?P<task>[^\s\]]+) kind=(?P<kind>[^\s\]]+)\]")
_JUDGE = re.compile(r"Proposed answer:\s*(?P<answer>.*?)\n\s*\n", re.DOTALL)


def task_tag(task_id: str, kind: str) -> str:
    return f"[sim task={task_id} kind={kind}]"


@dataclass(frozen=True)
class SimKind:
    """Per-task success probability ~ Beta(alpha, beta) (or, with ``components``, a mixture of Betas: one is
    drawn by its weight, then p from it); ``tokens`` completion tokens per sample."""

    alpha: float
    beta: float
    tokens: int = 64
    components: tuple[tuple[float, float, float], ...] = ()  # (weight, alpha, beta), weights summing to 1

    def __post_init__(self) -> None:
        if self.alpha <= 0 or self.beta <= 0 or self.tokens < 1:
            raise ModelConfigError(f"sim kind needs alpha > 0, beta > 0 and tokens >= 1, got {self}")
        if self.components and (any(w < 0 or a <= 0 or b <= 0 for w, a, b in self.components)
                                or abs(sum(w for w, _, _ in self.components) - 1) > 1e-6):
            raise ModelConfigError("sim kind components need weights >= 0 summing to 1 and alpha, beta > 0")

    @classmethod
    def mixture(cls, components, tokens: int) -> SimKind:
        """A kind whose tasks' success probabilities follow a mixture of Betas (e.g. a posterior fitted to a
        real model's records: ``calibrated_world``)."""
        parts = tuple((float(w), float(a), float(b)) for w, a, b in components)
        total = sum(w for w, _, _ in parts)
        parts = tuple((w / total, a, b) for w, a, b in parts)
        mean = sum(w * a / (a + b) for w, a, b in parts)
        return cls(mean, 1 - mean, max(int(tokens), 1), parts)

    @property
    def mean(self) -> float:
        if self.components:
            return sum(w * a / (a + b) for w, a, b in self.components)
        return self.alpha / (self.alpha + self.beta)

    def draw_p(self, rng: random.Random) -> float:
        """One task's latent success probability."""
        if not self.components:
            return rng.betavariate(self.alpha, self.beta)
        pick, cumulative = rng.random(), 0.0
        for weight, a, b in self.components:
            cumulative += weight
            if pick <= cumulative:
                return rng.betavariate(a, b)
        return rng.betavariate(*self.components[-1][1:])

    def successes_pmf(self, samples: int) -> list[float]:
        """P(exactly k of ``samples`` samples of a fresh task succeed), k = 0..samples (beta-binomial)."""
        parts = self.components or ((1.0, self.alpha, self.beta),)
        out = [0.0] * (samples + 1)
        for weight, a, b in parts:
            base = _log_beta(a, b)
            for k in range(samples + 1):
                out[k] += weight * math.exp(math.lgamma(samples + 1) - math.lgamma(k + 1) - math.lgamma(samples - k + 1)
                                            + _log_beta(a + k, b + samples - k) - base)
        return out


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest(), "big")


@dataclass
class SimWorld:
    """Kinds, their Beta priors and token figures, and the seed that fixes every task's latent values."""

    name: str
    kinds: dict[str, SimKind]
    seed: int = 0
    judge_accuracy: float = 0.8
    default: str | None = None
    calls: int = 0
    _counters: dict[str, int] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def kind(self, name: str) -> SimKind:
        try:
            return self.kinds[name]
        except KeyError:
            raise ModelConfigError(f"sim world {self.name!r} has no kind {name!r} "
                                   f"(kinds: {', '.join(sorted(self.kinds))})") from None

    def p(self, task_id: str, kind: str) -> float:
        """The latent per-sample success probability of this task (deterministic)."""
        return self.kind(kind).draw_p(random.Random(_seed(self.seed, "p", task_id, kind)))

    def answer(self, task_id: str, kind: str) -> str:
        return str(random.Random(_seed(self.seed, "answer", task_id, kind)).randint(10, 9999))

    def wrong_answers(self, task_id: str, kind: str) -> list[str]:
        right = int(self.answer(task_id, kind))
        return [str(right + offset) for offset in (1, -10, 7)]

    def sample(self, task_id: str, kind: str, seed: int | None) -> tuple[str, bool]:
        """One sample's answer and whether it is right."""
        with self._lock:
            self.calls += 1
            if seed is None:
                count = self._counters.get(f"{task_id}:{kind}", 0)
                self._counters[f"{task_id}:{kind}"] = count + 1
                seed = -1 - count
        draw = random.Random(_seed(self.seed, "sample", task_id, kind, seed))
        if draw.random() < self.p(task_id, kind):
            return self.answer(task_id, kind), True
        return draw.choices(self.wrong_answers(task_id, kind), weights=(6, 3, 1))[0], False

    def judge(self, task_id: str, kind: str, answer: str, seed: int | None) -> bool:
        """A judge's verdict on ``answer``: right with probability ``judge_accuracy``."""
        right = answer.strip() == self.answer(task_id, kind)
        draw = random.Random(_seed(self.seed, "judge", task_id, kind, answer.strip(), seed))
        return right if draw.random() < self.judge_accuracy else not right


_worlds: dict[str, SimWorld] = {}


def register(world: SimWorld) -> SimWorld:
    """Define (or redefine) ``sim/<world.name>``."""
    if not world.kinds:
        raise ModelConfigError(f"sim world {world.name!r} needs at least one kind")
    _worlds[world.name] = world
    return world


def get(name: str) -> SimWorld:
    try:
        return _worlds[name]
    except KeyError:
        known = ", ".join(sorted(_worlds)) or "none"
        raise ModelConfigError(f"model 'sim/{name}' is not registered (sim worlds defined: {known}); "
                               "define it with seasoned.models.sim.register(SimWorld(name, kinds=...))") from None


def unregister(name: str) -> None:
    _worlds.pop(name, None)


def count_prompt_tokens(model: str, messages: list[dict]) -> int:
    return count_message_tokens(messages)


def _text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


def reply(world: SimWorld, messages: list[dict], params: dict) -> tuple[str, int, str]:
    """(text, completion tokens, finish reason) for one call."""
    text = "\n".join(_text(m) for m in messages)
    tags = list(TAG.finditer(text))
    max_tokens = params.get("max_tokens")
    seed = params.get("seed")
    if tags and "Proposed answer:" in text and "reply with json" in text.lower():
        tag = tags[-1]
        found = _JUDGE.search(text + "\n\n")
        proposed = found["answer"].strip().splitlines()[-1] if found and found["answer"].strip() else ""
        proposed = proposed.split("Answer:")[-1].strip()
        ok = world.judge(tag["task"], tag["kind"], proposed, seed)
        body = json.dumps({"correct": ok, "score": 0.9 if ok else 0.1, "reason": "simulated verdict"})
        return body, 24, "stop"
    if tags:
        task_id, kind = tags[-1]["task"], tags[-1]["kind"]
        tokens = world.kind(kind).tokens
        answer, _ = world.sample(task_id, kind, seed)
    else:
        tokens = world.kind(world.default).tokens if world.default else 32
        answer = "unknown"
    if max_tokens is not None and int(max_tokens) < tokens:
        return "(cut off)", max(int(max_tokens), 0), "length"
    return f"Simulated reasoning. Answer: {answer}", tokens, "stop"


def make_handler():
    """The litellm CustomLLM for ``sim/`` (built lazily so importing this module stays light)."""
    import litellm
    from litellm.llms.custom_llm import CustomLLM

    def build(model: str, messages: list, optional_params: dict) -> litellm.ModelResponse:
        world = get(model)
        text, completion_tokens, finish = reply(world, messages, optional_params)
        return text_response(f"sim/{model}", text, finish, count_message_tokens(messages), completion_tokens)

    class SimLLM(CustomLLM):
        def completion(self, model, messages, *args, optional_params=None, **kwargs):
            return build(model, messages, optional_params or {})

        async def acompletion(self, model, messages, *args, optional_params=None, **kwargs):
            return build(model, messages, optional_params or {})

    return SimLLM()


def pooled_kind(world: SimWorld, weights: dict[str, float] | None = None) -> SimKind:
    """The world's kinds as one kind (a task of a kind drawn by ``weights``, default equal): what a stream of
    the world's questions looks like to a rule that does not see the kinds."""
    weights = weights or {name: 1.0 for name in world.kinds}
    total = sum(weights.values())
    parts = [(w / total * cw, a, b) for name, w in weights.items()
             for cw, a, b in (world.kind(name).components or ((1.0, world.kind(name).alpha, world.kind(name).beta),))]
    tokens = sum(w * world.kind(name).tokens for name, w in weights.items()) / total
    return SimKind.mixture(parts, round(tokens))


@dataclass
class CalibrationCheck:
    """Whether a simulated kind matches a real stream: per question, ``samples`` all drawn and ``successes``
    of them verified (e.g. a best-of-n arm). ``p_value``: the share of streams simulated from the kind (same
    questions, same sample counts) whose G statistic against the kind's beta-binomial is at least the real
    one's; ``pass_at``: pass@k observed (unbiased estimator) and predicted."""

    p_value: float
    statistic: float
    questions: int
    pass_at: dict[int, tuple[float, float]]

    @property
    def matches(self) -> bool:
        return self.p_value >= 0.05

    def describe(self) -> str:
        curve = ", ".join(f"pass@{k} {seen:.3f} vs {want:.3f}" for k, (seen, want) in sorted(self.pass_at.items()))
        return (f"{'matches' if self.matches else 'does NOT match'} the real stream (p = {self.p_value:.3f}, "
                f"{self.questions} questions; real vs simulated {curve})")


def _g_statistic(kind: SimKind, counts: list[tuple[int, int]]) -> float:
    by_n: dict[int, list[int]] = {}
    for n, k in counts:
        by_n.setdefault(n, [0] * (n + 1))[k] += 1
    g = 0.0
    for n, seen in by_n.items():
        expected = [q * sum(seen) for q in kind.successes_pmf(n)]
        g += 2 * sum(o * math.log(o / e) for o, e in zip(seen, expected) if o > 0 and e > 0)
    return g


def calibration_check(kind: SimKind, counts: list[tuple[int, int]], *, replicates: int = 1000,
                      seed: int = 0) -> CalibrationCheck:
    """Does ``kind`` describe questions with these (samples drawn, successes) counts? (A parametric
    bootstrap of the G test: no large-sample approximation, so 30 questions are enough to ask.)"""
    counts = [(int(n), int(k)) for n, k in counts if n > 0]
    if not counts:
        raise ModelConfigError("calibration_check needs at least one (samples, successes) count")
    observed = _g_statistic(kind, counts)
    rng = random.Random(seed)
    exceed = 0
    for _ in range(replicates):
        fake = []
        for n, _k in counts:
            p = kind.draw_p(rng)
            fake.append((n, sum(rng.random() < p for _ in range(n))))
        exceed += _g_statistic(kind, fake) >= observed - 1e-9
    smallest = min(n for n, _ in counts)
    pass_at = {}
    for k in sorted({1, 2, 4, smallest} & set(range(1, smallest + 1))):
        seen = sum(1 - math.comb(n - c, k) / math.comb(n, k) for n, c in counts) / len(counts)
        pass_at[k] = (seen, 1 - kind.successes_pmf(k)[0])
    return CalibrationCheck((exceed + 1) / (replicates + 1), observed, len(counts), pass_at)


def mixed_world(name: str = "mixed", seed: int = 0) -> SimWorld:
    """The benchmarks' world: an easy kind, a steep one (success rises fast with samples), a flat one (a task
    is solved at once or never) and a hopeless one."""
    return SimWorld(name, kinds={
        "easy": SimKind(8.0, 2.0, 60),
        "steep": SimKind(1.5, 4.0, 120),
        "flat": SimKind(0.3, 0.7, 80),
        "hopeless": SimKind(0.05, 20.0, 150),
    }, seed=seed)
