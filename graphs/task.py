"""The multi-stage task graph (LangGraph).

    retrieve -> plan -> allocate -> solve_subtask* (Send fan-out) -> allocate -> ... -> aggregate -> curate

- ``plan``: the environment's own stages when it defines them, else the planner role: the task's explicit
  steps, the model's plan, or one subtask when that is unusable (a ``plan`` event says which and why).
- ``allocate``: splits what is left of the run's budget over the subtasks not yet solved, with the chosen
  policy, and dispatches those whose dependencies are done: independent ones in parallel, dependent
  ones after their predecessors, with their results in context. Recomputing over what is left is what
  makes a finished subtask's unspent budget flow on to the rest.
- ``solve_subtask``: the per-subtask solve graph (strategies, verification, early stop) within the
  subtask's allocation, as a child budget of the run's budget.
- ``aggregate``: the final answer (the last subtask's), verified by the environment when it can.
- ``curate``: hands the trajectory to the curator (memory items, allocation records, item outcomes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send
from seasoned.agents import planner
from seasoned.models import Budget, BudgetExceeded, call_tags

from .allocation import AllocationPolicy, SubtaskNeed
from .decide import MIN_SAMPLE_TOKENS
from .results import judge_counts
from .solve import Checker, SolveContext, build_solve_graph
from .state import TaskState, emit, env_verdicts

PLANNER_TOKENS = 400
MIN_SUBTASK_TOKENS = 32


@dataclass
class TaskContext:
    """Runtime objects of one multi-stage run (not checkpointed)."""

    solve: SolveContext  # template for the subtasks: gateway, strategy, namespace, stats, retrieval
    budget: Budget
    policy: AllocationPolicy
    stages: list | None = None  # an environment's own stages
    stages_self_contained: bool = False  # a stage's description is its whole prompt
    stage_checker: Callable[[int, str], Awaitable[Any]] | None = None
    final_checker: Checker | None = None
    final_checker_name: str = "env"
    models: list[str] | None = None
    curator: Callable[[dict], Awaitable[dict]] | None = None
    on_subtask: Callable[[str, dict], None] | None = None  # (event, data): subtask started / finished
    rate: float | None = None  # tokens per task the stream can afford (prices tokens); default: this task's budget
    solve_graph: Any = field(default=None)

    def __post_init__(self) -> None:
        if self.solve_graph is None:
            self.solve_graph = build_solve_graph().compile()


async def retrieve_node(state: TaskState, runtime: Runtime[TaskContext]) -> dict:
    """Memory is chosen per subtask (each subtask's solve graph builds its own demonstrations and notes
    for its own prompt), so the task level passes nothing down."""
    return {"memory_context": None, "memory_ids": []}


async def plan_node(state: TaskState, runtime: Runtime[TaskContext]) -> dict:
    ctx = runtime.context
    if ctx.stages:
        plan = planner.plan_from_stages(ctx.stages, difficulties=_stage_difficulties(ctx),
                                        chained=not ctx.stages_self_contained)
        planned = planner.Planned(plan, "env", "the environment's own stages")
        spent = {"tokens": 0, "usd": 0.0, "calls": 0}
    else:
        budget = ctx.budget.child(max_tokens=PLANNER_TOKENS * 2, name="planner")
        try:
            with call_tags(subtask="plan", role="planner"):
                planned = await planner.make_plan(ctx.solve.gateway, state["task"], budget=budget,
                                                  max_tokens=PLANNER_TOKENS)
        except BudgetExceeded as exc:
            planned = planner.Planned(planner.single_subtask(state["task"]), "fallback",
                                      f"no budget for the planner ({exc})")
        spent = budget.spent.counts()
    subtasks = [s.model_dump() for s in planned.plan.subtasks]
    emit(runtime, "plan", source=planned.source, reason=planned.reason, subtasks=subtasks)
    return {"subtasks": subtasks, "plan_source": planned.source, "plan_reason": planned.reason,
            "spend": [{"node": "plan", "role": "planner", **spent}]}


def _stage_difficulties(ctx: TaskContext) -> dict[str, float]:
    """Per-kind difficulty from past success rates when the policy has records, else neutral."""
    curves = getattr(ctx.policy, "curves", None)
    if curves is None:
        return {}
    difficulties = {}
    for (kind, model), curve in curves().items():
        if model is None and len(curve):
            successes = sum(1 for _, _, ok in curve.records if ok)
            difficulties[kind] = 1 - (successes + 1) / (len(curve) + 2)
    return difficulties


def _ready(state: TaskState) -> list[dict]:
    done = set(state.get("results", {}))
    return [s for s in state.get("subtasks", []) if s["id"] not in done and set(s["depends_on"]) <= done]


def _remaining(state: TaskState) -> list[dict]:
    done = set(state.get("results", {}))
    return [s for s in state.get("subtasks", []) if s["id"] not in done]


async def allocate_node(state: TaskState, runtime: Runtime[TaskContext]) -> dict:
    ctx = runtime.context
    remaining = _remaining(state)
    ready = _ready(state)
    if not ready:
        return {}
    left = ctx.budget.remaining_tokens()
    total = int(left) if left != float("inf") else ctx.solve.strategy.max_tokens * ctx.solve.strategy.n * len(remaining)
    needs = [SubtaskNeed(s["id"], s["kind"], s["difficulty"]) for s in remaining]
    if getattr(ctx.policy, "uses_task_budget", False):
        task_budget = ctx.rate or ctx.budget.max_tokens
        allocations = ctx.policy.allocate(needs, max(total, 0), ctx.models, task_budget=task_budget)
    else:
        allocations = ctx.policy.allocate(needs, max(total, 0), ctx.models)
    chosen = {s["id"]: allocations[s["id"]].to_dict() for s in ready}
    if getattr(ctx.policy, "gives_up_after_failure", False):  # no good compute after bad
        results = state.get("results", {})
        failed = {sid for sid, r in results.items() if r.get("checked") and not r.get("verified")}
        for s in ready:
            if failed & set(s["depends_on"]):
                chosen[s["id"]].update(tokens=0, samples=0, expected_success=0.0, stopping=None,
                                       reason=f"learned give-up: {', '.join(sorted(failed & set(s['depends_on'])))} "
                                              "did not pass its check, so this task cannot succeed")
    decision = {"action": "allocate", "policy": ctx.policy.name, "budget_left": total,
                "remaining": [s["id"] for s in remaining], "dispatched": list(chosen),
                "allocations": {k: v for k, v in chosen.items()}}
    emit(runtime, "allocation", decision=decision)
    return {"allocations": chosen, "decisions": [decision]}


def dispatch(state: TaskState, runtime: Runtime[TaskContext]) -> list[Send] | str:
    ready = _ready(state)
    if not ready:
        return "aggregate"
    results = state.get("results", {})
    sends = []
    for subtask in ready:
        predecessors = {d: results[d].get("answer") for d in subtask["depends_on"]}
        sends.append(Send("solve_subtask", {
            "subtask": subtask, "task": state["task"], "predecessors": predecessors,
            "allocation": state["allocations"][subtask["id"]],
            "memory_context": state.get("memory_context"), "memory_ids": state.get("memory_ids") or [],
        }))
    return sends


def subtask_prompt(task: str, subtask: dict, predecessors: dict, stages_given: bool,
                   self_contained: bool = False) -> str:
    if self_contained and not predecessors:
        return subtask["description"]
    lines = [f"Overall task: {task}"] if not stages_given else [f"Problem: {task}"]
    if predecessors:
        lines.append("Results of earlier steps: " + "; ".join(f"{k} = {v}" for k, v in predecessors.items()))
    lines.append(f"Now do only this step: {subtask['description']}")
    return "\n".join(lines)


async def solve_subtask_node(payload: dict, runtime: Runtime[TaskContext]) -> dict:
    ctx = runtime.context
    subtask, allocation = payload["subtask"], payload["allocation"]
    sid = subtask["id"]
    if allocation.get("samples") == 0:  # learned give-up: not worth its tokens
        return _given_up(subtask, allocation, runtime)
    prompt = subtask_prompt(payload["task"], subtask, payload["predecessors"], bool(ctx.stages),
                            ctx.stages_self_contained)
    need = await one_call_tokens(ctx, prompt, allocation)  # never less than one call can use
    left = ctx.budget.remaining_tokens()
    if left < need:
        return _given_up(subtask, {**allocation, "reason": f"skipped: the run has {int(left)} tokens left and "
                                                           f"one call needs ~{need}"}, runtime)
    tokens = max(int(allocation["tokens"]), MIN_SUBTASK_TOKENS, need)
    budget = ctx.budget.child(max_tokens=tokens, name=f"subtask {sid}")
    checker = None
    if ctx.stage_checker is not None:
        index = int(sid[1:]) - 1

        async def checker(text: str, _index: int = index):
            return await ctx.stage_checker(_index, text)

    gateway = ctx.solve.gateway
    solve_ctx = SolveContext(gateway=gateway, budget=budget, strategy=ctx.solve.strategy,
                             namespace=ctx.solve.namespace, checker=checker,
                             checker_name=f"{ctx.final_checker_name}:stage", extract=ctx.solve.extract,
                             answer_format=None if ctx.stages else ctx.solve.answer_format,
                             stats=ctx.solve.stats, memory=ctx.solve.memory, system=ctx.solve.system)
    if allocation.get("samples") and solve_ctx.strategy.name == "adaptive":  # learned give-up point
        waves = (allocation.get("stopping") or {}).get("wave") or solve_ctx.strategy.wave_size
        solve_ctx.strategy = solve_ctx.strategy.model_copy(update={"n": int(allocation["samples"]),
                                                                   "wave_size": int(waves)})
    solve_ctx.stopping = allocation.get("stopping")
    if allocation.get("model") and allocation["model"] != gateway.model:
        solve_ctx.gateway = _with_model(gateway, allocation["model"])
    if ctx.on_subtask:
        ctx.on_subtask("start", {"subtask": subtask, "allocation": allocation})
    with call_tags(subtask=sid):
        state = await ctx.solve_graph.ainvoke(
            {"task": prompt, "subtask": sid, "memory_context": payload["memory_context"],
             "memory_ids": payload["memory_ids"]},
            context=solve_ctx, config={"recursion_limit": 200},
        )
    outcome = state.get("result") or {}
    checks = env_verdicts(state)
    tried = [{"answer": c["answer"], "passed": checks.get(c["id"], {}).get("passed"),
              "details": checks.get(c["id"], {}).get("details")}
             for c in state.get("candidates", []) if c["status"] == "ok"]
    result = {"tried": tried, "description": subtask["description"], "id": sid,"answer": outcome.get("answer"), "text": outcome.get("text", ""),
              "verified": bool(outcome.get("verified")), "verified_by": outcome.get("verified_by"),
              "confidence": outcome.get("confidence", 0.0), "stop_reason": outcome.get("stop_reason", ""),
              "candidates": len(state.get("candidates", [])), "allocated": tokens, **budget.spent.counts(),
              "samples": sum(c["status"] == "ok" for c in state.get("candidates", [])),
              "kind": subtask["kind"], "difficulty": subtask["difficulty"], "model": solve_ctx.gateway.model,
              "checked": checker is not None, "prompt": prompt, "memory_ids": state.get("memory_ids") or [],
              "memory_channel": (state.get("memory") or {}).get("channel"),
              "judge": judge_counts(state.get("verdicts", []))}
    if ctx.on_subtask:
        ctx.on_subtask("finish", {"subtask": subtask, "result": result})
    emit(runtime, "subtask", subtask=sid, result={k: result[k] for k in ("answer", "verified", "tokens")})
    return {"results": {sid: result}, "spend": [{"node": f"subtask {sid}", "role": "solver", **budget.spent.counts()}]}


async def one_call_tokens(ctx: TaskContext, prompt: str, allocation: dict) -> int:
    """What one solver call on a subtask's prompt needs: the prompt (as the model counts it), a minimal reply."""
    from seasoned.agents import solver
    from seasoned.models.providers import estimate_prompt_tokens

    messages = solver.build_messages(prompt, system=ctx.solve.system,
                                     answer_format=None if ctx.stages else ctx.solve.answer_format)
    model = allocation.get("model") or ctx.solve.gateway.model
    counted = await estimate_prompt_tokens(model.split("|")[0].strip(), messages)
    rough = sum(len(str(m.get("content", ""))) for m in messages) / 3  # what the solve graph's sampler assumes
    return int(max(counted, rough)) + MIN_SAMPLE_TOKENS + 1


def _given_up(subtask: dict, allocation: dict, runtime: Runtime[TaskContext]) -> dict:
    """A subtask the allocation gave up on before sampling: no tokens spent, the reason recorded."""
    ctx = runtime.context
    sid = subtask["id"]
    result = {"tried": [], "description": subtask["description"], "id": sid, "answer": None, "text": "",
              "verified": False, "verified_by": None, "confidence": 0.0, "stop_reason": allocation["reason"],
              "candidates": 0, "samples": 0, "allocated": 0, "tokens": 0, "usd": 0.0, "calls": 0,
              "kind": subtask["kind"], "difficulty": subtask["difficulty"],
              "model": allocation.get("model") or ctx.solve.gateway.model, "checked": ctx.stage_checker is not None,
              "given_up": True}
    if ctx.on_subtask:
        ctx.on_subtask("finish", {"subtask": subtask, "result": result})
    emit(runtime, "subtask", subtask=sid, result={k: result[k] for k in ("answer", "verified", "tokens")})
    return {"results": {sid: result}, "spend": [{"node": f"subtask {sid}", "role": "solver", "tokens": 0,
                                                  "usd": 0.0, "calls": 0}]}


def _with_model(gateway, model: str):
    """The same gateway (ledger, limits) on another model."""
    from seasoned.models import Gateway

    return Gateway(model, ledger=gateway.ledger, max_concurrency=gateway.max_concurrency, retry=gateway.retry,
                   default_max_tokens=gateway.default_max_tokens)


async def aggregate_node(state: TaskState, runtime: Runtime[TaskContext]) -> dict:
    ctx = runtime.context
    subtasks = state.get("subtasks", [])
    results = state.get("results", {})
    needed = {d for s in subtasks for d in s["depends_on"]}
    sinks = [s["id"] for s in subtasks if s["id"] not in needed] or [s["id"] for s in subtasks][-1:]
    if len(sinks) == 1:
        final_text = results.get(sinks[0], {}).get("text", "")
    else:  # independent results: one canonical answer line each, in plan order
        final_text = "\n".join(f"Answer: {results.get(sid, {}).get('answer')}" for sid in sinks)
    answer = results.get(sinks[-1], {}).get("answer") if sinks else None
    verified, verified_by, details, reward = False, None, "", None
    if ctx.final_checker is not None and ctx.solve.strategy.use_env_check:
        verdict = await ctx.final_checker(final_text)
        verified, details, reward = bool(verdict.passed), verdict.details, float(verdict.reward)
        verified_by = ctx.final_checker_name if verified else None
    elif results and all(r.get("verified") for r in results.values()):
        verified, verified_by = True, "subtasks"
    final = {"answer": answer, "text": final_text, "verified": verified, "verified_by": verified_by, "reward": reward,
             "details": details if isinstance(details, (str, dict)) else repr(details),
             "checked": ctx.final_checker is not None}
    emit(runtime, "final", final={k: final[k] for k in ("answer", "verified", "verified_by")})
    return {"final": final}


async def curate_node(state: TaskState, runtime: Runtime[TaskContext]) -> dict:
    ctx = runtime.context
    if ctx.curator is None:
        return {"curation": {"skipped": "no memory"}}
    report = await ctx.curator(dict(state))
    emit(runtime, "curation", report=report)
    return {"curation": report}


def build_task_graph() -> StateGraph:
    graph = StateGraph(TaskState, context_schema=TaskContext)
    graph.add_node("retrieve", retrieve_node)
    graph.add_node("plan", plan_node)
    graph.add_node("allocate", allocate_node)
    graph.add_node("solve_subtask", solve_subtask_node)
    graph.add_node("aggregate", aggregate_node)
    graph.add_node("curate", curate_node)
    graph.add_edge(START, "retrieve")
    graph.add_edge("retrieve", "plan")
    graph.add_edge("plan", "allocate")
    graph.add_conditional_edges("allocate", dispatch, ["solve_subtask", "aggregate"])
    graph.add_edge("solve_subtask", "allocate")
    graph.add_edge("aggregate", "curate")
    graph.add_edge("curate", END)
    return graph
