"""The solver role: the prompt that produces candidates, and reading the final answer out of one.

The graph samples many candidates from the same messages (in parallel, through the gateway), so the
solver is a prompt builder plus answer extraction; revisions add the previous attempt and a critique.
"""

from __future__ import annotations

import re

SYSTEM = "You are a careful problem solver."
ANSWER_FORMAT = "Give the final answer on the last line as: Answer: <answer>"
CONTEXT_HEADER = "Notes from earlier tasks (use them if they help):"

_ANSWER_LINE = re.compile(r"(?:final\s+answer|answer)\s*(?:is)?\s*[:=]\s*(.+)", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\{([^{}]+)\}")


def build_messages(task: str, *, context: str = "", previous: str | None = None, critique: str | None = None,
                   answer_format: str | None = ANSWER_FORMAT, demonstrations: list[dict] | None = None,
                   system: str | None = None) -> list[dict]:
    """Messages for one attempt.

    ``demonstrations`` are verified earlier exchanges (``{"task", "reply"}``), replayed before the task
    as user/assistant turns in the same format as the task itself;
    ``context`` holds distilled notes and goes into the system message; ``previous`` and ``critique``
    turn the attempt into a revision; ``system`` replaces the default system prompt.
    """
    system_text = system or SYSTEM
    if context.strip():
        system_text = f"{system_text}\n\n{CONTEXT_HEADER}\n{context.strip()}"
    parts = [task.strip()]
    if previous is not None:
        parts.append(f"\nA previous attempt:\n{previous.strip()}")
        if critique:
            parts.append(f"\nWhat was wrong with it:\n{critique.strip()}")
        parts.append("\nWrite a corrected attempt.")
    if answer_format:
        parts.append(answer_format)
    turns = []
    for demo in demonstrations or []:
        shown, reply = str(demo.get("task") or "").strip(), str(demo.get("reply") or "").strip()
        if shown and reply:
            user = f"{shown}\n{answer_format}" if answer_format and answer_format not in shown else shown
            turns += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    return [{"role": "system", "content": system_text}, *turns, {"role": "user", "content": "\n".join(parts)}]


def extract_answer(text: str) -> str | None:
    """The final answer in free text: the last 'Answer: X', else a \\boxed{X}, else the last line."""
    if not text or not text.strip():
        return None
    lines = _ANSWER_LINE.findall(text)
    if lines:
        return lines[-1].strip().strip("*").strip() or None
    boxed = _BOXED.findall(text)
    if boxed:
        return boxed[-1].strip()
    last = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return last[-1] if last else None


def normalize_answer(answer: str | None) -> str | None:
    """A canonical form for voting: case, spaces, trailing punctuation and number formats folded."""
    if answer is None:
        return None
    value = answer.strip().strip("`*").strip().rstrip(".").strip().lower()
    value = re.sub(r"\s+", " ", value)
    number = value.replace(",", "").replace("$", "")
    try:
        as_float = float(number)
        return str(int(as_float)) if as_float.is_integer() else repr(as_float)
    except ValueError:
        return value or None
