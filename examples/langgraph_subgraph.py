"""The agent inside a LangGraph graph of your own, with the experience memory as the graph's store.

    python examples/langgraph_subgraph.py

``agent.as_subgraph()`` is a compiled graph with a declared schema: it reads ``task`` from the parent's
state and writes ``answer``, ``verified``, ``run_id`` and ``tokens`` back. Every call is a recorded run
(``seasoned runs list``). ``BankStore`` makes the same memory bank the LangGraph store, so the parent's
own nodes can read and write notes the agent retrieves.
"""

import os
import tempfile
from typing import TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore
from seasoned.graphs import Agent, answer_is
from seasoned.memory import MemoryBank
from seasoned.memory.store import BankStore


class State(TypedDict, total=False):
    question: str
    task: str  # read by the agent
    answer: str | None  # written by the agent
    verified: bool
    run_id: str
    tokens: int
    report: str


def prepare(state: State) -> State:
    return {"task": f"{state['question']} Reply with 'Answer: <number>'."}


def remember(state: State, *, store: BaseStore) -> State:
    if state.get("verified"):  # a note for next time, in the agent's own memory bank
        store.put(("examples",), state["run_id"], {"content": f"{state['question']} -> {state['answer']}"})
    return {"report": f"{state['question']} = {state['answer']} (verified: {state['verified']})"}


home = os.environ.get("SEASONED_HOME") or tempfile.mkdtemp(prefix="seasoned-example-")
bank = MemoryBank.open(f"sqlite:///{home}/memory.db", namespace="examples", chroma_path=f"{home}/chroma")
agent = Agent(os.environ.get("SEASONED_MODEL", "local/smollm2-135m"), memory=bank, namespace="examples",
              strategy="adaptive-4", checker=answer_is(42))  # "Answer: 42." passes too

builder = StateGraph(State)
builder.add_node("prepare", prepare)
builder.add_node("agent", agent.as_subgraph())
builder.add_node("remember", remember)
builder.add_edge(START, "prepare")
builder.add_edge("prepare", "agent")
builder.add_edge("agent", "remember")
builder.add_edge("remember", END)
graph = builder.compile(store=BankStore(bank))

final = graph.invoke({"question": "What is 40 + 2?"})
print(final["report"])
print(f"run recorded: seasoned runs show {final['run_id']}  ({final['tokens']} tokens)")
print(f"notes in the bank: {len(bank.list(namespace='examples'))}")
agent.close()
