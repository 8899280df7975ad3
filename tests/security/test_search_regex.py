"""Issue 22 row 7: the swe ``search`` tool with a catastrophic regular expression ran on the host in the
event loop (22 characters blocked it 1.5 s, 2.3x more per character). Now the match is time-capped and the
search runs off the loop."""

import asyncio

import pytest
from seasoned.envs import Action
from seasoned.envs.swe import SWEEnv
from seasoned.tools import FileTools, ToolError

CATASTROPHIC = r"^(a|a)+$"  # exponential backtracking in re and in regex alike on a line of a's and a 'b'


@pytest.mark.timeout(120)  # without a cap this search does not end in a lifetime
def test_a_catastrophic_pattern_stops_and_says_so(tmp_path):
    (tmp_path / "data.txt").write_text("match me\n" + "a" * 60 + "b\n")
    found = FileTools(tmp_path).search(CATASTROPHIC + "|match", seconds=0.2)
    assert "data.txt:1: match me" in found  # hits before the stop are kept
    assert "search stopped after 0.2 s" in found and "data.txt:2" in found


def test_patterns_keep_working_and_bad_ones_are_clear_errors(tmp_path):
    (tmp_path / "m.py").write_text("def f(x):\n    return x\n")
    assert FileTools(tmp_path).search(r"def \w+\(") == "m.py:1: def f(x):"
    with pytest.raises(ToolError, match="bad regular expression"):
        FileTools(tmp_path).search("(unclosed")
    with pytest.raises(ToolError, match="longer than"):
        FileTools(tmp_path).search("a" * 5000)


@pytest.mark.timeout(300)
async def test_the_swe_search_action_does_not_block_the_event_loop():
    env = SWEEnv()
    session = await env.open(env.get_task("seasoned-fixtures__tinysemver-1"))
    try:
        (session.worktree / "big.txt").write_text(("a" * 60 + "b\n") * 5)
        search = asyncio.create_task(session.step(Action("search", {"pattern": CATASTROPHIC})))
        await asyncio.sleep(0.05)  # the loop turns while the search runs in a thread
        assert not search.done()
        observation = await search
        assert "search stopped" in observation.text
    finally:
        session.close()
