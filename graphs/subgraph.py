"""An Agent as a node of someone else's LangGraph graph, with a declared input and output schema."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from .agent import Agent
    from .results import RunResult


class AgentInput(TypedDict):
    """What ``Agent.as_subgraph()`` reads from its parent's state."""

    task: str


class AgentOutput(TypedDict, total=False):
    """What ``Agent.as_subgraph()`` writes back: the answer, whether it was verified, the run to inspect."""

    answer: str | None
    verified: bool
    run_id: str
    tokens: int


class AgentState(AgentInput, AgentOutput):
    pass


def agent_subgraph(agent: Agent, **run_options: Any):
    """The agent as a compiled one-node graph: input ``{"task": str}``, output ``{"answer", "verified",
    "run_id", "tokens"}`` (``AgentInput``/``AgentOutput``). Each call is a full run (memory, budget, checker,
    tools), recorded like any other (``seasoned runs list``). ``run_options`` go to every ``arun``
    (``strategy=``, ``budget=``, ``checker=``...)."""
    from langchain_core.runnables import RunnableLambda
    from langgraph.graph import END, START, StateGraph

    def output(result: RunResult) -> dict:
        return {"answer": result.answer, "verified": result.verified, "run_id": result.run_id,
                "tokens": result.spend.tokens}

    async def solve(state: dict) -> dict:
        return output(await agent.arun(state["task"], **run_options))

    def solve_sync(state: dict) -> dict:
        return output(agent.run(state["task"], **run_options))

    builder = StateGraph(AgentState, input_schema=AgentInput, output_schema=AgentOutput)
    builder.add_node("agent", RunnableLambda(solve_sync, afunc=solve, name="agent"))
    builder.add_edge(START, "agent")
    builder.add_edge("agent", END)
    return builder.compile(name="seasoned-agent")
