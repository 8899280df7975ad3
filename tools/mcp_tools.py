"""MCP servers over stdio as tools, through the ``mcp`` Python SDK (``pip install 'seasoned[mcp]'``).

    server = McpServer("python", ["my_server.py"])     # started on first use, once per event loop
    tools = await server.list_tools()                  # UserTool objects, schema from the server
    await tools[0].call({"a": 2, "b": 3})
    await server.aclose()                              # Agent.aclose() does this for its servers

The SDK's client is a pair of async context managers that must be entered and left by the same task,
so one background task per event loop owns the connection and serves calls from a queue; the server
process lives until ``aclose``. What the server does is the server's business: it is not sandboxed.

What a server *says* about its tools reaches the model's prompt, so it is read as untrusted text: names
(of tools and parameters) keep only letters, digits, ``_`` and ``-`` (64 at most: no newline can start a
fake line of the tool list), descriptions are cut to ``MAX_DESCRIPTION_CHARS``. A renamed tool is
logged; calls still reach the server under its own names. Name collisions with the application's own
tools are settled by the toolbox (``seasoned.graphs.toolbox``): the application's tools win.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from typing import Any

from seasoned.errors import ToolError

from .actions import Param, ToolSpec
from .user_tools import UserTool

_TYPES = {"integer": "integer", "number": "number", "boolean": "boolean"}
MAX_NAME_CHARS = 64
MAX_DESCRIPTION_CHARS = 1_000
MAX_PARAM_DESCRIPTION_CHARS = 200
_NOT_NAME = re.compile(r"[^A-Za-z0-9_-]+")
_log = logging.getLogger(__name__)


def safe_name(raw: Any, fallback: str = "tool") -> str:
    """A server-given name as the model may see it: runs of other characters become ``_``, at most
    ``MAX_NAME_CHARS``, starting with a letter or ``_``."""
    name = _NOT_NAME.sub("_", str(raw)).strip("_") or fallback
    if not (name[0].isalpha() or name[0] == "_"):
        name = f"_{name}"
    return name[:MAX_NAME_CHARS]


def _capped(text: Any, limit: int) -> str:
    text = str(text or "").strip()
    return text if len(text) <= limit else text[:limit] + " ... [cut]"


def _spec(tool: Any) -> tuple[ToolSpec, dict[str, str]]:
    """The tool as the model sees it, and its parameters' server names by the names shown."""
    schema = getattr(tool, "input_schema", None) or getattr(tool, "inputSchema", None) or {}
    schema = schema if isinstance(schema, dict) else {}
    required = set(schema.get("required") or [])
    properties = schema.get("properties")
    params, server_names = [], {}
    for raw, prop in (properties.items() if isinstance(properties, dict) else []):
        prop = prop if isinstance(prop, dict) else {}
        name = safe_name(raw, fallback="arg")
        if name in server_names:  # two server names that read the same once cleaned: keep the first
            continue
        server_names[name] = raw
        params.append(Param(name, _capped(prop.get("description") or prop.get("title"), MAX_PARAM_DESCRIPTION_CHARS),
                            _TYPES.get(prop.get("type"), "string"), required=raw in required))
    name = safe_name(tool.name)
    if name != tool.name:
        _log.warning("MCP tool %r is offered as %r (names keep letters, digits, _ and -, %d at most)",
                     str(tool.name)[:200], name, MAX_NAME_CHARS)
    return ToolSpec(name, _capped(tool.description or name, MAX_DESCRIPTION_CHARS), tuple(params)), server_names


def _reply(result: Any) -> str:
    texts = [getattr(c, "text", None) or str(c) for c in getattr(result, "content", None) or []]
    text = "\n".join(texts)
    if getattr(result, "is_error", False) or getattr(result, "isError", False):
        return f"error: {text}"
    return text


class McpServer:
    """A stdio MCP server: ``command`` and ``args`` start it; ``env`` is added to a minimal environment."""

    def __init__(self, command: str, args: list[str] | None = None, *, env: dict[str, str] | None = None,
                 cwd: str | os.PathLike | None = None, timeout_s: float = 60.0):
        self.command, self.args, self.env, self.cwd, self.timeout_s = command, list(args or []), env, cwd, timeout_s
        self._links: dict[asyncio.AbstractEventLoop, _Link] = {}

    def __repr__(self) -> str:
        return f"McpServer({self.command!r}, {self.args!r})"

    async def _link(self) -> _Link:
        loop = asyncio.get_running_loop()
        link = self._links.get(loop)
        if link is None or link.closed:
            link = self._links[loop] = _Link(self)
            await link.start()
        return link

    async def list_tools(self) -> list[UserTool]:
        """The server's tools, each calling back into this connection."""
        link = await self._link()
        if link.offered is None:  # built once per connection: a renamed tool is logged once
            link.offered = self._offer(link.tools)
        return list(link.offered)

    def _offer(self, listed: list[Any]) -> list[UserTool]:
        tools = []
        for tool in listed:
            spec, server_names = _spec(tool)

            async def run(args: dict, _name: str = tool.name, _names: dict = server_names) -> str:
                args = {_names.get(key, key): value for key, value in args.items()}
                return _reply(await (await self._link()).request("call", _name, args))

            tools.append(UserTool(spec, run))
        return tools

    async def aclose(self) -> None:
        """Stop the server process started on this loop (idempotent)."""
        link = self._links.pop(asyncio.get_running_loop(), None)
        if link is not None:
            await link.close()


class _Link:
    """One connection, owned by one task: requests go in through a queue, replies come back as futures."""

    def __init__(self, server: McpServer):
        self.server = server
        self.queue: asyncio.Queue = asyncio.Queue()
        self.ready: asyncio.Future = asyncio.get_running_loop().create_future()
        self.tools: list[Any] = []
        self.offered: list[UserTool] | None = None
        self.closed = False
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self._serve(), name=f"mcp {self.server.command}")
        try:
            await asyncio.wait_for(asyncio.shield(self.ready), self.server.timeout_s)
        except TimeoutError:
            await self.close()
            raise ToolError(f"MCP server {self.server!r} did not start within {self.server.timeout_s:.0f}s") from None

    async def _serve(self) -> None:
        try:
            from mcp import ClientSession, StdioServerParameters
            from mcp.client.stdio import stdio_client
        except ImportError:
            self._fail(ToolError("MCP servers need the mcp SDK: pip install 'seasoned[mcp]'"))
            return
        params = StdioServerParameters(command=self.server.command, args=self.server.args,
                                       env=self.server.env, cwd=self.server.cwd)
        try:
            with open(os.devnull, "w") as errlog:  # noqa: ASYNC230 - opening /dev/null does not block
                async with stdio_client(params, errlog=errlog) as streams, \
                        ClientSession(streams[0], streams[1]) as session:
                    await session.initialize()
                    self.tools = list((await session.list_tools()).tools)
                    self.ready.set_result(True)
                    while (item := await self.queue.get()) is not None:
                        _, name, args, reply = item
                        try:
                            reply.set_result(await session.call_tool(name, args))
                        except Exception as exc:  # noqa: BLE001 - the server's failure is the tool's reply
                            reply.set_exception(ToolError(f"MCP tool {name!r} failed: {exc}"))
        except Exception as exc:  # noqa: BLE001 - a server that fails to start is reported to its caller
            self._fail(ToolError(f"MCP server {self.server!r} failed: {exc}"))
        finally:
            self.closed = True

    def _fail(self, exc: BaseException) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(exc)

    async def request(self, kind: str, name: str, args: dict) -> Any:
        if self.closed:
            raise ToolError(f"MCP server {self.server!r} is closed")
        reply = asyncio.get_running_loop().create_future()
        await self.queue.put((kind, name, args, reply))
        return await asyncio.wait_for(reply, self.server.timeout_s)

    async def close(self) -> None:
        if self.task is None:
            return
        await self.queue.put(None)
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
            await asyncio.wait_for(self.task, 10)
        self.closed = True


__all__ = ["McpServer"]
