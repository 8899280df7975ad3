"""The curator role: distills reusable memory items from a run's trajectory, failures as well as successes.

Deterministic distillation always runs (it needs no model and cannot be fooled by one):
- a verified subtask becomes a worked example (``strategy``; ``code`` when its answer is a code block);
- a subtask whose candidates were both accepted and rejected becomes a contrastive ``lesson``
  (memory-aware test-time scaling: several trajectories of one task, compared);
- a failed subtask becomes a ``lesson`` naming the rejected answers and the verifier's reason.
With a curator model, an LLM additionally proposes strategies and behaviours (name + instruction) from the
same trajectory; its output is untrusted and parsed defensively. Every item carries its provenance
(run id, success/failure, verified or not), and the memory bank deduplicates and merges on add.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field
from seasoned.models import Budget, Gateway

from .base import ask_structured

MAX_TEXT = 600
_CODE = re.compile(r"```(?:\w+)?\n(.*?)```", re.DOTALL)
# Words that tie no line to its task ("so it is indeed 167" shares only "is" with "What is 93 + 74?").
_FILLER = frozenset({"a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "i", "in", "is",
                     "it", "its", "of", "on", "or", "so", "that", "the", "then", "this", "to", "was", "we", "what",
                     "which", "who", "with", "you"})

SYSTEM = "You write short, reusable advice from solved and failed tasks. You reply with JSON only."
PROMPT = """Task: {task}

What happened:
{summary}

Write at most 3 short items that would help solve similar tasks next time. Each item has a kind
("strategy" for an approach that worked, "lesson" for a mistake to avoid, "behavior" for a named habit),
a title, and the content (one or two sentences, general, not specific numbers). Reply with JSON only:
{{"items": [{{"kind": "strategy", "title": "...", "content": "..."}}]}}"""


class ProposedItem(BaseModel):
    kind: str = "strategy"
    title: str = ""
    content: str = ""


class Proposal(BaseModel):
    items: list[ProposedItem] = Field(default_factory=list)


def _clip(text: str, limit: int = MAX_TEXT) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def distill(trajectory: dict) -> list[dict]:
    """Deterministic items (as dicts for ``MemoryItem``) from a trajectory."""
    items: list[dict] = []
    run_id = trajectory.get("run_id")
    for sub in trajectory.get("subtasks", []):
        description = _clip(sub.get("description") or trajectory.get("task", ""), 300)
        kind = sub.get("kind") or "general"
        tried = sub.get("tried") or []
        passed = [t["answer"] for t in tried if t.get("passed")]
        rejected = sorted({str(t["answer"]) for t in tried if t.get("passed") is False and t.get("answer")})
        common = {"tags": [kind], "task_signature": kind, "run_ids": [run_id] if run_id else []}
        if sub.get("verified"):
            code = _CODE.findall(sub.get("text") or "")
            items.append({**common, "kind": "code" if code else "strategy", "source": "success",
                          "verified": sub.get("checked", False),
                          "title": f"worked example: {description[:80]}",
                          "content": _clip(f"{description.splitlines()[0]} Verified answer: "
                                           f"{code[-1] if code else _clip(sub.get('text', ''), 160)}")})
            if rejected:
                items.append({**common, "kind": "lesson", "source": "success", "verified": sub.get("checked", False),
                              "title": f"contrast: {description[:80]}",
                              "content": _clip(f"Step: {description}\nAccepted answer: {passed[0] if passed else sub.get('answer')}. "
                                               f"Rejected answers: {', '.join(rejected[:5])}. Check the result "
                                               "before answering.")})
        elif sub.get("checked") and (rejected or sub.get("answer")):
            items.append({**common, "kind": "lesson", "source": "failure", "verified": False,
                          "title": f"failed: {description[:80]}",
                          "content": _clip(f"Step: {description}\nThese answers were rejected: "
                                           f"{', '.join(rejected[:5]) or sub.get('answer')}. "
                                           f"{sub.get('details') or ''}")})
    return items


def demonstrations(trajectory: dict) -> list[dict[str, Any]]:
    """Verified trajectories worth replaying: each subtask an environment checked and accepted, as the
    task the model was given and the reply it produced (for acting episodes, the compacted steps)."""
    found = []
    for sub in trajectory.get("subtasks", []):
        if not (sub.get("verified") and sub.get("checked")):
            continue
        steps = compact_steps(sub.get("steps") or [])
        raw = (sub.get("text") or "").strip()
        answer = None if sub.get("answer") is None else str(sub.get("answer"))
        task_text = (sub.get("prompt") or sub.get("description") or trajectory.get("task") or "").strip()
        reply = steps or compact_reply(raw, answer, task_text)
        task = (sub.get("prompt") or sub.get("description") or trajectory.get("task") or "").strip()
        if task and reply:
            found.append({"task": task, "reply": reply, "scope": trajectory.get("scope") or "general",
                          "run_id": trajectory.get("run_id"), "checker": trajectory.get("checker"),
                          "answer": answer, "steps": sub.get("steps") or None, "raw_reply": raw})
    return found


def compact_reply(text: str, answer: str | None, task: str = "", *, max_line: int = 60) -> str:
    """A verified reply distilled to what a model should imitate: its last code block when it has one;
    else the line of its own reasoning that reaches the verified answer from the task (the one sharing
    most words with the task, filler words aside, then the shortest), then ``Answer: X``; a bare
    ``Answer: X`` when no such line touches the task.
    A small model's accepted reply often carries noise around the right result ("74 + 44 = 22 * 5 =
    118 ... I'll provide another solution next session"); replayed as is, it teaches the noise. A line
    that never touches the task teaches worse than none: shown as earlier turns, two "so it is indeed
    167" demonstrations took SmolLM2 from 1/80 to 0/80 on two-digit additions, where "93 + 74 = 167"
    took it to 20/80 and a bare "Answer: 167" to 6/80."""
    code = _CODE.findall(text or "")
    if code:
        return f"```python\n{code[-1].strip()}\n```"
    if not answer or not answer.strip():
        return (text or "").strip()[:MAX_TEXT]
    answer = answer.strip()
    lines = [line.strip() for line in (text or "").splitlines() if answer in line]
    reasoning = [line for line in lines if not re.match(r"^\W*(?:final\s+)?answer\b", line, re.IGNORECASE)]
    if not reasoning:
        return f"Answer: {answer}"
    words = _content_words(task)
    shared = {line: len(words & _content_words(line)) for line in reasoning}
    if max(shared.values()) == 0:
        return f"Answer: {answer}"
    line = min(reasoning, key=lambda ln: (-shared[ln], len(ln)))
    if len(line) > max_line:  # keep the clause that ends with the answer
        end = line.rfind(answer) + len(answer)
        start = max(line.rfind(sep, 0, line.rfind(answer)) for sep in (". ", ": ", ", ", "; "))
        line = line[start + 2 if start >= 0 else 0:end][-max_line:]
    line = line.strip().rstrip(".")
    return f"{line}\nAnswer: {answer}" if line and line != answer else f"Answer: {answer}"


def _content_words(text: str) -> set[str]:
    return {word for word in re.findall(r"\w+", text.lower()) if word not in _FILLER}


def compact_steps(steps: list[dict], *, max_steps: int = 12, observation_chars: int = 120) -> str:
    """An acting episode as short lines ``action -> first line of what came back`` (empty if no action)."""
    lines = []
    for step in steps[-max_steps:]:
        action = (step.get("action") or "").strip() if isinstance(step, dict) else ""
        if not action:
            continue
        observation = str(step.get("observation") or "").strip().splitlines()
        seen = observation[0][:observation_chars] if observation else ""
        lines.append(f"{action} -> {seen}" if seen else action)
    return "\n".join(lines)


def summarize(trajectory: dict) -> str:
    lines = []
    for sub in trajectory.get("subtasks", []):
        tried = ", ".join(f"{t.get('answer')}{' (accepted)' if t.get('passed') else ''}"
                          for t in (sub.get("tried") or [])[:6])
        lines.append(f"- step {sub.get('id')}: {_clip(sub.get('description', ''), 200)} -> "
                     f"{'verified' if sub.get('verified') else 'not verified'}; answers tried: {tried or 'none'}")
    final = trajectory.get("final") or {}
    lines.append(f"Final answer {'verified' if final.get('verified') else 'not verified'}: "
                 f"{_clip(str(final.get('answer')), 200)}")
    return "\n".join(lines)


async def propose(gateway: Gateway, trajectory: dict, *, budget: Budget | None = None,
                  model: str | None = None) -> list[dict]:
    """Items an LLM curator proposes (empty when its output is unusable)."""
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": PROMPT.format(task=_clip(trajectory.get("task", ""), 500),
                                                          summary=summarize(trajectory))}]
    outcome = await ask_structured(gateway, messages, Proposal, role="curator", budget=budget, max_tokens=300,
                                   temperature=0.3, model=model)
    if not outcome.ok:
        return []
    final = trajectory.get("final") or {}
    proposed = []
    for item in outcome.value.items[:3]:
        if item.kind not in ("strategy", "lesson", "behavior") or len(item.content.strip()) < 12:
            continue
        proposed.append({"kind": item.kind, "title": _clip(item.title, 120), "content": _clip(item.content),
                         "source": "success" if final.get("verified") else "failure", "verified": False,
                         "run_ids": [trajectory["run_id"]] if trajectory.get("run_id") else [],
                         "tags": ["llm-curated"]})
    return proposed


def allocation_records(trajectory: dict) -> list[dict[str, Any]]:
    """One record per subtask: the budget it was given, what it spent, whether it succeeded, and how many
    samples it drew. A subtask with neither an allocation nor a sample count (nothing to learn from) has none;
    one without a token cap (a single-stage run given no ``max_tokens``) records an empty budget."""
    final_ok = bool((trajectory.get("final") or {}).get("verified"))
    records = []
    for sub in trajectory.get("subtasks", []):
        if sub.get("allocated") is None and sub.get("samples") is None:
            continue
        success = bool(sub.get("verified")) if sub.get("checked") else final_ok
        budget = {"tokens": sub["allocated"]} if sub.get("allocated") is not None else {}
        records.append({"subtask_kind": sub.get("kind") or "general", "budget": budget,
                        "spent": {"tokens": sub.get("tokens", 0)}, "success": success,
                        "difficulty": sub.get("difficulty"), "model": sub.get("model"),
                        "extra": {"samples": sub.get("samples")} if sub.get("samples") is not None else None})
    return records
