"""Dynamic-Cheatsheet-style synthesis: the top retrieved items condensed into a short, bounded text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from seasoned.models.tokens import count_text_tokens

from .items import Retrieved
from .merge import sentences

if TYPE_CHECKING:
    from seasoned.models import Gateway

SECTIONS = (
    ("behavior", "Behaviors"),
    ("strategy", "Strategies"),
    ("cheatsheet", "Notes"),
    ("lesson", "Lessons from failures"),
    ("code", "Verified code"),
    ("note", "Notes"),
    ("allocation", "Budget records"),
)


def _clip(text: str, max_tokens: int) -> str:
    """Whole sentences while they fit, else the first words."""
    out: list[str] = []
    used = 0
    for sentence in sentences(text):
        cost = count_text_tokens(sentence)
        if used + cost > max_tokens:
            break
        out.append(sentence)
        used += cost
    if out:
        return " ".join(out)
    words: list[str] = []
    for word in (text or "").split():
        if count_text_tokens(" ".join([*words, word])) > max_tokens:
            break
        words.append(word)
    return " ".join(words)


def deterministic(query: str, hits: Sequence[Retrieved], max_tokens: int) -> str:
    header = "# Cheatsheet"
    lines = [header]
    used = count_text_tokens(header)
    per_item = max(12, max_tokens // 3)
    seen: set[str] = set()
    grouped: dict[str, list[Retrieved]] = {}
    for hit in hits:
        grouped.setdefault(hit.item.kind, []).append(hit)
    titles_done: set[str] = set()
    for kind, title in SECTIONS:
        for hit in grouped.get(kind, []):
            item = hit.item
            if kind == "code":
                body = item.content.strip()
                entry = f"- {item.title or 'snippet'}:\n```\n{body}\n```"
                if count_text_tokens(entry) > per_item:
                    continue  # a clipped snippet is not verified code any more
            else:
                body = _clip(item.content, per_item)
                if not body:
                    continue
                entry = f"- {item.title}: {body}" if item.title else f"- {body}"
                if not item.verified and item.source != "human":
                    entry += " (unverified)"
            key = " ".join(body.lower().split())
            if key in seen:
                continue
            section = [] if title in titles_done else [f"## {title}"]
            cost = count_text_tokens("\n".join([*section, entry]))
            if used + cost > max_tokens:
                continue
            lines.extend(section)
            lines.append(entry)
            titles_done.add(title)
            seen.add(key)
            used += cost
    return "\n".join(lines) if len(lines) > 1 else ""


def synthesize(query: str, hits: Sequence[Retrieved], *, max_tokens: int = 400, model: str | None = None,
               gateway: Gateway | None = None) -> str:
    """With ``model``, an LLM rewrites the draft (kept only if non-empty and within ``max_tokens``), called
    through ``gateway`` (default: the process-wide one), so the call is budgeted, tagged and in its ledger."""
    draft = deterministic(query, hits, max_tokens)
    if not model or not draft:
        return draft
    from seasoned.models import SeasonedError, default_gateway

    prompt = (
        "Condense these notes into a short cheatsheet of reusable strategies, pitfalls and code for the task. "
        f"Keep code verbatim. At most {max_tokens} tokens.\n\nTask: {query}\n\nNotes:\n{draft}"
    )
    try:
        reply = (gateway or default_gateway()).complete(prompt, model=model, max_tokens=max_tokens, role="curator")
    except SeasonedError:
        return draft
    text = (reply.text or "").strip()
    if not text or count_text_tokens(text) > max_tokens:
        return draft
    return text
