"""Dedup/merge decisions (mem0-style ADD / UPDATE / NOOP, plus CONTRADICT when a model says so).

The deterministic rule: below ``dedup_threshold`` similarity -> ADD; a new text already contained in
the old one, or similarity at/above ``noop_threshold`` -> NOOP; otherwise UPDATE by appending the new
sentences the old item lacks. The LLM decision (when a model is given) is untrusted output: it is
parsed defensively and replaced by the rule whenever it is unusable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from seasoned.models import untrusted

from .items import MemoryItem

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_SPACE = re.compile(r"\s+")


@dataclass
class Decision:
    action: str  # ADD | UPDATE | NOOP | CONTRADICT
    target: MemoryItem | None = None
    similarity: float | None = None
    title: str | None = None
    content: str | None = None
    reason: str = ""
    by: str = "rule"  # rule | llm
    extra: dict[str, Any] = field(default_factory=dict)


def normalized(text: str) -> str:
    """The text as duplicates are compared: spacing collapsed, lower case."""
    return _SPACE.sub(" ", text).strip().lower()


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text or "") if s and s.strip()]


def merge_content(old: str, new: str) -> str:
    """The old text, then every sentence of the new text it does not already contain."""
    known = {normalized(s) for s in sentences(old)}
    old_norm = normalized(old)
    extra = [s for s in sentences(new) if normalized(s) not in known and normalized(s) not in old_norm]
    if not extra:
        return old
    joiner = "\n" if "\n" in old or "\n" in new else " "
    return old.rstrip() + joiner + joiner.join(extra)


def rule_decision(new: MemoryItem, candidates: list[tuple[MemoryItem, float]], *,
                  dedup_threshold: float, noop_threshold: float) -> Decision:
    """``candidates``: same-namespace, same-kind active items with cosine similarity, best first."""
    if not candidates or candidates[0][1] < dedup_threshold:
        best = candidates[0][1] if candidates else None
        return Decision("ADD", similarity=best, reason="no similar item" if best is None
                        else f"most similar item at {best:.3f} < {dedup_threshold}")
    target, sim = candidates[0]
    if sim >= noop_threshold or normalized(new.content) in normalized(target.content):
        return Decision("NOOP", target, sim, reason=f"duplicate of {target.id} (similarity {sim:.3f})")
    merged = merge_content(target.content, new.content)
    if merged == target.content:
        return Decision("NOOP", target, sim, reason=f"nothing new for {target.id} (similarity {sim:.3f})")
    return Decision("UPDATE", target, sim, content=merged,
                    reason=f"merge: near-duplicate of {target.id} (similarity {sim:.3f})")


# --- LLM decision ---------------------------------------------------------------------------------
MERGE_SYSTEM = (
    "You maintain an agent's experience memory. Decide how a NEW memory item relates to EXISTING ones.\n"
    "Answer with one JSON object and nothing else:\n"
    '{"action": "ADD" | "UPDATE" | "NOOP" | "CONTRADICT", "target_id": "<id of an existing item or null>", '
    '"title": "<merged title, UPDATE only>", "content": "<merged content, UPDATE only>", "reason": "<short>"}\n'
    "ADD: new information. UPDATE: same topic, merge both into one item (keep every useful detail). "
    "NOOP: the new item says nothing the target does not. CONTRADICT: the new item contradicts the target "
    "and should replace it."
)


def merge_messages(new: MemoryItem, candidates: list[tuple[MemoryItem, float]]) -> list[dict[str, str]]:
    existing = "\n\n".join(
        f"[id={item.id}] (similarity {sim:.2f}) {item.title}\n{item.content}" for item, sim in candidates
    )
    user = f"NEW ({new.kind}): {new.title}\n{new.content}\n\nEXISTING:\n{existing}"
    return [{"role": "system", "content": MERGE_SYSTEM}, {"role": "user", "content": user}]


MAX_REPLY_CHARS = 32_000  # a merge decision is a few hundred characters
MAX_OBJECTS = 16  # {...} spans tried before the reply counts as unparseable
MAX_DEPTH = 16  # the decision nests one level; deeper JSON is not a decision


def _first_json_object(text: str) -> dict | None:
    """The first ``{...}`` span of the reply that is a JSON object, or None (unparseable). Model output:
    no recursion on nesting, bounded work on any length (``untrusted`` does the reading)."""
    if not isinstance(text, str):
        return None
    for span in untrusted.object_spans(text[:MAX_REPLY_CHARS])[:MAX_OBJECTS]:
        try:
            value = untrusted.loads(span, max_depth=MAX_DEPTH)
        except ValueError:  # not JSON, or nested deeper than a decision ever is
            continue
        if isinstance(value, dict):
            return value
    return None


def parse_llm_decision(text: str, new: MemoryItem, candidates: list[tuple[MemoryItem, float]],
                       max_growth: float = 4.0) -> Decision | None:
    """A usable decision from model output, or None (the caller then applies the rule)."""
    data = _first_json_object(text)
    if not data:
        return None
    action = str(data.get("action", "")).strip().upper()
    if action not in ("ADD", "UPDATE", "NOOP", "CONTRADICT"):
        return None
    reason = str(data.get("reason") or "")[:500]
    if action == "ADD":
        return Decision("ADD", reason=f"llm: {reason}".strip(), by="llm")
    by_id = {item.id: (item, sim) for item, sim in candidates}
    target_id = str(data.get("target_id") or "")
    if target_id not in by_id:
        return None
    target, sim = by_id[target_id]
    if action == "UPDATE":
        content = data.get("content")
        if not isinstance(content, str) or not content.strip():
            return None
        limit = max_growth * (len(target.content) + len(new.content)) + 200
        if len(content) > limit:
            return None
        title = data.get("title")
        title = title.strip()[:300] if isinstance(title, str) and title.strip() else None
        return Decision("UPDATE", target, sim, title=title, content=content.strip(),
                        reason=f"merge (llm): {reason}".strip(), by="llm")
    label = "contradiction (llm)" if action == "CONTRADICT" else "duplicate (llm)"
    return Decision(action, target, sim, reason=f"{label}: {reason}".strip(), by="llm")
