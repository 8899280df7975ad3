"""The runtime contexts of one run, wired from an agent's parts.

A ``SolveContext`` (one question) or a ``TaskContext`` (a multi-stage task, around a solve context used
as its subtasks' template) carries what the graphs need besides their state: the gateway, the budget,
the checker (an environment's check, or the user's), the actor for interactive environments and tools,
the memory context builder and the give-up rule. Contexts are not checkpointed: a resumed run gets them
rebuilt from the same parts.

The give-up rule of a single question (``adaptive`` with a check, ``Agent(give_up=True)``, the default) is
learned from the agent's attempt log (``runs.attempts``: one record per checked question, kept with the runs),
not from memory: it is the same rule whether or not the agent has memory, and an agent without memory has
it too. ``record_attempt`` writes the record when a run ends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from seasoned.errors import SeasonedError
from seasoned.models import Budget
from seasoned.settings import settings

from .allocation import make_policy
from .checking import as_checker
from .context import COLD_SAMPLES, ContextBuilder, FixedExamples
from .curate import curate, single_stage_kind, task_trajectory
from .solve import ActorOutput, SolveContext
from .state import with_answer_keys
from .stopping import MAX_SAMPLES, give_up_rule
from .strategy import StrategyConfig
from .success_model import sample_pattern
from .task import TaskContext
from .watch import Watched, stream_writer, turn_writer

if TYPE_CHECKING:
    from .agent import Agent
    from .results import RunResult


def budget_from(spec: Budget | dict | int | None, name: str) -> Budget:
    """A fresh per-run budget: a child of a shared ``Budget``, or one built from caps."""
    if isinstance(spec, Budget):
        return spec.child(name=name)
    if isinstance(spec, int):
        return Budget(max_tokens=spec, name=name)
    return Budget(**(spec or {}), name=name)


def budget_caps(spec: Budget | dict | int | None) -> dict:
    if isinstance(spec, Budget):
        return {k: getattr(spec, k) for k in ("max_tokens", "max_usd", "max_calls", "max_seconds")}
    if isinstance(spec, int):
        return {"max_tokens": spec}
    return dict(spec or {})


def is_multi_stage(agent: Agent, task: Any, plan: bool | None = None) -> bool:
    """Multi-stage (plan, allocate, solve subtasks) when asked, or when the task brings its own stages."""
    choice = agent.plan if plan is None else plan
    return bool(getattr(task, "stages", None)) if choice is None else choice


def solve_context(agent: Agent, task: Any = None, *, env: Any = None, budget: Budget | None = None,
                  strategy: StrategyConfig | None = None, checker: Any = None,
                  namespace: str | None = None, multi_stage: bool | None = None) -> SolveContext:
    """The runtime context of one solve: checker/actor from the environment, memory retrieval.
    ``multi_stage``: whether it is the template of a multi-stage run's subtasks (default: as the task says)."""
    namespace = namespace or agent.namespace
    context = SolveContext(gateway=agent.gateway, budget=budget or budget_from(agent.budget, "run"),
                           strategy=strategy or agent.strategy, namespace=namespace, stats=agent.stats,
                           system=agent.system_prompt)
    if env is not None and task is not None and not isinstance(task, str):
        context.checker_name = f"env:{env.name}"
        context.extract = env.extract_answer
        context.answer_format = None  # the environment's prompt says how to answer
        if env.interactive:
            context.actor = actor_for(agent, env, task)
        else:
            context.checker = lambda text: env.verify(task, text)
    elif agent.toolbox is not None:  # the application's tools: answer by acting
        text = task if isinstance(task, str) else getattr(task, "prompt", str(task))
        context.actor = actor_for(agent, agent.toolbox, agent.toolbox.task(text, agent.system_prompt))
        context.extract, context.answer_format = agent.toolbox.extract_answer, None
    checker = as_checker(checker) or (agent.checker if env is None else None)
    if checker is not None:
        context.checker = checker
        context.checker_name = getattr(checker, "name", "env:checker")
    if agent.memory is not None:
        scope = getattr(env, "name", None) or "general"
        context.memory = ContextBuilder(agent.memory, namespace, agent.gateway.model, scope,
                                        channel=agent.memory_channel, seed=context.strategy.seed,
                                        examples=agent.examples)
    elif agent.examples:
        context.memory = FixedExamples(agent.examples)
    if multi_stage is None:
        multi_stage = is_multi_stage(agent, task)
    if not multi_stage:  # multi-stage subtasks get theirs from the allocation
        context.stopping = single_give_up(agent, task, context)
        cold_start(context)  # after the give-up rule: the same rule with memory or without
    return context


def cold_start(context: SolveContext) -> bool:
    """While memory has too few demonstrations of this scope to show (``ContextBuilder.cold``), a checked
    ``single`` or ``adaptive`` question draws up to ``COLD_SAMPLES`` samples, first-finish: the first
    verified replies lift every later question (they become its demonstrations). The give-up rule is the
    strategy's own (none for ``single``). True when the context was switched to it."""
    cfg = context.strategy
    if (context.memory is None or not context.can_check or cfg.name not in ("single", "adaptive")
            or not context.memory.cold()):
        return False
    samples = max(COLD_SAMPLES, cfg.n if cfg.name == "adaptive" else 1)
    context.strategy = cfg.model_copy(update={"name": "adaptive", "n": samples})
    context.memory.cold_samples = samples
    return True


def solve_value_of(value: float | None) -> float:
    """What a verified answer is worth, in tokens: ``value``, else the ``SEASONED_SOLVE_VALUE`` setting."""
    chosen = settings().solve_value if value is None else value
    if not isinstance(chosen, (int, float)) or isinstance(chosen, bool) or not chosen > 0:
        raise SeasonedError(f"solve_value must be a positive number of tokens, not {chosen!r}")
    return float(chosen)


def single_give_up(agent: Agent, task: Any, context: SolveContext) -> dict | None:
    """The give-up rule of a single question (``adaptive`` with a check, when the agent gives up at all):
    the posterior of the question's kind from the agent's attempt records (this namespace, model and kind;
    any number of them, none included), and what a verified answer is worth (``agent.solve_value`` tokens)."""
    cfg = context.strategy
    if not agent.give_up or cfg.name != "adaptive" or not context.can_check:
        return None
    records = agent.attempts.records(context.namespace, agent.gateway.model, attempt_kind(task))
    # the rule's horizon is not the strategy's n (decide stops at n; a cold start may raise it)
    return give_up_rule(records, agent.solve_value, wave=max(1, cfg.wave_size), max_samples=max(cfg.n, MAX_SAMPLES),
                        tokens=cfg.max_tokens)


def attempt_kind(task: Any) -> str:
    """Which questions an attempt record speaks for: the environment's name (``general`` without one), and the
    task's difficulty level when it declares one (levels of one environment succeed at different rates)."""
    level = getattr(task, "difficulty", None)
    return single_stage_kind(task) + (f"/d{level}" if isinstance(level, int) else "")


def record_attempt(agent: Agent, result: RunResult, context: SolveContext, task: Any) -> None:
    """A checked single question's attempt (samples drawn, how many verified, their pattern, tokens) into the
    agent's attempt log; a run that drew no sample (answered from the cache) leaves none."""
    if not context.can_check:
        return
    drawn = [c for c in result.candidates if c["status"] == "ok" and c["kind"] != "cached"]
    if not drawn:
        return
    checks = {v["candidate_id"]: v for v in result.verdicts if v["verifier"] == context.checker_name}
    verified = [bool(checks.get(c["id"], {}).get("passed")) for c in drawn]
    keys = [c["answer_key"] for c in with_answer_keys(drawn)]
    agent.attempts.record(context.namespace, agent.gateway.model, attempt_kind(task), samples=len(drawn),
                          successes=sum(verified), pattern=sample_pattern(keys, verified), run_id=result.run_id,
                          tokens=sum(int(c.get("tokens", 0)) for c in drawn))


def actor_for(agent: Agent, env: Any, task: Any):
    """One acting episode per candidate (interactive environments, the application's tools)."""
    from seasoned.agents.actor import run_actor

    async def act(memory: dict, budget: Budget, seed: int | None) -> ActorOutput:
        memory = memory or {}
        write = stream_writer()
        attempt = await run_actor(Watched(env, write), task, agent.gateway, budget=budget,
                                  max_steps=agent.max_steps, memory_context=memory.get("notes") or "",
                                  demonstrations=memory.get("demos") or [], on_turn=turn_writer(write, task))
        trajectory = [getattr(step, "__dict__", step) for step in getattr(attempt, "steps", [])]
        return ActorOutput(text=attempt.answer or "", verdict=attempt.verdict, trajectory=trajectory)

    return act


def task_context(agent: Agent, task: Any, solve: SolveContext, *, env: Any = None, run_id: str = "",
                 allocation: Any = None, seed: int = 0) -> TaskContext:
    """The runtime context of a multi-stage run, around a solve context used as the subtasks' template."""
    namespace = solve.namespace
    memory = agent.memory
    records = (lambda: memory.allocations(namespace=namespace)) if memory is not None else None
    chosen = allocation or agent.allocation
    policy = make_policy(chosen, records=records, seed=seed) if isinstance(chosen, str) else chosen
    context = TaskContext(solve=solve, budget=solve.budget, policy=policy, models=agent.models,
                          solve_graph=agent.graph)
    if env is not None and not isinstance(task, str):
        context.stages = list(task.stages or []) or None
        context.stages_self_contained = bool(getattr(env, "stages_self_contained", False))
        context.final_checker_name = f"env:{env.name}"
        if not env.interactive:
            context.final_checker = lambda text: env.verify(task, text)
        if hasattr(env, "verify_stage") and context.stages:
            context.stage_checker = lambda index, text: env.verify_stage(task, index, text)
    elif solve.checker is not None:
        context.final_checker, context.final_checker_name = solve.checker, solve.checker_name
    if memory is not None and agent.curate:
        async def curate_run(state: dict) -> dict:
            trajectory = task_trajectory(state, run_id)
            trajectory.update(scope=getattr(env, "name", None) or "general", checker=context.final_checker_name)
            return await curate(memory, trajectory, namespace, gateway=agent.gateway,
                                curator_model=agent.curator_model)

        context.curator = curate_run
    return context


def run_contexts(agent: Agent, task: Any, env: Any, budget: Budget, strategy: StrategyConfig, checker: Any,
                 namespace: str | None, run_id: str, options: dict,
                 allocation: Any = None) -> SolveContext | TaskContext:
    """The context a run's graph is driven with: a solve context, or a task context around one."""
    solve = solve_context(agent, task, env=env, budget=budget, strategy=strategy, checker=checker,
                          namespace=namespace, multi_stage=bool(options.get("multi_stage")))
    if not options.get("multi_stage"):
        return solve
    if allocation is None:  # resuming: the recorded policy name, or this agent's own policy object
        allocation = options.get("allocation") or agent.allocation
        if not isinstance(agent.allocation, str) and agent.allocation.name == allocation:
            allocation = agent.allocation
    return task_context(agent, task, solve, env=env, run_id=run_id, allocation=allocation, seed=strategy.seed or 0)
