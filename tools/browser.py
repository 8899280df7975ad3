"""Browser actions for web tasks: a quiet localhost static server and a headless Chromium page driven by
Playwright (Debian's chromium through ``executable_path``; no browser download).

``BrowserPage`` offers the actions ``click(ref)``, ``type(ref, text)``, ``press(key)``, ``select(ref, option)``
on elements named by refs that ``snapshot`` assigns (MiniWoB's ``core.getDOMInfo`` refs on MiniWoB pages)."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

from seasoned.errors import ToolError
from seasoned.settings import settings

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    """Debian's chromium (or ``SEASONED_CHROMIUM``), None when missing."""
    for candidate in (settings().chromium, "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


class StaticServer:
    """Serves a directory on 127.0.0.1 (random free port) from a background thread."""

    def __init__(self, root: str | os.PathLike):
        self.root = str(root)
        handler = functools.partial(_QuietHandler, directory=self.root)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


async def launch_chromium():
    """(playwright, browser): headless Debian chromium, or ``ToolError`` saying what is missing."""
    path = chromium_path()
    if path is None:
        raise ToolError("chromium not found: install Debian's chromium (apt-get install chromium) "
                        "or set SEASONED_CHROMIUM to a Chromium binary")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        raise ToolError("the browser tools need playwright (pip install playwright)") from None
    playwright = await async_playwright().start()
    try:
        browser = await playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
    except Exception:
        await playwright.stop()
        raise
    return playwright, browser


# Renders MiniWoB's DOM info as compact lines: "[ref] tag #id .class "text" value=..."
_SNAPSHOT_JS = """
() => {
  const root = core.getDOMInfo();
  const lines = []; const rects = {};
  const interactive = /^(BUTTON|A|INPUT|TEXTAREA|SELECT|LABEL|OPTION|LI|SPAN|TD|T|DIV|P|H\\d)/;
  function walk(node, depth) {
    rects[node.ref] = [node.left + node.width / 2, node.top + node.height / 2];
    const tag = node.tag.toLowerCase();
    let line = '[' + node.ref + '] ' + tag;
    if (node.id) line += ' #' + node.id;
    if (node.classes && typeof node.classes === 'string') line += ' .' + node.classes.trim().split(/\\s+/).join('.');
    if (node.text) line += ' "' + node.text.slice(0, 120) + '"';
    if (node.value !== undefined && node.value !== '') line += ' value=' + JSON.stringify(node.value);
    if (node.focused) line += ' (focused)';
    const el = core.previousDOMInfo[node.ref];
    if (el && el.tagName === 'SELECT') {
      line += ' options=' + JSON.stringify(Array.from(el.options).map(o => o.text));
    }
    const shown = node.text || node.value !== undefined || /^(BUTTON|A|INPUT|TEXTAREA|SELECT)/.test(node.tag);
    if (shown && depth >= 0) lines.push('  '.repeat(Math.min(depth, 6)) + line);
    (node.children || []).forEach(c => walk(c, depth + (shown ? 1 : 0)));
  }
  (root.children || []).forEach(c => walk(c, 0));
  return {utterance: core.getUtterance(), lines: lines, rects: rects};
}
"""


class BrowserPage:
    """Actions on one MiniWoB page by element ref."""

    def __init__(self, page):
        self.page = page
        self.rects: dict[str, list[float]] = {}

    async def snapshot(self) -> tuple[str, str]:
        """(instruction, compact page text); refreshes the refs."""
        data = await self.page.evaluate(_SNAPSHOT_JS)
        self.rects = {str(k): v for k, v in data["rects"].items()}
        return data["utterance"], "\n".join(data["lines"]) or "(no visible elements)"

    def _point(self, ref) -> list[float]:
        key = str(ref).strip().lstrip("[").rstrip("]").lstrip("e")
        if key not in self.rects:
            raise ToolError(f"no element with ref {ref!r} on the page (use a ref from the latest observation)")
        return self.rects[key]

    async def _element(self, ref):
        self._point(ref)
        handle = await self.page.evaluate_handle("r => core.previousDOMInfo[r] || null", int(str(ref).strip("[]e")))
        element = handle.as_element()
        if element is None:
            raise ToolError(f"ref {ref!r} is not an element that can take this action")
        return element

    async def click(self, ref) -> str:
        x, y = self._point(ref)
        await self.page.mouse.click(x, y)
        return f"clicked [{ref}]"

    async def type(self, ref, text: str) -> str:
        await self.click(ref)
        await self.page.keyboard.type(text)
        return f"typed {text!r} into [{ref}]"

    async def press(self, key: str) -> str:
        try:
            await self.page.keyboard.press(key)
        except Exception as exc:
            raise ToolError(f"press: unknown key {key!r} (e.g. Enter, Tab, ArrowDown, Control+A): {exc}") from None
        return f"pressed {key}"

    async def select(self, ref, option: str) -> str:
        element = await self._element(ref)
        try:
            chosen = await element.select_option(label=option, timeout=2000)
        except Exception:
            try:
                chosen = await element.select_option(value=option, timeout=2000)
            except Exception as exc:
                raise ToolError(f"select: [{ref}] has no option {option!r} ({str(exc).splitlines()[0]})") from None
        return f"selected {chosen} in [{ref}]"
