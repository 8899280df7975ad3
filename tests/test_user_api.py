"""The embedding API: Agent(model, api_base, api_key, system_prompt, tools, checker) needs no guessing."""

import json
import sys
import textwrap

import pytest
from seasoned.envs.base import Verdict
from seasoned.graphs import Agent
from seasoned.graphs.checking import CheckerError, as_checker
from seasoned.models import Gateway, SeasonedError, scripted
from seasoned.errors import ToolError
from seasoned.tools.user_tools import as_tools, python_tool, user_tool


def agent(model: str, tmp_path, **kwargs) -> Agent:
    kwargs.setdefault("strategy", "adaptive-3")
    return Agent(f"scripted/{model}", db_url=f"sqlite:///{tmp_path}/runs.db", checkpoint=False, **kwargs)


@pytest.mark.parametrize("checker", [
    lambda text: "5" in text,                                  # sync bool
    lambda text: 1.0 if "5" in text else 0.0,                  # sync float
    lambda text: Verdict(1.0 if "5" in text else 0.0, "5" in text, "checked"),
])
def test_sync_checkers_returning_bool_float_or_verdict(tmp_path, checker):
    scripted.register("chk", replies=["Answer: 4", "Answer: 5"])
    result = agent("chk", tmp_path, checker=checker).run("2 + 3?")
    assert result.verified and result.answer == "5" and result.verified_by.startswith("env")
    assert [c["answer"] for c in result.candidates if c["status"] == "ok"] == ["4", "5"]  # first waves: 1, 2


def test_async_checker_and_per_run_checker_override(tmp_path):
    async def five(text: str) -> bool:
        return "5" in text

    scripted.register("chk-async", fn=lambda m, p: "Answer: 5")
    bot = agent("chk-async", tmp_path, checker=lambda text: False)
    assert not bot.run("2 + 3?").verified
    assert bot.run("2 + 3?", checker=five).verified


def test_a_checker_returning_nonsense_is_named():
    with pytest.raises(CheckerError, match="must return a bool"):
        import asyncio

        asyncio.run(as_checker(lambda text: "yes")("x"))


def test_system_prompt_reaches_the_solver(tmp_path):
    model = scripted.register("sys", fn=lambda m, p: "Answer: ok")
    agent("sys", tmp_path, system_prompt="You are a terse pirate.").run("Hello?")
    system = [m["content"] for m in model.seen[0][0] if m["role"] == "system"]
    assert system and "terse pirate" in system[0]


def test_api_base_and_key_go_to_the_gateway(tmp_path):
    bot = agent("sys", tmp_path, api_base="http://127.0.0.1:9/v1", api_key="sk-test")
    assert bot.gateway.default_params == {"api_base": "http://127.0.0.1:9/v1", "api_key": "sk-test"}
    with pytest.raises(SeasonedError, match="api_base"):
        Agent(gateway=Gateway("scripted/sys"), api_base="http://x", record=False)


def lookup(city: str, year: int = 2024) -> str:
    """Population of a city.

    Args:
        city: the city's name
        year: which census
    """
    return json.dumps({"city": city, "year": year, "population": 709_000 if city == "Oslo" else 0})


def test_tool_schema_from_type_hints_and_docstring():
    tool = user_tool(lookup)
    spec = tool.spec.openai()["function"]
    assert spec["name"] == "lookup" and spec["description"] == "Population of a city."
    assert spec["parameters"]["properties"] == {"city": {"type": "string", "description": "the city's name"},
                                                "year": {"type": "integer", "description": "which census"}}
    assert spec["parameters"]["required"] == ["city"]


async def test_tool_arguments_are_checked_and_converted():
    def total(values: list[int], scale: float | None = None) -> float:
        """Sum of values."""
        return sum(values) * (scale or 1)

    tool = user_tool(total)
    assert await tool.call({"values": "[1, 2, 3]", "scale": "2"}) == "12.0"
    with pytest.raises(ToolError, match="missing argument 'values'"):
        await tool.call({})
    with pytest.raises(ToolError, match="must be number"):
        await tool.call({"values": "[1]", "scale": "lots"})
    with pytest.raises(ToolError, match="share the name"):
        as_tools([lookup, lookup])
    with pytest.raises(ToolError, match="callable"):
        as_tools([42])


def test_agent_with_tools_acts_then_answers_and_records_the_steps(tmp_path):
    calls = []

    def population(city: str) -> int:
        """Population of a city."""
        calls.append(city)
        return 709_000 if city == "Oslo" else 0

    def actor(messages, params):
        seen = messages[-1]["content"]
        if "709000" in seen:
            return "```action\nanswer 709000\n```"
        return "I will look it up.\n```action\npopulation Oslo\n```"

    scripted.register("tools", fn=actor)
    bot = agent("tools", tmp_path, tools=[population], checker=lambda text: text.strip() == "709000",
                system_prompt="Use the tools.", strategy="single")
    result = bot.run("How many people live in Oslo?")
    assert calls == ["Oslo"]
    assert result.verified and result.answer == "709000"
    steps = result.candidates[0]["trajectory"]
    assert [s["action"] for s in steps] == ["population(city='Oslo')", "answer(text='709000')"]
    assert "709000" in steps[0]["observation"]


def test_a_failing_tool_is_an_observation_not_a_crash(tmp_path):
    def broken(city: str) -> str:
        """Always fails."""
        raise RuntimeError("database down")

    def actor(messages, params):
        if "database down" in messages[-1]["content"]:
            return "```action\nanswer unknown\n```"
        return "```action\nbroken Oslo\n```"

    scripted.register("broken-tool", fn=actor)
    result = agent("broken-tool", tmp_path, tools=[broken], strategy="single").run("Population of Oslo?")
    steps = result.candidates[0]["trajectory"]
    assert "RuntimeError: database down" in steps[0]["observation"] and result.answer == "unknown"


async def test_python_tool_runs_model_code_in_the_sandbox(tmp_path):
    code = f"import os\nprint(sum(range(5)), os.getcwd() != {str(tmp_path)!r})"
    reply = await python_tool().call({"code": code})
    assert "10 True" in reply
    from seasoned.tools.isolation import best_isolation

    if best_isolation() == "bwrap":  # the host's files are not visible inside
        secret = tmp_path / "secret.txt"
        secret.write_text("hidden")
        reply = await python_tool().call({"code": f"print(open({str(secret)!r}).read())"})
        assert "hidden" not in reply and "No such file" in reply


MCP_SERVER = textwrap.dedent('''
    try:
        from mcp.server.mcpserver import MCPServer
    except ImportError:  # mcp 1.x
        from mcp.server.fastmcp import FastMCP as MCPServer
    app = MCPServer("calc")

    @app.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    if __name__ == "__main__":
        app.run("stdio")
''')


def test_mcp_server_tools_over_stdio(tmp_path):
    pytest.importorskip("mcp")
    from seasoned.tools.mcp_tools import McpServer

    script = tmp_path / "calc_server.py"
    script.write_text(MCP_SERVER)

    def actor(messages, params):
        if "Observation:\n5" in messages[-1]["content"]:
            return "```action\nanswer 5\n```"
        return "```action\nadd 2 3\n```"

    scripted.register("mcp", fn=actor)
    bot = agent("mcp", tmp_path, tools=[McpServer(sys.executable, [str(script)])], strategy="single",
                checker=lambda text: text.strip() == "5")
    try:
        result = bot.run("What is 2 + 3? Use the calculator.")
    finally:
        bot.close()
    assert result.verified and result.answer == "5"
    assert result.candidates[0]["trajectory"][0]["action"] == "add(a=2, b=3)"
