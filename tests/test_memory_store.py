"""The LangGraph BaseStore adapter inside a real compiled StateGraph."""

from __future__ import annotations

from typing import TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore
from seasoned.memory import BankStore, MemoryBank, MemoryItem


class State(TypedDict, total=False):
    user: str
    fact: str
    found: list[str]


def remember(state: State, *, store: BaseStore) -> State:
    store.put(("users", state["user"]), f"fact-{len(state['fact'])}", {"content": state["fact"], "kind": "note"})
    return {}


def recall(state: State, *, store: BaseStore) -> State:
    hits = store.search(("users", state["user"]), query="which pet does the user have", limit=3)
    return {"found": [h.value["content"] for h in hits]}


@pytest.fixture
def bank(tmp_path):
    b = MemoryBank.open(f"sqlite:///{tmp_path / 's.db'}", namespace="default")
    yield b
    b.close()


def test_store_inside_compiled_state_graph(bank):
    builder = StateGraph(State)
    builder.add_node("remember", remember)
    builder.add_node("recall", recall)
    builder.add_edge(START, "remember")
    builder.add_edge("remember", "recall")
    builder.add_edge("recall", END)
    graph = builder.compile(store=BankStore(bank))
    graph.invoke({"user": "alice", "fact": "Alice has a grey cat named Miso."}, {"recursion_limit": 10})
    graph.invoke({"user": "alice", "fact": "Alice works as a marine biologist."}, {"recursion_limit": 10})
    out = graph.invoke({"user": "bob", "fact": "Bob owns a golden retriever."}, {"recursion_limit": 10})
    assert out["found"] == ["Bob owns a golden retriever."]  # bob never sees alice's memories
    out = graph.invoke({"user": "alice", "fact": "Alice likes jazz."}, {"recursion_limit": 10})
    assert out["found"][0] == "Alice has a grey cat named Miso."
    # the same memory is visible to the bank API (namespace "users.alice")
    assert {i.content for i in bank.list(namespace="users.alice")} >= {"Alice has a grey cat named Miso."}


def test_store_put_get_update_delete_and_listing(bank):
    store = BankStore(bank)
    store.put(("app", "prefs"), "theme", {"content": "dark theme", "level": 3})
    assert store.get(("app", "prefs"), "theme").value == {"content": "dark theme", "level": 3}
    store.put(("app", "prefs"), "theme", {"content": "light theme", "level": 5})
    item = bank.get_by_key("theme", namespace="app.prefs")
    assert item.content == "light theme" and item.version == 2
    assert [h.key for h in store.search(("app",), filter={"level": {"$gte": 4}})] == ["theme"]
    assert store.search(("app",), filter={"level": 3}) == []
    store.put(("app", "other"), "x", {"text": "no content field"})
    assert store.list_namespaces(prefix=("app",)) == [("app", "other"), ("app", "prefs")]
    assert store.list_namespaces(max_depth=1) == [("app",)]
    store.delete(("app", "prefs"), "theme")
    assert store.get(("app", "prefs"), "theme") is None
    assert [v.reason for v in bank.history(item.id, namespace="app.prefs")][-1].startswith("deleted")


async def test_store_async_path(bank):
    store = BankStore(bank)
    await store.aput(("a",), "k", {"content": "async value"})
    assert (await store.aget(("a",), "k")).value["content"] == "async value"
    hits = await store.asearch(("a",), query="async")
    assert hits and hits[0].score is not None


def test_bank_items_are_visible_through_the_store(bank):
    added = bank.add(MemoryItem(kind="strategy", content="Decompose the task into subtasks.")).item
    got = BankStore(bank).get(("default",), added.id)
    assert got is not None and got.value["content"] == "Decompose the task into subtasks."
