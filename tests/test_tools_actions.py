"""Plain-text and tool-call action parsing."""

import pytest

from seasoned.envs.miniwob import TOOLS as WEB_TOOLS
from seasoned.envs.swe.env import TOOLS as SWE_TOOLS
from seasoned.tools import ToolError, parse_text_action, parse_tool_call


def test_fenced_action_with_rest_argument():
    action = parse_text_action("I will look.\n```action\nbash grep -rn 'def merge' .\n```", SWE_TOOLS)
    assert action.name == "bash" and action.args == {"command": "grep -rn 'def merge' ."}


def test_language_tag_names_the_tool_and_last_action_wins():
    text = "```bash\nls\n```\nthen\n```bash\npython -m pytest -q\n```"
    assert parse_text_action(text, SWE_TOOLS).args == {"command": "python -m pytest -q"}


def test_optional_integer_arguments():
    action = parse_text_action("```action\nview pkg/core.py 10 20\n```", SWE_TOOLS)
    assert action.args == {"path": "pkg/core.py", "start": 10, "end": 20}


def test_search_replace_edit():
    text = ("```action\nedit pkg/core.py\n<<<<<<< SEARCH\n    return a\n=======\n    return max(a, b)\n"
            ">>>>>>> REPLACE\n```")
    action = parse_text_action(text, SWE_TOOLS)
    assert action.args == {"path": "pkg/core.py", "old": "    return a", "new": "    return max(a, b)"}


def test_json_and_bare_line_actions():
    assert parse_text_action('{"name": "click", "arguments": {"ref": "5"}}', WEB_TOOLS).args == {"ref": "5"}
    action = parse_text_action("The button is ref 7.\ntype 7 hello world", WEB_TOOLS)
    assert action.name == "type" and action.args == {"ref": "7", "text": "hello world"}
    assert parse_text_action("Action: submit", SWE_TOOLS).name == "submit"


def test_no_action_explains_the_format():
    with pytest.raises(ToolError, match="no action found"):
        parse_text_action("I think the answer is in the file.", SWE_TOOLS)


def test_tool_call_format():
    call = {"id": "c1", "type": "function", "function": {"name": "view", "arguments": '{"path": "a.py", "start": 3}'}}
    action = parse_tool_call(call, SWE_TOOLS)
    assert action.name == "view" and action.args == {"path": "a.py", "start": 3} and action.call_id == "c1"
    with pytest.raises(ToolError, match="unknown tool"):
        parse_tool_call({"function": {"name": "rm", "arguments": "{}"}}, SWE_TOOLS)
    with pytest.raises(ToolError, match="missing argument"):
        parse_tool_call({"function": {"name": "view", "arguments": "{}"}}, SWE_TOOLS)


def test_openai_schema():
    schema = SWE_TOOLS[1].openai()
    assert schema["function"]["name"] == "view"
    assert schema["function"]["parameters"]["required"] == ["path"]
