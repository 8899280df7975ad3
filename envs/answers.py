"""Robust answer extraction from model output: last number, last expression, code blocks."""

from __future__ import annotations

import re
from fractions import Fraction

from seasoned.models import untrusted

_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?(?:/\d+)?(?![\w])|(?<![\w.])-?\.\d+")
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_MARKED = re.compile(r"(?:final answer|answer)\s*+(?:is|:|=)?\s*+\**+\s*+([^\n]*)", re.I)
MAX_SCAN = 50_000
_CODE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)(?:```|\Z)", re.S)


def parse_number(text: str) -> Fraction | None:
    """``"1,234"``, ``"-3.5"``, ``"7/2"`` -> Fraction; None if it is not a number, or one too large to be
    an answer (see ``seasoned.models.untrusted.parse_number``: no overflow, bounded time)."""
    if not isinstance(text, str):
        return None
    return untrusted.parse_number(text.strip().replace(",", "").rstrip("."))


def last_number(text: str) -> Fraction | None:
    """The answer number: the last ``\\boxed{}``, else the first number after the last 'answer:',
    else the last number in the text."""
    text = tail(text)
    boxed = _BOXED.findall(text)
    marked = _MARKED.findall(text)
    for chunk, pick in ((boxed[-1] if boxed else "", -1), (marked[-1] if marked else "", 0), (text, -1)):
        found = _NUMBER.findall(chunk)
        for candidate in (reversed(found) if pick == -1 else found):  # the first that parses, from that end
            value = parse_number(candidate)
            if value is not None:
                return value
    return None


def tail(text: str) -> str:
    """The part of a reply that answer extraction reads: its last ``MAX_SCAN`` characters (the answer
    comes last), so extraction time is bounded whatever the reply's length."""
    if not isinstance(text, str):
        return ""
    return text if len(text) <= MAX_SCAN else text[-MAX_SCAN:]


def format_number(value: Fraction) -> str:
    """Canonical text of a number: ``12``, ``-3.5``, ``7/3`` (never raises, however large)."""
    return untrusted.number_text(value)


def code_blocks(text: str) -> list[tuple[str, str]]:
    """All fenced code blocks as (language, code), an unterminated last block included."""
    return [(lang.lower(), code) for lang, code in _CODE.findall(text or "")]
