"""Reading structured output from real model text: JSON in prose or code fences, trailing text, missing
fields, ``key: value`` lines. Model output is untrusted input: nothing here raises on bad text except
``ParseError``, which carries a short reason that can be shown back to the model in a re-ask.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from seasoned.models import untrusted

T = TypeVar("T", bound=BaseModel)

_FENCE = re.compile(r"```(?:json|JSON)?\s*+(.*?)```", re.DOTALL)  # possessive: no re-splitting of spaces
# Horizontal whitespace only and a greedy value (trimmed in Python): linear time on any line.
_KEY_VALUE = re.compile(r"^[ \t]*+[\-\*]?[ \t]*+\"?([A-Za-z_][\w ]{0,40}?)\"?[ \t]*+[:=][ \t]*+(\S.*)$", re.MULTILINE)
MAX_REPLY_CHARS = 32_000  # a longer reply is read from its end (structured replies are a few KB at most)
MAX_DEPTH = 32  # JSON a role asks for nests 3 levels at most
MAX_OBJECTS = 64  # {...} blocks tried before giving up (each failed one costs a lenient re-parse)


class ParseError(ValueError):
    """Model output that could not be read as the expected structure."""


def _loads_lenient(candidate: str) -> Any:
    """JSON, or JSON with trailing commas, single quotes and Python booleans; ``ValueError`` otherwise
    (too deep counts as not JSON)."""
    try:
        return untrusted.loads(candidate, max_depth=MAX_DEPTH)
    except json.JSONDecodeError:
        pass
    repaired = re.sub(r",\s*+([}\]])", r"\1", candidate)  # trailing commas
    repaired = re.sub(r"(?<![\w\"])'([^'\n]*)'(?![\w\"])", r'"\1"', repaired)  # single quotes
    repaired = re.sub(r"\bTrue\b", "true", re.sub(r"\bFalse\b", "false", repaired))
    return untrusted.loads(repaired, max_depth=MAX_DEPTH)


def _tail(text: str) -> str:
    """The part of a reply that is read: all of it, or its end when it is very long (answers come last)."""
    return text if len(text) <= MAX_REPLY_CHARS else text[-MAX_REPLY_CHARS:]


def extract_json(text: str) -> dict:
    """The first JSON object found in ``text`` (fenced blocks first), or ``ParseError``."""
    if not isinstance(text, str) or not text.strip():
        raise ParseError("the reply was empty")
    text = _tail(text)
    candidates = [block for block in _FENCE.findall(text)] + [text]
    tried = 0
    for chunk in candidates:
        for span in untrusted.object_spans(chunk):
            tried += 1
            if tried > MAX_OBJECTS:
                raise ParseError(f"no JSON object was found in the first {MAX_OBJECTS} {{...}} blocks of the reply")
            try:
                value = _loads_lenient(span)
            except (json.JSONDecodeError, ValueError):
                continue
            if isinstance(value, dict):
                return value
    raise ParseError("no JSON object was found in the reply")


def key_values(text: str) -> dict[str, str]:
    """``key: value`` lines as a dict (lower-case keys, spaces as underscores); first occurrence wins."""
    found: dict[str, str] = {}
    for key, value in _KEY_VALUE.findall(_tail(text) if isinstance(text, str) else ""):
        name = key.strip().lower().replace(" ", "_")
        found.setdefault(name, value.strip().removesuffix(",").strip().strip('"'))
    return found


def parse_model(text: str, schema: type[T]) -> T:
    """Read ``schema`` from model text: JSON anywhere in it, else ``key: value`` lines.

    Fields the model left out take the schema's defaults; a field that cannot be coerced is a
    ``ParseError`` naming it.
    """
    try:
        data = extract_json(text)
    except ParseError as json_error:
        data = {k: v for k, v in key_values(text).items() if k in schema.model_fields}
        if not data:
            raise ParseError(f"{json_error}; expected a JSON object with fields "
                             f"{', '.join(schema.model_fields)}") from None
    known = {k: v for k, v in data.items() if k in schema.model_fields}
    try:
        return schema.model_validate(known)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:3])
        raise ParseError(f"the JSON did not fit: {problems}") from None
