"""The application's own tools: plain Python callables (sync or async) offered to the model as actions.

    def lookup(city: str, year: int = 2024) -> str:
        '''Population of a city.

        Args:
            city: the city's name
            year: which census
        '''
    tool = user_tool(lookup)          # name, description and parameter schema from the signature/docstring
    await tool.call({"city": "Oslo"})  # arguments checked and converted first; the reply as text

A callable is the application's own trusted code: it runs in-process. What a model writes as *code*
runs only in the sandbox: ``python_tool()`` executes a snippet in a fresh ``Sandbox`` workspace.
MCP servers (``seasoned.tools.mcp_tools.McpServer``) give tools of the same shape.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import tempfile
import types
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from seasoned.errors import ToolError
from seasoned.models import untrusted

from .actions import Param, ToolSpec
from .limits import Limits

MAX_REPLY_CHARS = 20_000
_JSON_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class UserTool:
    """A tool: what the model is told (``spec``) and the coroutine that does it (``run``)."""

    spec: ToolSpec
    run: Callable[[dict], Awaitable[Any]]

    @property
    def name(self) -> str:
        return self.spec.name

    async def call(self, args: dict) -> str:
        """Check the arguments against the schema, run the tool, return its reply as text."""
        reply = await self.run(self.spec.coerce(args or {}))
        return _as_text(reply)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, default=str)
        except (TypeError, ValueError):
            text = str(value)
    return text if len(text) <= MAX_REPLY_CHARS else text[:MAX_REPLY_CHARS] + " ... [cut]"


def _json_type(annotation: Any) -> str:
    """The JSON schema type of an annotation; Optional[X] is X; anything else travels as JSON text."""
    if annotation in _JSON_TYPES:
        return _JSON_TYPES[annotation]
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return "string"
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if len(args) == 1 and args[0] in _JSON_TYPES:
        return _JSON_TYPES[args[0]]
    return "string"


def _structured(annotation: Any) -> bool:
    """Lists, dicts, models...: sent by the model as JSON text and decoded before the call."""
    return _json_type(annotation) == "string" and annotation not in (str, str | None, Any)


def _docstring(fn: Callable) -> tuple[str, dict[str, str]]:
    """The summary (text before the first section) and per-parameter descriptions (Google ``Args:``
    sections or reST ``:param name:`` lines)."""
    doc = inspect.getdoc(fn) or ""
    params: dict[str, str] = {}
    for name, text in re.findall(r":param\s+(\w+):\s*(.+)", doc):
        params[name] = text.strip()
    section = re.search(r"^(?:Args|Arguments|Parameters):\s*\n((?:[ \t]+.+\n?)+)", doc, re.MULTILINE)
    if section:
        for name, text in re.findall(r"^[ \t]+(\w+)(?:\s*\([^)]*\))?:\s*(.+)$", section.group(1), re.MULTILINE):
            params.setdefault(name, text.strip())
    summary = re.split(r"\n\s*\n|^(?:Args|Arguments|Parameters|Returns):|^:param", doc, maxsplit=1, flags=re.MULTILINE)[0]
    return " ".join(summary.split()), params


def user_tool(fn: Callable, *, name: str | None = None, description: str | None = None) -> UserTool:
    """A tool from a plain Python function (sync functions run in a worker thread)."""
    if isinstance(fn, UserTool):
        return fn
    if not callable(fn):
        raise ToolError(f"a tool must be a callable or an MCP server, not {type(fn).__name__}")
    name = name or getattr(fn, "__name__", "")
    if not _NAME.match(name):
        raise ToolError(f"tool name {name!r} must be a letter or _ then letters, digits, _ or - (64 at most)")
    summary, described = _docstring(fn)
    signature = inspect.signature(fn)
    hints = typing.get_type_hints(fn) if not inspect.isclass(fn) else {}
    params = []
    for p in signature.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        params.append(Param(p.name, described.get(p.name, ""), _json_type(hints.get(p.name, str)),
                            required=p.default is inspect.Parameter.empty))
    if len(params) == 1 and params[0].type == "string":  # plain text: `lookup Oslo and Bergen`
        params[0] = Param(params[0].name, params[0].description, "string", params[0].required, rest=True)
    structured = {p.name for p in params if _structured(hints.get(p.name, str))}

    async def run(args: dict) -> Any:
        for key in structured & set(args):  # lists, dicts, models: the model sends JSON text
            try:
                args[key] = untrusted.loads(args[key], allow_nan=False)
            except untrusted.UntrustedInputError as exc:  # NaN/Infinity inside, or nested too deep
                raise ToolError(f"{name}: argument {key!r}: {exc}") from None
            except (TypeError, ValueError):
                pass
        if inspect.iscoroutinefunction(fn):
            return await fn(**args)
        result = await asyncio.to_thread(fn, **args)
        return await result if inspect.isawaitable(result) else result

    return UserTool(ToolSpec(name, description or summary or name, tuple(params)), run)


def python_tool(limits: Limits | None = None, name: str = "python") -> UserTool:
    """Runs model-written Python in the sandbox (a fresh workspace per call, no network): the only way
    code from a model is executed."""

    async def run(args: dict) -> str:
        from .diskcap import scratch_root
        from .sandbox import Sandbox

        def execute() -> str:
            with tempfile.TemporaryDirectory(prefix="seasoned-tool-", dir=scratch_root()) as workspace:  # capped
                box = Sandbox(workspace, limits or Limits(time_s=10, memory_mb=512))
                try:
                    return box.run_python(args["code"]).render()
                finally:
                    box.cleanup()

        return await asyncio.to_thread(execute)

    spec = ToolSpec(name, "Run a Python snippet in an isolated sandbox; prints its exit code and output.",
                    (Param("code", "the Python source to run", rest=True),))
    return UserTool(spec, run)


def as_tools(items: list[Any] | None) -> list[Any]:
    """Callables become ``UserTool``; ``UserTool`` and MCP servers (anything with ``list_tools``) pass."""
    out = []
    for item in items or []:
        out.append(item if isinstance(item, UserTool) or hasattr(item, "list_tools") else user_tool(item))
    names = [t.name for t in out if isinstance(t, UserTool)]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ToolError(f"two tools share the name(s) {', '.join(duplicated)}")
    return out


__all__ = ["UserTool", "as_tools", "python_tool", "user_tool"]
