"""MiniWoB++ in the real headless browser: tasks solved by scripted actions, reward from the page."""

import re

import pytest

from seasoned.envs import Action, EnvError, get_env
from seasoned.tools.browser import chromium_path

pytestmark = pytest.mark.browser
needs_chromium = pytest.mark.skipif(chromium_path() is None,
                                    reason="Debian's chromium is not installed (scripts/install-system-deps.sh)")


def test_task_listing_and_unknown_id():
    env = get_env("miniwob")
    tasks = env.tasks(n=3)
    assert [t.id for t in tasks] == ["miniwob-click-button", "miniwob-click-link", "miniwob-enter-text"]
    assert len(env.tasks()) > 100
    assert env.get_task("miniwob-click-button-s7").metadata == {"page": "click-button", "seed": 7}
    with pytest.raises(EnvError, match="has no task"):
        env.get_task("miniwob-not-a-task")


def _ref(text, pattern):
    match = re.search(pattern, text)
    assert match, text
    return match.group(1)


@needs_chromium
async def test_scripted_actions_solve_tasks_and_wrong_ones_fail():
    env = get_env("miniwob")
    try:
        async with await env.open(env.get_task("miniwob-enter-text")) as session:
            page = session.observation().text
            word = _ref(page, r'Enter "(.*?)" into')
            await session.step(Action("type", {"ref": _ref(page, r"\[(\d+)\] input_text"), "text": word}))
            result = await session.step(Action("click", {"ref": _ref(page, r'\[(\d+)\] button[^\n]*"Submit"')}))
            assert result.done
            verdict = await session.verify()
            assert verdict.passed and verdict.reward == 1.0

        async with await env.open(env.get_task("miniwob-click-button-s5")) as session:
            page = session.observation().text
            target = _ref(page, r'Click on the "(.*?)" button')
            wrong = [ref for ref, label in re.findall(r'\[(\d+)\] button "(.*?)"', page) if label != target]
            result = await session.step(Action("click", {"ref": wrong[0]}))
            assert result.done and not (await session.verify()).passed

        async with await env.open(env.get_task("miniwob-click-button-s2")) as session:
            bad = await session.step(Action("click", {"ref": "999"}))
            assert "no element with ref" in bad.text and not bad.done
            assert not (await session.verify()).passed
    finally:
        env.close()
