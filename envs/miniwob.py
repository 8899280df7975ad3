"""``miniwob``: the MiniWoB++ web tasks shipped by the PyPI package ``miniwob``, served on 127.0.0.1 and
driven in headless Chromium. Observation = the task's instruction + a compact text of the page with element
refs; actions click / type / press / select; reward = the task's own script (``WOB_RAW_REWARD_GLOBAL``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from seasoned.errors import EnvError, ToolError
from seasoned.tools.actions import Action, Param, ToolSpec
from seasoned.tools.browser import BrowserPage, StaticServer, launch_chromium

from .base import Environment, Observation, Session, Task, Verdict

# Tasks that can be done with element-level actions come first in the default order.
PREFERRED = ["click-button", "click-link", "enter-text", "focus-text", "click-dialog", "click-checkboxes",
             "click-option", "enter-password", "login-user", "choose-list", "click-tab", "click-widget",
             "enter-text-2", "use-autocomplete", "click-button-sequence", "click-collapsible", "email-inbox",
             "search-engine", "navigate-tree", "social-media"]

TOOLS = [
    ToolSpec("click", "Click the element with this ref.", (Param("ref", "element ref, e.g. 4"),), usage="click <ref>"),
    ToolSpec("type", "Click the element with this ref, then type text into it.",
             (Param("ref", "element ref"), Param("text", "text to type", rest=True)), usage="type <ref> <text>"),
    ToolSpec("press", "Press a key (Enter, Tab, ArrowDown, Control+A, ...).", (Param("key", "key name"),),
             usage="press <key>"),
    ToolSpec("select", "Choose an option of a <select> element by its text.",
             (Param("ref", "element ref"), Param("option", "option text", rest=True)), usage="select <ref> <option>"),
]


def _html_root() -> Path:
    try:
        import miniwob
    except ImportError:
        raise EnvError("environment 'miniwob' needs the PyPI package miniwob (pip install miniwob)") from None
    return Path(miniwob.__file__).resolve().parent / "html"


class MiniWoBEnv(Environment):
    name = "miniwob"
    description = "MiniWoB++ web tasks (PyPI miniwob) in headless Chromium via Playwright; reward from the page."
    interactive = True

    def __init__(self, episode_seconds: float = 3600.0, settle_ms: int = 150):
        self.root = _html_root()
        names = sorted(p.stem for p in (self.root / "miniwob").glob("*.html"))
        self.names = [n for n in PREFERRED if n in names] + [n for n in names if n not in PREFERRED]
        self.episode_seconds = episode_seconds
        self.settle_ms = settle_ms
        self._server: StaticServer | None = None

    def _make(self, name: str, seed: int) -> Task:
        return Task(f"miniwob-{name}" + (f"-s{seed}" if seed else ""), self.name,
                    f"Complete the web task '{name}' on the page shown, following its instruction.",
                    metadata={"page": name, "seed": seed})

    def tasks(self, n=None, seed=0, difficulty=None) -> list[Task]:
        return [self._make(name, seed) for name in self.names[: n if n is not None else len(self.names)]]

    def get_task(self, task_id: str) -> Task:
        rest = task_id.removeprefix("miniwob-")
        name, seed = rest, 0
        if "-s" in rest and rest.rsplit("-s", 1)[1].isdigit():
            name, seed_text = rest.rsplit("-s", 1)
            seed = int(seed_text)
        if name not in self.names:
            raise self.unknown_task(task_id, [f"miniwob-{n}" for n in self.names])
        return self._make(name, seed)

    def server(self) -> StaticServer:
        if self._server is None:
            self._server = StaticServer(self.root)
        return self._server

    async def verify(self, task: Task, answer: str) -> Verdict:
        raise EnvError("miniwob is judged by the page itself: open(task), act, then session.verify()")

    async def open(self, task: Task) -> "MiniWoBSession":
        session = MiniWoBSession(self, task)
        try:
            await session.start()
        except BaseException:
            await session.aclose()
            raise
        return session

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None


class MiniWoBSession(Session):
    def __init__(self, env: MiniWoBEnv, task: Task):
        self.env, self.task = env, task
        self.tools = list(TOOLS)
        self.playwright = self.browser = self.page = None
        self._last = Observation("")
        self.history: list[str] = []

    async def start(self) -> None:
        self.playwright, self.browser = await launch_chromium()
        page = await self.browser.new_page(viewport={"width": 500, "height": 400})
        url = f"{self.env.server().url}/miniwob/{self.task.metadata['page']}.html"
        await page.goto(url, wait_until="load")
        await page.wait_for_function("typeof core !== 'undefined' && typeof genProblem === 'function'")
        await page.evaluate(f"Math.seedrandom({self.task.metadata['seed']!r}); "
                            f"core.EPISODE_MAX_TIME = {int(self.env.episode_seconds * 1000)}; core.startEpisodeReal();")
        await page.wait_for_function("WOB_TASK_READY === true", timeout=10000)
        self.page = BrowserPage(page)
        self._last = await self._observe("episode started")

    async def _state(self) -> dict:
        return await self.page.page.evaluate(
            "() => ({done: WOB_DONE_GLOBAL, reward: WOB_REWARD_GLOBAL, raw: WOB_RAW_REWARD_GLOBAL, "
            "reason: WOB_REWARD_REASON, episode: WOB_EPISODE_ID})")

    async def _observe(self, result: str) -> Observation:
        state = await self._state()
        if state["episode"] > 0:  # the task's script ended the episode (the next one is not started)
            reward = max(float(state["raw"]), 0.0)
            return Observation(f"{result}\nThe episode is over (reward {state['raw']}).", done=True,
                               reward=reward, info=state)
        utterance, page_text = await self.page.snapshot()
        return Observation(f"{result}\nInstruction: {utterance}\nPage elements:\n{page_text}", info=state)

    def observation(self) -> Observation:
        return self._last

    async def step(self, action: Action) -> Observation:
        if self._last.done:
            return self._last
        try:
            method = {"click": self.page.click, "type": self.page.type, "press": self.page.press,
                      "select": self.page.select}.get(action.name)
            if method is None:
                raise ToolError(f"unknown action {action.name!r}; available: click, type, press, select")
            result = await method(*action.args.values())
            await asyncio.sleep(self.env.settle_ms / 1000)
        except ToolError as exc:
            result = f"error: {exc}"
        self.history.append(f"{action.render()} -> {result}")
        self._last = await self._observe(result)
        return self._last

    async def verify(self) -> Verdict:
        state = await self._state()
        done = bool(state["done"]) or state["episode"] > 0
        raw = float(state["raw"]) if done else 0.0
        passed = done and raw > 0
        return Verdict(max(raw, 0.0), passed, {"done": done, "raw_reward": state["raw"],
                                                "time_adjusted_reward": state["reward"],
                                                "reason": state["reason"], "actions": len(self.history)})

    def answer(self) -> str:
        return "\n".join(self.history)

    async def aclose(self) -> None:
        for closer in (self.browser.close if self.browser else None,
                       self.playwright.stop if self.playwright else None):
            if closer is not None:
                try:
                    await closer()
                except Exception:
                    pass
        self.browser = self.playwright = None

    def close(self) -> None:
        """Close the browser (scheduled on the running loop when called from async code)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(self.aclose())
            return
        loop.create_task(self.aclose())

    async def __aexit__(self, *exc) -> None:
        await self.aclose()
