"""Actions: what a tool offers (``ToolSpec``), one chosen action (``Action``), and the two ways a model
names an action: OpenAI/litellm tool calls, or plain text for models without tool calling.

Plain-text format (one action per reply, the last one counts)::

    ```action
    view src/pkg/core.py 10 40
    ```

The first word is the tool name; arguments follow in order (quoted with shell rules), and a tool's
last parameter may be marked ``rest`` to take everything after the earlier ones, newlines included
(shell commands, code, text to type). A JSON object ``{"name": ..., "arguments": {...}}`` works too.
Tools may parse their own body (``edit`` reads SEARCH/REPLACE blocks).
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from seasoned.errors import ToolError
from seasoned.models import untrusted


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    type: str = "string"  # JSON schema type: string | integer | number | boolean
    required: bool = True
    rest: bool = False  # takes the remaining text (only the last parameter)


@dataclass(frozen=True)
class ToolSpec:
    """One action an environment session offers."""

    name: str
    description: str
    params: tuple[Param, ...] = ()
    usage: str = ""  # the plain-text form shown to models without tool calling
    parse_body: Callable[[str], dict] | None = None

    def openai(self) -> dict:
        """The litellm/OpenAI ``tools=[...]`` entry."""
        props = {p.name: {"type": p.type, "description": p.description} for p in self.params}
        required = [p.name for p in self.params if p.required]
        return {"type": "function", "function": {
            "name": self.name, "description": self.description,
            "parameters": {"type": "object", "properties": props, "required": required}}}

    def text_usage(self) -> str:
        if self.usage:
            return self.usage
        args = " ".join(f"<{p.name}>" if p.required else f"[{p.name}]" for p in self.params)
        return f"{self.name} {args}".strip()

    def coerce(self, args: dict) -> dict:
        """Check and convert arguments; raises ``ToolError`` naming what is wrong."""
        known = {p.name: p for p in self.params}
        unknown = set(args) - set(known)
        if unknown:
            raise ToolError(f"{self.name}: unknown argument(s) {', '.join(sorted(unknown))}; "
                            f"usage: {self.text_usage()}")
        out: dict[str, Any] = {}
        for p in self.params:
            if p.name not in args or args[p.name] is None:
                if p.required:
                    raise ToolError(f"{self.name}: missing argument {p.name!r}; usage: {self.text_usage()}")
                continue
            value = args[p.name]
            try:
                if p.type == "integer":
                    value = int(value)
                elif p.type == "number":
                    value = float(value)
                elif p.type == "boolean":
                    value = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
                else:
                    value = value if isinstance(value, str) else json.dumps(value)
            except (TypeError, ValueError, OverflowError):
                raise ToolError(f"{self.name}: argument {p.name!r} must be {p.type}, got {str(value)[:80]!r}") from None
            if isinstance(value, float) and not math.isfinite(value):  # nan passes `x <= 0 or x > 100`
                raise ToolError(f"{self.name}: argument {p.name!r} must be a finite number, got {value!r}")
            out[p.name] = value
        return out


@dataclass
class Action:
    """One action chosen by an agent: a tool name and its arguments."""

    name: str
    args: dict = field(default_factory=dict)
    call_id: str | None = None  # the tool call id, in tool-calling mode

    def render(self) -> str:
        inner = ", ".join(f"{k}={v!r}" if len(repr(v)) < 80 else f"{k}={repr(v)[:77]}...'" for k, v in self.args.items())
        return f"{self.name}({inner})"


_FENCE = re.compile(r"```([A-Za-z0-9_-]*)[ \t]*\n(.*?)```", re.DOTALL)
MAX_ARGUMENT_DEPTH = 32


def _outer_braces(text: str) -> str | None:
    """From the first ``{`` to the last ``}`` (what ``re.search(r"\\{.*\\}", text, re.S)`` finds, in linear
    time: that regex rescans to the end from every ``{`` when no ``}`` follows)."""
    start, end = text.find("{"), text.rfind("}")
    return text[start:end + 1] if start != -1 and end > start else None


def parse_text_action(text: str, tools: list[ToolSpec]) -> Action:
    """The last action in a model's plain-text reply. Raises ``ToolError`` explaining the format."""
    by_name = {t.name: t for t in tools}
    candidates: list[str] = []
    for lang, body in _FENCE.findall(text or ""):
        lang = lang.lower()
        if lang in by_name:  # ```bash\nls\n``` style: the language names the tool
            candidates.append(f"{lang}\n{body}" if by_name[lang].params else lang)
        elif lang in ("sh", "shell", "console") and "bash" in by_name:
            candidates.append(f"bash\n{body}")
        else:
            candidates.append(body)
    for candidate in reversed(candidates):
        action = _parse_one(candidate.strip(), by_name)
        if action is not None:
            return action
    # No fenced action: a JSON object, or a bare line starting with a tool name.
    blob = _outer_braces(text or "")
    if blob:
        action = _parse_json(blob, by_name)
        if action is not None:
            return action
    refused: ToolError | None = None  # a bare line naming a tool with a bad argument ("transfer nan")
    for line in reversed((text or "").strip().splitlines()):
        line = line.strip().strip("`")
        for candidate in (line, line.rpartition(":")[2]):  # "Action: click 4", "Next: add 2"
            try:
                action = _parse_one(candidate.strip(), by_name, strict=True)
            except ToolError as exc:
                refused = refused or exc
                continue
            if action is not None:
                return action
    if refused is not None:
        raise refused
    names = ", ".join(by_name)
    raise ToolError(f"no action found. Reply with exactly one action in a fenced block, e.g.\n```action\n"
                    f"{tools[0].text_usage() if tools else 'submit'}\n```\navailable actions: {names}")


def _parse_json(blob: str, by_name: dict[str, ToolSpec]) -> Action | None:
    try:
        data = untrusted.loads(blob, max_depth=MAX_ARGUMENT_DEPTH)
    except ValueError:  # not JSON, or nested too deep
        return None
    return _action_of(data, by_name)


def _action_of(data: Any, by_name: dict[str, ToolSpec]) -> Action | None:
    """``{"action"|"name"|"tool": ..., "arguments"|"args": {...}}`` as an ``Action`` (None: not that shape)."""
    if not isinstance(data, dict):
        return None
    name = data.get("name") or data.get("tool") or data.get("action")
    args = data.get("arguments", data.get("args", {}))
    if isinstance(args, str):
        try:
            args = untrusted.loads(args, max_depth=MAX_ARGUMENT_DEPTH)
        except ValueError:
            return None
    if isinstance(name, str) and name in by_name and isinstance(args, dict):
        return Action(name, by_name[name].coerce(args))
    return None


def _parse_one(block: str, by_name: dict[str, ToolSpec], strict: bool = False) -> Action | None:
    if not block:
        return None
    if block.startswith("{"):
        return _parse_json(block, by_name)
    head, _, body = block.partition("\n")
    name, _, first = head.strip().partition(" ")
    name = name.strip().rstrip(":")
    if name not in by_name:  # "Bash", "VIEW": case does not matter, unless a tool's name has capitals
        name = name.lower()
    spec = by_name.get(name)
    if spec is None:
        return None
    remainder = (first + ("\n" + body if body else "")).strip("\n")
    if spec.parse_body is not None:
        return Action(name, spec.coerce(spec.parse_body(remainder)))
    args: dict[str, Any] = {}
    params = list(spec.params)
    text = remainder
    for i, p in enumerate(params):
        if p.rest or i == len(params) - 1 and p.type == "string" and not strict:
            value = _unquote(text.strip())
            if value:
                args[p.name] = value
            text = ""
            break
        text = text.lstrip()
        if not text:
            break
        token, text = _next_token(text)
        args[p.name] = token
    if text.strip() and strict:
        return None
    return Action(name, spec.coerce(args))


def _next_token(text: str) -> tuple[str, str]:
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        token = lexer.get_token() or ""
    except ValueError:  # unbalanced quote: take the first word as is
        token, _, rest = text.partition(" ")
        return token, rest
    rest = lexer.instream.read() if hasattr(lexer.instream, "read") else ""
    return token, rest


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'" and value.count(value[0]) == 2:
        return value[1:-1]
    return value


def close_cut_json(text: str, max_chars: int = 200_000, tries: int = 8) -> dict | None:
    """A JSON object cut mid-way (a reply that hit ``max_tokens``), closed where it stopped and parsed: an
    open string value is ended and open arrays and objects are closed; when that does not parse (cut in a
    key, after a colon), the text is cut back to the last complete member instead. None when ``text`` does
    not start an object, is longer than ``max_chars``, or no cut point parses. The last value may be cut
    short (a string, a number); no value is made up."""
    text = (text or "").strip()
    if not text.startswith("{") or len(text) > max_chars:
        return None
    closers: list[str] = []
    cuts: list[tuple[int, str]] = []  # (end of text, its closers): before each comma, after each bracket
    in_string = escaped = False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "{[":
            closers.append("}" if ch == "{" else "]")
            cuts.append((i + 1, "".join(reversed(closers))))
        elif ch in "}]":
            if not closers or closers.pop() != ch:
                return None
            if not closers:
                return _object_or_none(text[:i + 1])
        elif ch == ",":
            cuts.append((i, "".join(reversed(closers))))
    tail = "".join(reversed(closers))
    whole = (text[:-1] if escaped else text) + ('"' if in_string else "")
    for candidate in [whole + tail, *(text[:end] + closing for end, closing in reversed(cuts[-tries:]))]:
        data = _object_or_none(candidate)
        if data is not None:
            return data
    return None


def parse_cut_json_action(text: str, tools: list[ToolSpec]) -> Action | None:
    """The action of a JSON reply cut by ``max_tokens`` (see ``close_cut_json``), or None. Its arguments
    go through the tool's checks like any other; a required argument the cut lost raises ``ToolError``."""
    return _action_of(close_cut_json(text), {t.name: t for t in tools})


def _object_or_none(text: str) -> dict | None:
    try:
        data = untrusted.loads(text, max_depth=MAX_ARGUMENT_DEPTH, allow_nan=False)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def parse_tool_call(call: Any, tools: list[ToolSpec]) -> Action:
    """An OpenAI-style tool call dict -> ``Action``.

    The call is model output: any shape (not a dict, a list for a name, arguments that are a JSON array,
    JSON nested thousands deep) raises ``ToolError`` naming the problem, never anything else."""
    by_name = {t.name: t for t in tools}
    if not isinstance(call, dict):
        raise ToolError(f"a tool call must be an object, got {type(call).__name__}")
    function = call.get("function") or {}
    if not isinstance(function, dict):
        raise ToolError(f"a tool call's 'function' must be an object, got {type(function).__name__}")
    name = function.get("name") or call.get("name")
    if not isinstance(name, str) or name not in by_name:
        shown = name if isinstance(name, str) else type(name).__name__
        raise ToolError(f"unknown tool {shown!r}; available: {', '.join(by_name)}")
    raw = function.get("arguments", call.get("arguments")) or "{}"
    args = _tool_arguments(name, raw)
    call_id = call.get("id")
    return Action(name, by_name[name].coerce(args), call_id=call_id if isinstance(call_id, str) else None)


def _tool_arguments(name: str, raw: Any) -> dict:
    """A tool call's arguments (a JSON object, as text or already parsed) as a dict, or ``ToolError``."""
    if isinstance(raw, str):
        try:
            raw = untrusted.loads(raw, max_depth=MAX_ARGUMENT_DEPTH, allow_nan=False)
        except ValueError as exc:  # not JSON, too deep, too long
            raise ToolError(f"{name}: arguments are not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(raw, dict):
        raise ToolError(f"{name}: arguments must be a JSON object, got {type(raw).__name__}")
    if any(not isinstance(key, str) for key in raw):
        raise ToolError(f"{name}: argument names must be strings")
    try:  # already-parsed arguments from a provider: the same depth limit, no lone surrogates
        untrusted.check_tree(raw, path=f"{name} arguments", max_depth=MAX_ARGUMENT_DEPTH, int_range=None)
    except untrusted.UntrustedInputError as exc:
        raise ToolError(str(exc)) from None
    return raw


# Each marker starts only at the first character of a run (look-behind) and takes the run whole
# (possessive), so a line of 20,000 '=' is read once, not once per position.
_SEARCH = re.compile(r"(?<!<)<{5,}+\s*SEARCH\s*\n")
_DIVIDER = re.compile(r"\n?(?<!=)={5,}+\s*\n")
_REPLACE = re.compile(r"\n?(?<!>)>{5,}+\s*REPLACE")


def parse_edit_body(body: str) -> dict:
    """``<path>`` then a SEARCH/REPLACE block -> ``{"path", "old", "new"}``.

    Three linear searches rather than one regex with two lazy groups: that regex rescanned to the end
    from every ``=======`` line when no REPLACE followed (4,000 such lines took 29 s)."""
    path, _, rest = body.partition("\n")
    block = _search_replace(rest)
    if not path.strip() or block is None:
        raise ToolError("edit: expected `edit <path>` then a block\n<<<<<<< SEARCH\nold lines\n=======\n"
                        "new lines\n>>>>>>> REPLACE")
    return {"path": path.strip(), "old": block[0], "new": block[1]}


def _search_replace(text: str) -> tuple[str, str] | None:
    """(old, new) of the first SEARCH block: old ends at the first divider that a REPLACE follows."""
    search = _SEARCH.search(text)
    divider = _DIVIDER.search(text, search.end()) if search else None
    # No REPLACE after the first divider means none after any later one either.
    replace = _REPLACE.search(text, divider.end()) if divider else None
    if replace is None:
        return None
    return text[search.end():divider.start()], text[divider.end():replace.start()]
