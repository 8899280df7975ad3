"""Robust answer extraction from model output: last number, last expression, last code block."""

from __future__ import annotations

import re
from fractions import Fraction

_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?(?:/\d+)?(?![\w])|(?<![\w.])-?\.\d+")
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_MARKED = re.compile(r"(?:final answer|answer)\s*(?:is|:|=)?\s*\**\s*([^\n]*)", re.I)
_CODE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)(?:```|\Z)", re.S)


def parse_number(text: str) -> Fraction | None:
    """``"1,234"``, ``"-3.5"``, ``"7/2"`` -> Fraction; None if it is not a number."""
    cleaned = text.strip().replace(",", "").rstrip(".")
    try:
        return Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


def last_number(text: str) -> Fraction | None:
    """The answer number: the last ``\\boxed{}``, else the first number after the last 'answer:',
    else the last number in the text."""
    text = text or ""
    boxed = _BOXED.findall(text)
    marked = _MARKED.findall(text)
    for chunk, pick in ((boxed[-1] if boxed else "", -1), (marked[-1] if marked else "", 0), (text, -1)):
        numbers = [v for v in (parse_number(n) for n in _NUMBER.findall(chunk)) if v is not None]
        if numbers:
            return numbers[pick]
    return None


def format_number(value: Fraction) -> str:
    """Canonical text of a number: ``12``, ``-3.5``, ``7/3``."""
    if value.denominator == 1:
        return str(value.numerator)
    as_float = float(value)
    if Fraction(repr(as_float)) == value:
        return repr(as_float)
    return f"{value.numerator}/{value.denominator}"


def code_blocks(text: str) -> list[tuple[str, str]]:
    """All fenced code blocks as (language, code), an unterminated last block included."""
    return [(lang.lower(), code) for lang, code in _CODE.findall(text or "")]


def last_code_block(text: str, languages: tuple[str, ...] = ("python", "py", "")) -> str | None:
    blocks = [code for lang, code in code_blocks(text) if lang in languages]
    return blocks[-1] if blocks else None
