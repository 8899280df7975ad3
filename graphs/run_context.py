"""The runtime contexts of one run, wired from an agent's parts.

A ``SolveContext`` (one question) or a ``TaskContext`` (a multi-stage task, around a solve context used
as its subtasks' template) carries what the graphs need besides their state: the gateway, the budget,
the checker (an environment's check, or the user's), the actor for interactive environments and tools,
the memory context builder and the learned give-up rule. Contexts are not checkpointed: a resumed run
gets them rebuilt from the same parts.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from seasoned.models import Budget

from .allocation import make_policy
from .checking import as_checker
from .context import ContextBuilder
from .curate import curate, single_stage_kind, task_trajectory
from .solve import ActorOutput, SolveContext
from .stopping import stopping_for
from .strategy import StrategyConfig
from .task import TaskContext
from .watch import Watched, stream_writer, turn_writer

if TYPE_CHECKING:
    from .agent import Agent

GIVE_UP_RATE = 0.5  # single questions: the give-up rule's price makes a stream spend half of n samples' worth


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
                                        channel=agent.memory_channel, seed=context.strategy.seed)
        if multi_stage is None:
            multi_stage = is_multi_stage(agent, task)
        if not multi_stage:  # multi-stage subtasks get theirs from the allocation
            context.stopping = learned_stopping(agent, task, context)
    return context


def learned_stopping(agent: Agent, task: Any, context: SolveContext) -> dict | None:
    """The learned give-up rule for a single question (``adaptive`` with a check): the Beta prior of the
    question's kind and model from this namespace's allocation records, priced so that a stream of such
    questions spends on average ``GIVE_UP_RATE`` of what drawing all n samples (or the run's token cap)
    would. None while the kind has too few records, or when the rule does not apply."""
    cfg = context.strategy
    if cfg.name != "adaptive" or not context.can_check:
        return None
    records = agent.memory.allocations(namespace=context.namespace)
    cap = context.budget.max_tokens
    return stopping_for(records, single_stage_kind(task), math.inf if cap is None else cap * GIVE_UP_RATE,
                        model=agent.gateway.model, wave=max(1, cfg.wave_size), max_samples=cfg.n,
                        rate_samples=cfg.n * GIVE_UP_RATE)


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
