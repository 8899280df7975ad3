"""After a run: what the curator keeps from it, and how its outcome credits the memory it used.

The trajectory is the run as the curator reads it (``solve_trajectory`` for one question,
``task_trajectory`` for a multi-stage run); ``curate`` distils items from it (deduplicated and merged
against what is stored), stores its verified replies as demonstrations and records the budget-vs-outcome
records the learned allocator and the give-up rule read; ``credit_items`` updates the utility of the items
a checked run used.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from seasoned.agents import curator, solver
from seasoned.models import Gateway, call_tags

from .context import demonstration_item

if TYPE_CHECKING:
    from .results import RunResult
    from .solve import SolveContext


async def curate(memory: Any, trajectory: dict, namespace: str, *, gateway: Gateway,
                 curator_model: str | None = None) -> dict:
    """Distill items from the trajectory into memory (deduplicated), keep its verified replies as
    demonstrations, and record the allocation outcomes. Model calls (an LLM curator, LLM merges) go
    through ``gateway``, so they are budgeted, tagged and in its ledger."""
    from seasoned.memory import MemoryItem

    items = curator.distill(trajectory)
    demos = [demonstration_item(**d, model=gateway.model) for d in curator.demonstrations(trajectory)]
    if "answer_format" in trajectory:  # the messages the model was given, zero-shot: what an adapter trains on
        for demo in demos:
            demo["data"]["messages"] = solver.build_messages(demo["data"]["task"], system=trajectory.get("system"),
                                                             answer_format=trajectory["answer_format"])
    if curator_model:
        with call_tags(run_id=trajectory.get("run_id"), role="curator"):
            items += await curator.propose(gateway, trajectory, model=curator_model)
    actions: dict[str, int] = {}
    with call_tags(run_id=trajectory.get("run_id"), role="curator"):
        for item in items:
            added = await memory.aadd(MemoryItem(**item), namespace=namespace, actor="curator", gateway=gateway)
            actions[added.action.value] = actions.get(added.action.value, 0) + 1
    for demo in demos:  # key-addressed: one per task, the newest verified reply
        await asyncio.to_thread(memory.put, demo["key"], demo, namespace=namespace, actor="curator",
                                reason="verified demonstration")
    if demos:
        actions["demonstrations"] = len(demos)
        if hasattr(memory, "maybe_train"):  # every SEASONED_TRAIN_EVERY new ones: an adapter, in the background
            await asyncio.to_thread(memory.maybe_train, gateway.model, trajectory.get("scope") or "general",
                                    namespace=namespace)
    records = curator.allocation_records(trajectory)
    for record in records:
        kind = record.pop("subtask_kind")
        await asyncio.to_thread(memory.record_allocation, kind, run_id=trajectory.get("run_id"),
                                namespace=namespace, **record)
    return {"items": actions, "allocation_records": len(records)}


def env_checked(result: RunResult, context: SolveContext) -> bool:
    """Whether the run's outcome is known now (an environment's check is ground truth); otherwise it
    comes later through ``Agent.feedback``."""
    by_env = (result.verified_by or "").startswith("env")
    return by_env or (context.can_check and not result.verified)


def credit_items(memory: Any, result: RunResult, namespace: str) -> None:
    """Credit the memory items a run used with its outcome (each subtask's own, when it was checked)."""
    credited: set[str] = set()
    for subtask in result.subtasks:
        sub = subtask.get("result") or {}
        ids = [i for i in sub.get("memory_ids") or [] if i not in credited]
        if ids and sub.get("checked"):
            memory.record_outcome(ids, success=bool(sub.get("verified")), namespace=namespace)
            credited.update(ids)
    rest = [i for i in result.memory_ids if i not in credited]
    if rest:
        memory.record_outcome(rest, success=result.verified, namespace=namespace)


def single_stage_kind(task: Any) -> str:
    """The allocation-record kind of a single-stage run: its environment's name, else ``general``."""
    return getattr(task, "env", None) or "general"


def solve_trajectory(result: RunResult, context: SolveContext, task: Any) -> dict:
    """A single-stage run as the curator's trajectory: one subtask with every candidate tried.

    A checked run that sampled also carries its allocation (the run's token cap, what it spent, the samples
    drawn, the model): the curator records it, and the learned give-up rule reads those records. Runs
    without a check (success unknown) or answered from the cache (nothing sampled) leave no record."""
    checks = {v["candidate_id"]: v for v in result.verdicts if v["verifier"].startswith("env")}
    tried = [{"answer": c["answer"], "passed": checks.get(c["id"], {}).get("passed"),
              "details": checks.get(c["id"], {}).get("details")} for c in result.candidates if c["status"] == "ok"]
    kind = single_stage_kind(task)
    drawn = sum(c["status"] == "ok" and c["kind"] != "cached" for c in result.candidates)
    sampled = context.can_check and drawn > 0 and not (result.memory or {}).get("cache_hit")
    return {"run_id": result.run_id, "task": result.task, "scope": kind, "checker": context.checker_name,
            "system": context.system, "answer_format": context.answer_format,
            "subtasks": [{"id": "main", "description": result.task, "kind": kind,
                          "difficulty": getattr(task, "difficulty", None), "verified": result.verified,
                          "checked": context.can_check, "answer": result.answer, "text": result.text,
                          "prompt": result.task, "steps": _steps_of(result),
                          "tried": tried, "tokens": result.spend.tokens, "model": result.model,
                          "allocated": context.budget.max_tokens if sampled else None,
                          "samples": drawn if sampled else None}],
            "final": {"answer": result.answer, "verified": result.verified}}


def _steps_of(result: RunResult) -> list[dict] | None:
    """The accepted candidate's acting steps (interactive environments), if any."""
    chosen = next((c for c in result.candidates if c.get("text") == result.text and c.get("trajectory")), None)
    return chosen["trajectory"] if chosen else None


def task_trajectory(state: dict, run_id: str) -> dict:
    """A multi-stage run's state as the curator's trajectory."""
    results = state.get("results", {})
    subtasks = []
    for subtask in state.get("subtasks", []):
        result = results.get(subtask["id"]) or {}
        subtasks.append({**subtask, **result, "id": subtask["id"], "description": subtask["description"]})
    return {"run_id": run_id, "task": state.get("task", ""), "subtasks": subtasks, "final": state.get("final")}


def apply_feedback(store: Any, memory: Any, stats: Any, run_id: str, success: bool, comment: str | None,
                   default_namespace: str) -> dict:
    """An outcome that arrived after the run (e.g. a user's verdict): stored with the run, credited to the
    memory items the run used and its memory channel (when the run's outcome was not known at its end),
    and to the verifier that accepted its answer (its precision)."""
    trace = store.get_run(run_id)
    outcome = next((e.data for e in reversed(trace.events) if e.kind == "outcome"), {})
    store.record_feedback(run_id, success, comment)
    namespace = outcome.get("namespace", default_namespace)
    unknown_at_end = bool(outcome) and not outcome.get("outcome_recorded")
    credited: list[str] = []
    memory_ids = outcome.get("memory_ids") or []
    if memory is not None and memory_ids and unknown_at_end:
        credited = [item.id for item in memory.record_outcome(memory_ids, success=success, namespace=namespace)]
    if outcome.get("verified_by"):
        stats.record(namespace, outcome["verified_by"], correct=success)
    chosen = next((e.data for e in trace.events if e.kind == "memory" and e.data.get("channel")), None)
    if memory is not None and chosen and unknown_at_end:
        memory.channels.credit(namespace, trace.run.model, trace.run.env or "general", chosen["channel"],
                               successes=int(success), failures=int(not success))
    return {"run_id": run_id, "success": success, "memory_items_credited": credited,
            "verifier": outcome.get("verified_by")}
