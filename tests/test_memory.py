"""Memory bank: dedup/merge, versions, contradictions, provenance, retrieval, namespaces, export/import."""

from __future__ import annotations

import random

import pytest
from seasoned.memory import (
    Action,
    InvalidItemError,
    ItemNotFound,
    MemoryBank,
    MemoryItem,
    ProtectedItemError,
)
from seasoned.models import scripted
from seasoned.models.tokens import count_text_tokens

WORDS = ["apple", "river", "stone", "cloud", "piano", "engine", "violet", "tiger", "marble", "copper", "lantern", "desert", "orbit", "quartz", "harbor", "falcon", "meadow", "signal", "timber", "canyon", "glacier", "pepper", "saddle", "velvet", "walnut", "ember", "fossil", "garnet", "hollow", "island", "jungle", "kettle", "lemon", "magnet", "nectar", "oyster", "pebble", "quiver", "raven", "spruce"]


@pytest.fixture
def bank(tmp_path):
    b = MemoryBank.open(f"sqlite:///{tmp_path / 'm.db'}", namespace="test")
    yield b
    b.close()


def test_near_duplicate_add_gives_one_item_with_merge_version(bank):
    first = bank.add(MemoryItem(kind="strategy", title="24 game", content="Multiply pairs first to reach 24."))
    again = bank.add(MemoryItem(kind="strategy", title="24 game",
                                content="Multiply pairs first to reach 24. Check division last."))
    same = bank.add(MemoryItem(kind="strategy", title="24 game", content="Multiply pairs first to reach 24."))
    assert first.action is Action.ADD
    assert again.action is Action.UPDATE and again.item.id == first.item.id
    assert same.action is Action.NOOP and same.item.id == first.item.id
    assert len(bank.list()) == 1
    stored = bank.get(first.item.id)
    assert stored.content == "Multiply pairs first to reach 24. Check division last."
    history = bank.history(first.item.id)
    assert [v.version for v in history] == [1, 2]
    assert history[0].snapshot["content"] == "Multiply pairs first to reach 24."
    assert history[1].reason.startswith("merge")


def test_different_items_and_kinds_are_not_merged(bank):
    a = bank.add(MemoryItem(kind="strategy", content="Sort the list before binary search."))
    b = bank.add(MemoryItem(kind="lesson", content="Sort the list before binary search.", source="failure"))
    c = bank.add(MemoryItem(kind="strategy", content="Use a heap to merge k sorted streams."))
    assert [r.action for r in (a, b, c)] == [Action.ADD] * 3
    assert len(bank.list()) == 3


def test_add_many_dedups_inside_the_batch(bank):
    results = bank.add_many([
        MemoryItem(content="Cache compiled regular expressions at module level."),
        MemoryItem(content="Cache compiled regular expressions at module level."),
        MemoryItem(content="Prefer pathlib over os.path for file paths."),
    ])
    assert [r.action for r in results] == [Action.ADD, Action.NOOP, Action.ADD]
    assert results[1].item.id == results[0].item.id
    assert len(bank.list()) == 2


def test_namespace_isolation_random_queries_never_leak(bank):
    rng = random.Random(7)

    def text() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(10))

    a_ids = {r.item.id for r in bank.add_many([MemoryItem(content=text()) for _ in range(40)], namespace="a",
                                              dedup=False)}
    b_ids = {r.item.id for r in bank.add_many([MemoryItem(content=text()) for _ in range(40)], namespace="b",
                                              dedup=False)}
    for _ in range(30):
        query = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6)))
        got_a = {h.item.id for h in bank.retrieve(query, k=10, namespace="a", track=False)}
        got_b = {h.item.id for h in bank.retrieve(query, k=10, namespace="b", track=False)}
        assert got_a and got_a <= a_ids
        assert got_b and got_b <= b_ids
    some_b = next(iter(b_ids))
    with pytest.raises(ItemNotFound):
        bank.get(some_b, namespace="a")
    assert bank.retrieve("anything", namespace="empty") == []


def test_hybrid_retrieval_finds_exact_identifiers_and_reports_parts(bank):
    bank.add_many([
        MemoryItem(kind="lesson", title="config loader", source="failure",
                   content="parse_config raised ZeroDivisionError when ratio was 0; guard the denominator."),
        MemoryItem(kind="strategy", content="Break the problem into smaller subproblems and solve each."),
        MemoryItem(kind="code", content="def gcd(a, b):\n    while b:\n        a, b = b, a % b\n    return a",
                   title="gcd", verified=True),
    ])
    hits = bank.retrieve("ZeroDivisionError in parse_config", k=3)
    assert hits[0].item.title == "config loader"
    assert hits[0].parts["lexical"] == 1.0 and hits[0].parts["semantic"] > 0.3
    assert set(hits[0].parts) == {"semantic", "lexical", "utility", "provenance"}
    only_code = bank.retrieve("greatest common divisor", k=3, kinds=["code"])
    assert [h.item.title for h in only_code] == ["gcd"]
    assert bank.get(hits[0].item.id).times_retrieved == 1
    with pytest.raises(InvalidItemError):
        bank.retrieve("x", kinds=["nonsense"])


def test_unverified_ranks_below_verified_until_outcomes_confirm(bank):
    bank.dedup_threshold = 1.01  # keep both near-identical items
    unverified = bank.add(MemoryItem(content="To reach 24 combine the two largest numbers first.")).item
    verified = bank.add(MemoryItem(content="To reach 24, combine the two largest numbers first.", verified=True)).item
    order = [h.item.id for h in bank.retrieve("how to reach 24", k=2)]
    assert order == [verified.id, unverified.id]
    bank.record_outcome([unverified.id], success=True)
    assert not bank.get(unverified.id).verified
    updated = bank.record_outcome([unverified.id], success=True)[0]
    assert updated.verified and updated.times_succeeded == 2 and updated.utility == pytest.approx(0.75)
    assert bank.history(unverified.id)[-1].reason.startswith("confirmed")
    order = [h.item.id for h in bank.retrieve("how to reach 24", k=2)]
    assert order[0] == unverified.id  # now verified and with better observed utility
    with pytest.raises(ItemNotFound):
        bank.record_outcome(["missing"], success=False)


def test_contradiction_supersedes_and_keeps_history(bank):
    old = bank.add(MemoryItem(content="The API rate limit is 100 requests per minute.")).item
    result = bank.supersede(old.id, MemoryItem(content="The API rate limit is 20 requests per minute."),
                            reason="contradiction: limit changed")
    assert result.action is Action.ADD and result.superseded == [old.id]
    stale = bank.get(old.id)
    assert stale.status == "superseded" and stale.superseded_by == result.item.id
    assert [v.reason for v in bank.history(old.id)][-1] == "contradiction: limit changed"
    ids = [h.item.id for h in bank.retrieve("API rate limit", k=5)]
    assert result.item.id in ids and old.id not in ids


def test_pinned_and_human_items_are_never_overwritten_by_the_curator(bank):
    human_text = "Always run the complete unit test suite before answering any coding question, even small ones."
    pinned_text = "Write every timestamp in the application logs in UTC with an ISO 8601 format."
    human = bank.add(MemoryItem(content=human_text, source="human"), actor="human").item
    pinned = bank.add(MemoryItem(content=pinned_text)).item
    bank.pin(pinned.id)
    r1 = bank.add(MemoryItem(content=human_text + " Really."))
    r2 = bank.add(MemoryItem(content=pinned_text + " Always."))
    assert r1.action is Action.NOOP and "protected" in r1.reason
    assert r2.action is Action.NOOP
    assert bank.get(human.id).content == human_text
    assert bank.get(pinned.id).version == 2  # v2 = the pin itself
    with pytest.raises(ProtectedItemError):
        bank.edit(pinned.id, {"content": "x"}, actor="curator")
    with pytest.raises(ProtectedItemError):
        bank.supersede(human.id, MemoryItem(content="Never run tests."))
    edited = bank.edit(pinned.id, {"content": "Use UTC everywhere."}, reason="human edit")
    assert edited.version == 3 and bank.history(pinned.id)[-1].reason == "human edit"


def test_llm_merge_update_contradict_and_garbage_fallback(bank):
    seed = bank.add(MemoryItem(content="Retry flaky network calls with exponential backoff.")).item
    merged = "Retry flaky network calls with exponential backoff and jitter, at most 5 times."
    scripted.register("merge-update", replies=[
        f'Sure! {{"action": "UPDATE", "target_id": "{seed.id}", "content": "{merged}", "reason": "adds jitter"}}'])
    r = bank.add(MemoryItem(content="Retry network calls using backoff plus jitter."), model="scripted/merge-update")
    assert r.action is Action.UPDATE and r.item.id == seed.id and bank.get(seed.id).content == merged

    scripted.register("merge-garbage", replies=["I think these are similar {not json"])
    r = bank.add(MemoryItem(content="Retry flaky network calls with exponential backoff and jitter, at most 5 times."),
                 model="scripted/merge-garbage")
    assert r.action is Action.NOOP and "deterministic rule" in r.reason

    scripted.register("merge-contra", fn=lambda messages, params: (
        f'{{"action": "CONTRADICT", "target_id": "{seed.id}", "reason": "never retry"}}'))
    r = bank.add(MemoryItem(content="Never retry flaky network calls; fail fast with backoff disabled."),
                 model="scripted/merge-contra")
    assert r.superseded == [seed.id] and bank.get(seed.id).status == "superseded"
    scripted.unregister("merge-update")
    scripted.unregister("merge-garbage")
    scripted.unregister("merge-contra")


async def test_aadd_uses_the_bank_merge_model_and_wrong_target_falls_back(tmp_path):
    bank = MemoryBank.open(f"sqlite:///{tmp_path / 'a.db'}", namespace="x", merge_model="scripted/merge-async")
    seed = bank.add(MemoryItem(content="Read the error message before changing code.")).item
    scripted.register("merge-async", replies=['{"action": "UPDATE", "target_id": "not-a-candidate", "content": "x"}'])
    r = await bank.aadd(MemoryItem(content="Read the error message before changing code. Then reproduce it."))
    assert r.action is Action.UPDATE and "deterministic rule" in r.reason
    assert bank.get(seed.id).content.endswith("Then reproduce it.")
    scripted.unregister("merge-async")
    bank.close()


def test_prune_archives_failing_items_but_keeps_pinned(bank):
    bad = bank.add(MemoryItem(content="Guess the answer without checking.")).item
    keep = bank.add(MemoryItem(content="Check every answer with the verifier.")).item
    bank.pin(keep.id)
    for _ in range(3):
        bank.record_outcome([bad.id, keep.id], success=False)
    assert [i for i, _ in bank.prune(dry_run=True)] == [bad.id]
    assert bank.get(bad.id).status == "active"
    pruned = bank.prune()
    assert [i for i, _ in pruned] == [bad.id] and "failing" in pruned[0][1]
    assert bank.get(bad.id).status == "archived" and bank.get(keep.id).status == "active"
    assert bad.id not in {h.item.id for h in bank.retrieve("guess the answer", k=5)}


def test_cheatsheet_is_bounded_and_built_from_top_items(bank):
    bank.add_many([MemoryItem(kind="strategy", title=f"tip {i}", content=f"For sums of {i} numbers, pair terms. " * 5)
                   for i in range(10)], dedup=False)
    bank.add(MemoryItem(kind="code", title="pair sum", content="def pair_sum(xs):\n    return sum(xs)", verified=True))
    sheet = bank.cheatsheet("sum numbers by pairing terms", max_tokens=120)
    assert sheet.startswith("# Cheatsheet") and "## Strategies" in sheet
    assert count_text_tokens(sheet) <= 120
    assert bank.cheatsheet("anything", max_tokens=120, namespace="nothing-here") == ""


def test_allocation_records_are_structured_and_not_deduped(bank):
    for spent, ok in ((100, True), (100, True), (400, False)):
        bank.record_allocation("code-edit", budget={"tokens": 500}, spent={"tokens": spent}, success=ok,
                               difficulty=0.4, run_id=f"run-{spent}-{ok}")
    bank.record_allocation("plan", budget={"tokens": 50}, spent={"tokens": 20}, success=True)
    records = bank.allocations("code-edit")
    assert len(records) == 3
    assert {r["success"] for r in records} == {True, False}
    assert all(r["budget"] == {"tokens": 500} and r["subtask_kind"] == "code-edit" for r in records)
    assert len(bank.allocations()) == 4


def test_export_import_round_trip_is_lossless(bank, tmp_path):
    a = bank.add(MemoryItem(kind="lesson", content="Off-by-one in range(len(xs)-1).", tags=["python"],
                            source="failure", run_ids=["r1"])).item
    bank.edit(a.id, {"content": "Off-by-one in range(len(xs)-1). Use enumerate.", "tags": ["python", "loops"]})
    bank.record_outcome([a.id], success=True)
    bank.add(MemoryItem(kind="code", content="print('hi')", data={"lang": "py"}), namespace="other")
    first = tmp_path / "one.jsonl"
    assert bank.export_jsonl(first) == 1
    assert bank.export_jsonl(tmp_path / "all.jsonl", all_namespaces=True) == 2

    other = MemoryBank.open(f"sqlite:///{tmp_path / 'copy.db'}", namespace="test")
    assert other.import_jsonl(tmp_path / "all.jsonl") == {"imported": 2, "merged": 0, "replaced": 0, "skipped": 0}
    assert other.import_jsonl(tmp_path / "all.jsonl") == {"imported": 0, "merged": 0, "replaced": 0, "skipped": 2}
    second = tmp_path / "two.jsonl"
    other.export_jsonl(second, all_namespaces=True)
    assert second.read_text() == (tmp_path / "all.jsonl").read_text()
    assert other.get(a.id) == bank.get(a.id)
    assert other.history(a.id) == bank.history(a.id)
    assert other.retrieve("off by one error", k=1)[0].item.id == a.id  # imported items are indexed

    broken = tmp_path / "broken.jsonl"
    broken.write_text(first.read_text().replace('"content"', '"contents"', 1))
    with pytest.raises(InvalidItemError, match="line 1"):
        other.import_jsonl(broken, namespace="fresh")
    assert other.list(namespace="fresh") == []
    other.close()


def test_index_heals_on_open_orphans_removed_and_missing_vectors_restored(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    bank = MemoryBank.open(url, namespace="h")
    kept = bank.add_many([MemoryItem(content=f"fact number {i} about {w}") for i, w in enumerate(WORDS[:5])],
                         dedup=False)
    ids = [r.item.id for r in kept]
    import numpy as np

    bank.index.upsert("h", ["orphan-1"], np.ones((1, 384), dtype=np.float32) / np.sqrt(384))
    bank.index.delete("h", [ids[0]])
    bank.close()
    bank = MemoryBank.open(url, namespace="h")
    assert sorted(bank.index.ids("h")) == sorted(ids)
    bank.delete(ids[1], hard=True)
    assert ids[1] not in bank.index.ids("h")
    with pytest.raises(ItemNotFound):
        bank.get(ids[1])
    bank.delete(ids[2])
    assert bank.get(ids[2]).status == "archived" and ids[2] not in bank.index.ids("h")
    bank.index.drop("h")
    assert bank.reindex() == 4
    assert sorted(bank.index.ids("h")) == sorted([ids[0], ids[3], ids[4]])
    bank.close()


def test_bad_input_is_reported_clearly(bank):
    from seasoned.memory import MemoryConfigError

    with pytest.raises(InvalidItemError, match="content"):
        bank.add({"content": "   "})
    with pytest.raises(InvalidItemError, match="cannot edit"):
        bank.edit("whatever", {"id": "x"})
    with pytest.raises(MemoryConfigError, match="namespace"):
        bank.list(namespace="")
    with pytest.raises(MemoryConfigError, match="cannot parse"):
        MemoryBank.open("::not a url::")
