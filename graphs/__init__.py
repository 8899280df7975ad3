"""LangGraph state machines: the per-subtask test-time scaling graph and the Agent API on top of it.

    from seasoned.graphs import Agent
    result = Agent("local/smollm2-135m", strategy="adaptive").run("What is 17 + 25?")
"""

from .agent import Agent, Event, RunResult, RunSpend
from .solve import ActorOutput, SolveContext, SolveState, build_solve_graph
from .strategy import STRATEGIES, StrategyConfig, StrategyError, parse_strategy

__all__ = ["ActorOutput", "Agent", "Event", "RunResult", "RunSpend", "STRATEGIES", "SolveContext", "SolveState",
           "StrategyConfig", "StrategyError", "build_solve_graph", "parse_strategy"]
