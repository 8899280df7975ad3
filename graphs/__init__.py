"""LangGraph state machines: the per-subtask test-time scaling graph and the Agent API on top of it.

    from seasoned.graphs import Agent
    result = Agent("local/smollm2-135m", strategy="adaptive").run("What is 17 + 25?")

Names load lazily, so tools that only read recorded runs (``seasoned runs``) do not import LangGraph.
"""

from importlib import import_module

_EXPORTS = {
    "Agent": ".agent", "AgentInput": ".subgraph", "AgentOutput": ".subgraph", "Event": ".results",
    "RunResult": ".results", "ActorOutput": ".solve", "SolveContext": ".solve", "build_solve_graph": ".solve",
    "Candidate": ".state", "Decision": ".state", "SolveState": ".state", "VerdictRecord": ".state",
    "Verdict": ".checking", "answer_is": ".checking",
    "Checker": ".protocols", "Environment": ".protocols", "Memory": ".protocols",
    "STRATEGIES": ".strategy", "StrategyConfig": ".strategy", "StrategyError": ".strategy",
    "parse_strategy": ".strategy",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
