"""``response_format`` as a llama.cpp grammar (GBNF), for providers that constrain decoding themselves.

    grammar_of({"type": "json_object"})                                          # any JSON object
    grammar_of({"type": "json_schema", "json_schema": {"name": "plan", "schema": {...}}})  # that schema
    grammar_of(None) / grammar_of({"type": "text"})                               # None: no constraint

A pydantic model class is taken as its JSON schema. Schemas are converted once (llama-cpp-python's
``json_schema_to_gbnf``) and cached. A malformed ``response_format`` raises ``ModelConfigError`` naming the
field. What the grammar guarantees: the reply parses as JSON with the schema's properties, types, enums,
required keys, string lengths and integer ranges of up to 256 values, unless ``max_tokens`` cut it
(``finish_reason == "length"``): give structured calls room, or bound strings with ``maxLength``. Wider numeric
bounds and formats the converter does not know are not enforced: validate the parsed value as usual.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from seasoned.errors import ModelConfigError

from .untrusted import json_depth

MAX_SCHEMA_CHARS = 100_000
MAX_SCHEMA_DEPTH = 32
MAX_ENUM_RANGE = 256  # integer ranges up to this size are enforced (as an enum)
FORMATS = ("text", "json_object", "json_schema")


def normalize(response_format: Any) -> dict | None:
    """``response_format`` as an OpenAI dict (a pydantic class becomes a ``json_schema``), None for plain text."""
    if response_format is None:
        return None
    if isinstance(response_format, type) and hasattr(response_format, "model_json_schema"):
        return {"type": "json_schema",
                "json_schema": {"name": response_format.__name__, "schema": response_format.model_json_schema()}}
    if not isinstance(response_format, dict):
        raise ModelConfigError(f"response_format: expected a dict such as {{'type': 'json_object'}} or a pydantic "
                               f"model class, got {type(response_format).__name__}")
    kind = response_format.get("type")
    if kind not in FORMATS:
        raise ModelConfigError(f"response_format.type: expected one of {', '.join(FORMATS)}, got {kind!r}")
    return None if kind == "text" else response_format


def schema_of(response_format: dict) -> dict | None:
    """The JSON schema a normalized ``response_format`` asks for (None: any JSON object)."""
    if response_format["type"] == "json_object":
        schema = response_format.get("schema")  # llama-cpp-python's extension: json_object with a schema
    else:
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise ModelConfigError("response_format.json_schema.schema: expected a JSON schema object "
                                   "({'json_schema': {'name': ..., 'schema': {...}}})")
        schema = spec["schema"]
    if schema is not None and not isinstance(schema, dict):
        raise ModelConfigError("response_format.schema: expected a JSON schema object")
    return schema


def grammar_of(response_format: Any) -> str | None:
    """The GBNF grammar that constrains a reply to ``response_format`` (None when it asks for plain text)."""
    wanted = normalize(response_format)
    if wanted is None:
        return None
    schema = schema_of(wanted)
    if schema is None:
        return _json_object_grammar()
    try:
        text = json.dumps(_bounded_integers_as_enums(schema))  # property order kept: the reply follows it
    except (TypeError, ValueError) as exc:
        raise ModelConfigError(f"response_format: the schema is not JSON ({exc})") from None
    if len(text) > MAX_SCHEMA_CHARS or json_depth(text, stop_above=MAX_SCHEMA_DEPTH) > MAX_SCHEMA_DEPTH:
        raise ModelConfigError(f"response_format: the schema is too large (at most {MAX_SCHEMA_CHARS:,} characters "
                               f"and {MAX_SCHEMA_DEPTH} levels deep)")
    return _schema_grammar(text)


def _bounded_integers_as_enums(node: Any, depth: int = 0) -> Any:
    """The schema with each small integer range (``minimum``..``maximum``) written as an ``enum``: the grammar
    converter ignores numeric bounds, but it enforces enums. Larger ranges stay unenforced by the grammar."""
    if depth > MAX_SCHEMA_DEPTH:
        return node
    if isinstance(node, list):
        return [_bounded_integers_as_enums(item, depth + 1) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _bounded_integers_as_enums(value, depth + 1) for key, value in node.items()}
    low, high = node.get("minimum"), node.get("maximum")
    if (node.get("type") == "integer" and "enum" not in node and isinstance(low, int) and isinstance(high, int)
            and 0 <= high - low < MAX_ENUM_RANGE):
        node = {key: value for key, value in node.items() if key not in ("type", "minimum", "maximum")}
        node["enum"] = list(range(low, high + 1))
    return node


@functools.lru_cache(maxsize=1)
def _json_object_grammar() -> str:
    from llama_cpp.llama_grammar import JSON_GBNF

    return JSON_GBNF


@functools.lru_cache(maxsize=128)
def _schema_grammar(schema_json: str) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        grammar = json_schema_to_gbnf(schema_json)
    except RecursionError:
        raise ModelConfigError("response_format: the schema refers to itself too deeply") from None
    except Exception as exc:  # noqa: BLE001 - the converter raises several types for what it cannot express
        raise ModelConfigError(f"response_format: this JSON schema cannot be turned into a grammar ({exc})") from None
    # The converter lets a string hold raw control characters, which JSON forbids: a small model then runs on
    # past a newline inside a string until max_tokens cuts the reply (1 turn in 40 on the tools example).
    return grammar.replace(_LOOSE_CHAR, _JSON_CHAR)


_LOOSE_CHAR = 'char ::= [^"\\\\] |'
_JSON_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'
