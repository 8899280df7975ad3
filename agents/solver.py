"""The solver role: the prompt that produces candidates, and reading the final answer out of one.

The graph samples many candidates from the same messages (in parallel, through the gateway), so the
solver is a prompt builder plus answer extraction; revisions add the previous attempt and a critique.
"""

from __future__ import annotations

import re

from seasoned.models import untrusted

SYSTEM = "You are a careful problem solver."
ANSWER_FORMAT = "Give the final answer on the last line as: Answer: <answer>"
CONTEXT_HEADER = "Notes from earlier tasks (use them if they help):"

# Possessive whitespace (``\s*+``): the engine never re-splits a run of spaces, so matching stays linear
# ("answer" + 20,000 spaces + "x" took 10 s with plain ``\s*``).
_ANSWER_LINE = re.compile(r"(?:final\s++answer|answer)\s*+(?:is)?\s*+[:=]\s*+(.+)", re.IGNORECASE)
# "The answer is: Answer: 42": every leading "answer:" of the captured text is dropped in one pass.
_ANSWER_PREFIXES = re.compile(r"(?:(?:final\s++answer|answer)\s*+(?:is)?\s*+[:=]\s*+)++", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\{([^{}]+)\}")
# A line that ends in its result: "2 + 3 = 5", "The sum is 5.", "so x equals -1.5": the number after the
# last "=" or copula. Anchored at the end with possessive runs: linear on any line.
_RESULT = re.compile(r"(?:=|\b(?:is|equals|are|was|makes|gives)\b)[ \t]*+(-?\$?\d[\d,]*+(?:\.\d++)?)[ \t]*+[.!]?[ \t]*+$",
                     re.IGNORECASE)
MAX_ANSWER_SOURCE = 100_000  # a longer reply is read from its end (the answer comes last)


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
    """The final answer in free text: the last 'Answer: X', else a \\boxed{X}, else the last line; an
    answer or line that states a result ends on it ("2 + 3 = 5", "The sum is 5.") is read as that number.

    Linear time on any text; never raises (model output is untrusted)."""
    if not isinstance(text, str) or not text.strip():
        return None
    text = text[-MAX_ANSWER_SOURCE:]
    lines = _ANSWER_LINE.findall(text)
    if lines:
        value = lines[-1].strip()
        prefixes = _ANSWER_PREFIXES.match(value)
        value = value[prefixes.end():] if prefixes else value
        return result_of(value.strip().strip("*").strip()) or None
    boxed = _BOXED.findall(text)
    if boxed:
        return boxed[-1].strip()
    last = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return result_of(last[-1]) if last else None


def result_of(line: str) -> str:
    """The number a line ends on when it states a result ("2 + 3 = 5" -> "5", "The sum is 5." -> "5"), else
    the line as it is ("Apollo 11", "y = 2x + 1")."""
    found = _RESULT.search(line.strip().strip("*").rstrip())
    return found.group(1) if found else line


def normalize_answer(answer: str | None) -> str | None:
    """A canonical form for voting: case, spaces, trailing punctuation and number formats folded.

    Numbers are read exactly with bounded size (``seasoned.models.untrusted.parse_number``): no float
    overflow, and two different 400-digit answers never fold into the same ``inf``."""
    if not isinstance(answer, str):
        return None
    value = answer[:MAX_ANSWER_SOURCE].strip().strip("`*").strip().rstrip(".").strip().lower()
    value = re.sub(r"\s+", " ", value)
    number = untrusted.parse_number(value.replace(",", "").replace("$", "").replace("_", ""))
    if number is None:
        return value or None
    if number.denominator == 1:
        return str(number.numerator)
    try:  # equal at float precision votes together (0.1 and 0.10000000000000001)
        return repr(number.numerator / number.denominator)
    except OverflowError:
        return f"{number.numerator}/{number.denominator}"
