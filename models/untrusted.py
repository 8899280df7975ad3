"""Reading untrusted text (model output, HTTP bodies, imported files) without crashing or stalling.

``loads`` is ``json.loads`` with a nesting-depth and size limit (checked by one linear scan before parsing,
so a reply 100,000 levels deep is refused instead of raising ``RecursionError``) and, when asked, without
the non-standard constants ``NaN``/``Infinity``; ``object_spans`` finds the ``{...}`` spans of JSON in
prose without recursion. ``parse_number`` reads a decimal, fraction or scientific
number with a digit and exponent limit, exactly (``Fraction``), so ``1e400.5`` or a 400-digit answer never
reach ``float()`` and never overflow. Both raise or return only what their docstrings say.

Kept in ``models`` (the bottom layer) so that agents, envs, tools, memory and the server share one copy.
"""

from __future__ import annotations

import json
import math
import re
from fractions import Fraction
from typing import Any

MAX_JSON_DEPTH = 64  # model replies and API bodies: real ones nest < 10 levels
MAX_JSON_CHARS = 5_000_000
MAX_NUMBER_DIGITS = 1000  # digits of an answer number (a wrong answer, but still a number)
MAX_NUMBER_EXPONENT = 1000  # |e| in 1.5e3: 10**1000 is still cheap to build exactly
INT64 = (-2**63, 2**63 - 1)

_STRUCTURE = re.compile(r'[\[\]{}"\\]')
_NUMBER = re.compile(r"(?P<sign>[-+]?)(?=\d|\.\d)(?P<int>\d*)"
                     r"(?:/(?P<den>\d+)|(?:\.(?P<dec>\d*))?(?:[eE](?P<exp>[-+]?\d+))?)")


class UntrustedInputError(ValueError):
    """Untrusted text that was refused (too deep, too large, not finite, not JSON); one line saying why."""


def json_depth(text: str, stop_above: int | None = None) -> int:
    """The deepest ``[``/``{`` nesting in ``text`` outside JSON strings (linear time).

    Stops early once the depth exceeds ``stop_above``. Unbalanced text is measured as far as it goes."""
    if text.count("[") + text.count("{") <= (stop_above if stop_above is not None else -1):
        return 0  # cannot be deeper than the number of openers (the common case: no scan at all)
    depth = deepest = 0
    in_string = escaped = False
    for match in _STRUCTURE.finditer(text):
        ch = match.group()
        if in_string:
            if escaped:
                escaped = False  # the escaped character itself
            elif ch == "\\":  # escapes the next character; only a special one is seen by the scan
                escaped = match.end() < len(text) and text[match.end()] in '\\"[]{}'
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_above is not None and deepest > stop_above:
                    return deepest
        elif ch in "]}":
            depth = max(depth - 1, 0)
    return deepest


_OBJECT_SPECIALS = '{}"\\'
_OBJECT_SPECIAL = re.compile(r'[{}"\\]')


def object_spans(text: str) -> list[str]:
    """Every top-level ``{...}`` span of ``text`` (prose around JSON), in order; braces inside JSON strings
    are respected. Linear time, no recursion: only the characters that matter are visited (a regex finds
    them), and an unclosed span (``{`` nested 100,000 deep) is simply not returned."""
    spans, depth, start, in_string, escaped = [], 0, -1, False, False
    for match in _OBJECT_SPECIAL.finditer(text):
        ch, i = match.group(), match.start()
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = i + 1 < len(text) and text[i + 1] in _OBJECT_SPECIALS  # else the escape hides nothing
            elif ch == '"':
                in_string = False
            continue
        if ch == '"' and depth > 0:
            in_string = True
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                spans.append(text[start: i + 1])
    return spans


def _refuse_constant(name: str) -> Any:
    raise UntrustedInputError(f"{name} is not a JSON number (only finite numbers are accepted)")


def loads(text: str | bytes, *, max_depth: int = MAX_JSON_DEPTH, max_chars: int = MAX_JSON_CHARS,
          allow_nan: bool = True) -> Any:
    """``json.loads`` that refuses (``UntrustedInputError``) text nested deeper than ``max_depth`` or longer
    than ``max_chars``, and ``NaN``/``Infinity`` (and numbers that overflow to them) unless ``allow_nan``.
    Invalid JSON raises ``json.JSONDecodeError`` (a ``ValueError``) as usual."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8")  # UnicodeDecodeError is a ValueError too
    if len(text) > max_chars:
        raise UntrustedInputError(f"the JSON text is longer than {max_chars} characters")
    depth = json_depth(text, stop_above=max_depth)
    if depth > max_depth:
        raise UntrustedInputError(f"the JSON is nested more than {max_depth} levels deep")
    kwargs: dict[str, Any] = {} if allow_nan else {"parse_constant": _refuse_constant,
                                                   "parse_float": _finite_float}
    try:
        return json.loads(text, **kwargs)
    except RecursionError:  # belt and braces: the scan above should make this unreachable
        raise UntrustedInputError("the JSON is nested too deeply") from None


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UntrustedInputError(f"the number {text[:40]}{'...' if len(text) > 40 else ''} is too large")
    return value


def parse_number(text: str, *, max_digits: int = MAX_NUMBER_DIGITS,
                 max_exponent: int = MAX_NUMBER_EXPONENT) -> Fraction | None:
    """``"12"``, ``"-3.5"``, ``"7/2"``, ``"1.5e3"`` -> exact ``Fraction``; None when ``text`` is not such a
    number, has more than ``max_digits`` digits, an exponent beyond ``max_exponent``, or divides by zero.
    Never raises; time and memory are bounded by the limits, not by the text."""
    if not isinstance(text, str) or len(text) > 3 * max_digits + 20:
        return None
    match = _NUMBER.fullmatch(text.strip())
    if match is None:
        return None
    whole, decimals, denominator = match["int"], match["dec"] or "", match["den"]
    if len(whole) + len(decimals) > max_digits or (denominator and len(denominator) > max_digits):
        return None
    exponent = int(match["exp"]) if match["exp"] and len(match["exp"]) <= 12 else (0 if not match["exp"] else None)
    if exponent is None or abs(exponent) > max_exponent:
        return None
    if denominator is not None:
        if int(denominator) == 0:
            return None
        value = Fraction(int(whole), int(denominator))
    else:
        value = Fraction(int(whole + decimals or "0"), 10 ** len(decimals)) * Fraction(10) ** exponent
    return -value if match["sign"] == "-" else value


def number_text(value: Fraction) -> str:
    """Canonical text of an exact number: ``12``, ``-3.5`` (the float's repr when it is exact), else the
    exact decimal (``1000...0.5``), else ``p/q``. Never raises: values too large for a float stay exact."""
    if value.denominator == 1:
        return str(value.numerator)
    try:
        as_float = value.numerator / value.denominator
    except OverflowError:
        return _exact_decimal(value) or f"{value.numerator}/{value.denominator}"
    if math.isfinite(as_float) and parse_number(repr(as_float)) == value:
        return repr(as_float)
    return _exact_decimal(value) or f"{value.numerator}/{value.denominator}"


def _exact_decimal(value: Fraction) -> str | None:
    """``1000...0.5`` for a value a finite decimal can hold exactly (denominator 2**a * 5**b), else None."""
    denominator, twos, fives = value.denominator, 0, 0
    while denominator % 2 == 0:
        denominator, twos = denominator // 2, twos + 1
    while denominator % 5 == 0:
        denominator, fives = denominator // 5, fives + 1
    if denominator != 1:
        return None
    places = max(twos, fives)
    scaled = abs(value.numerator) * (10 ** places // value.denominator)
    digits = str(scaled).rjust(places + 1, "0")
    sign = "-" if value < 0 else ""
    return f"{sign}{digits[:-places]}.{digits[-places:]}" if places else f"{sign}{digits}"


def check_tree(value: Any, *, path: str = "body", max_depth: int = MAX_JSON_DEPTH,
               int_range: tuple[int, int] | None = INT64) -> None:
    """Refuse (``UntrustedInputError`` naming the field) what a parsed JSON tree may hold but nothing
    downstream can store or send back: lone surrogates in strings or keys, non-finite floats, integers
    outside ``int_range`` (int64 by default), nesting beyond ``max_depth``. Iterative: no recursion."""
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        node, where, depth = stack.pop()
        if depth > max_depth:
            raise UntrustedInputError(f"{where}: nested more than {max_depth} levels deep")
        if isinstance(node, str):
            _check_text(node, where)
        elif isinstance(node, bool) or node is None:
            continue
        elif isinstance(node, int):
            if int_range is not None and not int_range[0] <= node <= int_range[1]:
                raise UntrustedInputError(f"{where}: {_short_int(node)} is out of range "
                                          f"({int_range[0]}..{int_range[1]})")
        elif isinstance(node, float):
            if not math.isfinite(node):
                raise UntrustedInputError(f"{where}: {node} is not a finite number")
        elif isinstance(node, dict):
            for key, item in node.items():
                _check_text(str(key), f"{where} key")
                stack.append((item, f"{where}.{key}" if where != "body" else str(key), depth + 1))
        elif isinstance(node, list):
            stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(node))


def _check_text(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise UntrustedInputError(f"{where}: contains a lone surrogate ({text[err.start]!r} at character "
                                  f"{err.start}); send valid Unicode") from None


def _short_int(value: int) -> str:
    digits = len(str(abs(value))) if abs(value) < 10**4000 else 4000
    return str(value) if digits <= 30 else f"a {digits}-digit integer"


def finite_or_none(value: Any) -> Any:
    """A copy of a JSON-like tree with non-finite floats replaced by None (so ``json.dumps`` with
    ``allow_nan=False`` always succeeds); iterative, other values unchanged."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if not isinstance(value, (dict, list, tuple)):
        return value
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(value, root, 0)]
    while stack:
        node, parent, slot = stack.pop()
        if isinstance(node, float):
            parent[slot] = node if math.isfinite(node) else None
        elif isinstance(node, dict):
            copy: dict = {}
            parent[slot] = copy
            stack.extend((item, copy, key) for key, item in node.items())
        elif isinstance(node, (list, tuple)):
            items: list = [None] * len(node)
            parent[slot] = items
            stack.extend((item, items, i) for i, item in enumerate(node))
        else:
            parent[slot] = node
    return root[0]


__all__ = ["INT64", "MAX_JSON_DEPTH", "UntrustedInputError", "check_tree", "finite_or_none", "json_depth",
           "loads", "number_text", "object_spans", "parse_number"]
