"""The Python API: ``Agent(model=..., memory=..., budget=..., strategy=...)``.

    from seasoned.graphs import Agent
    agent = Agent("local/smollm2-135m", strategy="adaptive", budget={"max_tokens": 4000})
    result = agent.run("What is 17 + 25?")            # or: await agent.arun(...), agent.stream(...)
    result.answer, result.verified, result.spend.tokens, result.run_id

With an environment the environment's own check verifies candidates (and interactive environments
are solved by acting, one episode per candidate)::

    env = get_env("arithmetic"); task = env.tasks(n=1)[0]
    agent.run(task, env=env)

Every run is checkpointed (LangGraph SQLite saver under ``SEASONED_HOME``) and, unless
``record=False``, recorded in SQL with its candidates, verdicts, decisions and calls; ``resume(run_id)``
continues a killed run without redoing finished samples. ``agent.graph`` is the compiled solve graph,
to mount in a graph of your own (give it a ``SolveContext``: ``agent.context_for(...)``).

The Agent only wires and drives: the runtime contexts are built in ``run_context``, results in
``results``, curation and feedback in ``curate``, the run record in the run store.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from seasoned.errors import RunNotResumable
from seasoned.memory.channels import CHANNELS
from seasoned.models import Budget, Gateway, SeasonedError, Spend, call_tags, connection_params
from seasoned.models.preflight import preflight
from seasoned.models.sync import iterate_sync, run_sync
from seasoned.runs.attempts import AttemptLog
from seasoned.runs.verifier_stats import VerifierStats

from . import run_context
from .allocation import AllocationPolicy, make_policy
from .checking import as_checker
from .checkpoints import CheckpointedGraphs, cut_short_step
from .context import as_examples
from .curate import apply_feedback, credit_items, curate, env_checked, solve_trajectory
from .protocols import Checker, Environment, Memory, TaskInput
from .results import Event, RunResult, build_result, event_of, run_spend
from .solve import SolveContext, build_solve_graph
from .strategy import StrategyConfig, parse_strategy
from .subgraph import AgentInput, AgentOutput, agent_subgraph
from .task import TaskContext, build_task_graph
from .toolbox import Toolbox

__all__ = ["Agent", "AgentInput", "AgentOutput", "Event", "RunNotResumable", "RunResult"]

RECURSION_LIMIT = 200
STOP_WAIT_S = 1.5  # how long a cancelled ``stream`` waits for the run to record itself as interrupted
RECORDED_EVENTS = ("decision", "memory", "plan", "allocation", "turn", "episode")


class Agent:
    def __init__(self, model: str | None = None, *, memory: Memory | None = None,
                 budget: Budget | dict | int | None = None, strategy: str | StrategyConfig | dict = "adaptive",
                 namespace: str = "default", gateway: Gateway | None = None, record: bool = True,
                 db_url: str | None = None, checkpoint: bool = True, max_steps: int = 20,
                 allocation: str | AllocationPolicy = "difficulty", plan: bool | None = None,
                 models: list[str] | None = None, curate: bool = True, curator_model: str | None = None,
                 memory_channel: str = "auto", api_base: str | None = None, api_key: str | None = None,
                 system_prompt: str | None = None, tools: list[Any] | None = None, checker: Checker | None = None,
                 store: Any = None, stats: VerifierStats | None = None, give_up: bool = True,
                 solve_value: float | None = None, attempts: AttemptLog | None = None,
                 examples: list[dict] | None = None):
        """``api_base``/``api_key``: an OpenAI-compatible server (or a provider's key) for ``model``.
        ``system_prompt``: the solver's system message. ``tools``: plain Python callables (schema from
        type hints and docstrings), ``python_tool()`` (model-written code, run in the sandbox) or
        ``McpServer`` objects; with tools the agent answers by acting. ``checker``: ``fn(text)``, sync
        or async, returning a bool, a reward in 0..1 or a Verdict (see ``graphs.checking``).
        ``store``/``stats``: a run store and verifier stats to share (default: opened from ``db_url``).
        ``give_up``: ``adaptive`` with a check stops a question once one more sample is not worth its tokens
        (``graphs.stopping``), learned from ``attempts`` (default: the run database's attempt log; in memory
        with ``record=False``); ``solve_value``: what a verified answer is worth, in tokens (default
        ``SEASONED_SOLVE_VALUE``). ``examples``: hand-written demonstrations (``[{"task", "reply"}]``) given
        as earlier chat turns: a fixed few-shot prompt without memory; with memory, shown until the namespace
        has verified demonstrations of its own."""
        connection = connection_params(api_base, api_key)
        if gateway is not None and connection:
            raise SeasonedError("give api_base/api_key to the Gateway you pass, or pass no gateway")
        if memory_channel != "auto" and memory_channel not in CHANNELS:
            raise SeasonedError(f"memory_channel must be 'auto' or one of {', '.join(CHANNELS)}, "
                                f"not {memory_channel!r}")
        if isinstance(allocation, str):
            make_policy(allocation)  # a bad name fails here, not mid-run
        self.gateway = gateway or Gateway(model, max_concurrency=32, **connection)
        self.model = self.gateway.model if model is None else model
        self.memory, self.budget, self.namespace = memory, budget, namespace
        self.strategy = parse_strategy(strategy)
        self.system_prompt, self.checker = system_prompt, as_checker(checker)
        self.toolbox = Toolbox(tools) if tools else None
        self.max_steps, self.allocation, self.plan, self.models = max_steps, allocation, plan, models
        self.curate, self.curator_model, self.memory_channel = curate, curator_model, memory_channel
        self.db_url = db_url
        if store is None and record:
            from seasoned.runs import RunStore

            store = RunStore.open(db_url)
        self.store = store
        self._detach_ledger = None
        self._attach_ledger()
        self.stats = stats or (VerifierStats.open(db_url) if record else VerifierStats())
        self.give_up, self.solve_value = give_up, run_context.solve_value_of(solve_value)
        try:
            as_examples(examples or [])  # a malformed example fails here, not mid-run
        except (TypeError, ValueError, AttributeError) as exc:
            raise SeasonedError(f"examples must be a list of {{'task': ..., 'reply': ...}} dicts: {exc}") from None
        self.examples = [dict(example) for example in examples or []]
        self.attempts = attempts or AttemptLog(getattr(store, "db", None))
        self._builders = {"solve": build_solve_graph(), "task": build_task_graph()}
        self.graph = self._builders["solve"].compile()  # no checkpointer: a parent graph's applies when mounted
        self._checkpointed = CheckpointedGraphs(self._builders, checkpoint, db_url=db_url)

    def _attach_ledger(self) -> None:
        """The run store records this agent's calls from its gateway's ledger (until ``close``)."""
        if self.store is not None and self._detach_ledger is None:
            self._detach_ledger = self.store.attach(self.gateway.ledger)

    def as_subgraph(self, **run_options: Any):
        """The agent as a node of another graph: input ``{"task": str}``, output ``{"answer", "verified",
        "run_id", "tokens"}``. Each call is a full, recorded run; ``run_options`` go to every ``arun``."""
        return agent_subgraph(self, **run_options)

    def context_for(self, task: TaskInput | None = None, *, env: Environment | None = None, budget: Budget | None = None,
                    strategy: StrategyConfig | None = None, checker: Checker | None = None,
                    namespace: str | None = None) -> SolveContext:
        """The runtime context of one solve (to drive ``agent.graph`` yourself)."""
        return run_context.solve_context(self, task, env=env, budget=budget, strategy=strategy, checker=checker,
                                         namespace=namespace)

    def is_multi_stage(self, task: TaskInput, plan: bool | None = None) -> bool:
        return run_context.is_multi_stage(self, task, plan)

    # --- running -------------------------------------------------------------------------------------
    async def astream(self, task: TaskInput, *, env: Environment | None = None, budget: Budget | dict | int | None = None,
                      strategy: str | StrategyConfig | None = None, run_id: str | None = None,
                      checker: Checker | None = None, namespace: str | None = None, allocation: str | None = None,
                      plan: bool | None = None) -> AsyncIterator[Event]:
        """Run and yield progress events; the last event is ``result`` with the ``RunResult``."""
        run_id = run_id or uuid.uuid4().hex[:16]
        self._attach_ledger()
        config = parse_strategy(strategy) if strategy is not None else self.strategy
        spec = budget if budget is not None else self.budget
        text = task if isinstance(task, str) else task.prompt
        multi = self.is_multi_stage(task, plan)
        chosen = allocation or self.allocation
        options = {"strategy": config.model_dump(), "multi_stage": multi,
                   "allocation": (chosen if isinstance(chosen, str) else chosen.name) if multi else None}
        fresh = True
        if self.store is not None:
            fresh = self.store.start_run(run_id, task=text, model=self.gateway.model, strategy=config.label,
                                         namespace=namespace or self.namespace, budget=run_context.budget_caps(spec),
                                         env=getattr(env, "name", None), task_id=getattr(task, "id", None),
                                         options=options)
        context = run_context.run_contexts(self, task, env, run_context.budget_from(spec, f"run {run_id}"), config,
                                           checker, namespace, run_id, options, chosen)
        initial = {"task": text} if multi else {"task": text, "subtask": "main"}
        async for event in self._drive(run_id, initial, context, task, fresh=fresh):
            yield event

    async def astream_resume(self, run_id: str, *, env: Environment | None = None,
                             task: TaskInput | None = None) -> AsyncIterator[Event]:
        """``aresume`` as events; ``run_id`` may be any unique prefix of the id (as progress lines show)."""
        record = None
        self._attach_ledger()
        if self.store is not None:
            run_id = self.store.resolve(run_id)
            record = self.store.get_run(run_id).run
        options = (getattr(record, "options", None) or {}) if record else {}
        graph = await self._checkpointed.get("task" if options.get("multi_stage") else "solve")
        snapshot = await graph.aget_state({"configurable": {"thread_id": run_id}})
        if not snapshot.values:
            raise RunNotResumable(f"run {run_id!r} has no checkpoint to resume from")
        strategy = parse_strategy(options["strategy"]) if options.get("strategy") else self.strategy
        caps = getattr(record, "budget", None) or run_context.budget_caps(self.budget)
        run_budget = Budget(**caps, name=f"run {run_id}")
        spent = snapshot.values.get("spend", [])
        run_budget.charge(sum(s["tokens"] for s in spent), sum(s["usd"] for s in spent),
                          sum(s["calls"] for s in spent))
        if env is not None and task is None and record is not None and getattr(record, "task_id", None):
            task = env.get_task(record.task_id)
        context = run_context.run_contexts(self, task, env, run_budget, strategy, None,
                                           getattr(record, "namespace", None), run_id, options)
        if self.store is not None:
            solve = context.solve if isinstance(context, TaskContext) else context
            # a run cut off before its first step has only its input checkpoint: no "task" value yet
            task_text = snapshot.values.get("task", getattr(record, "task", ""))
            self.store.start_run(run_id, task=task_text, model=self.gateway.model,
                                 strategy=strategy.label, namespace=solve.namespace, budget=caps)
        async for event in self._drive(run_id, None, context, task, start_from=cut_short_step(snapshot)):
            yield event

    async def _drive(self, run_id: str, initial: dict | None, context: SolveContext | TaskContext,
                     task: TaskInput, start_from: dict | None = None, fresh: bool = False) -> AsyncIterator[Event]:
        """Run (or continue) the run's graph; ``start_from``: a checkpoint's config to fork from instead.
        ``fresh``: a new run, whose calls are all in this gateway's ledger (a resumed one's are in the store)."""
        kind = "task" if isinstance(context, TaskContext) else "solve"
        solve = context.solve if isinstance(context, TaskContext) else context
        graph = await self._checkpointed.get(kind)
        config = {"configurable": {"thread_id": run_id}, "recursion_limit": RECURSION_LIMIT}
        started = time.perf_counter()
        try:
            await preflight(self.gateway, [solve.strategy.judge_model, *(self.models or []),
                                           self.curator_model if self.memory is not None else None])
            with call_tags(run_id=run_id):
                async for mode, chunk in graph.astream(initial, {**config, **(start_from or {})}, context=context,
                                                       stream_mode=["updates", "custom"]):
                    event = event_of(run_id, mode, chunk)
                    if event is not None:
                        if self.store is not None and event.kind in RECORDED_EVENTS:
                            self.store.record_event(run_id, event.kind, event.data, defer=True)
                        yield event
                values = (await graph.aget_state(config)).values
                result = build_result(run_id, values, solve, self.gateway.model, self._spend(run_id, started, fresh))
                if kind == "solve":
                    run_context.record_attempt(self, result, solve, task)
                if kind == "solve" and self.memory is not None and self.curate:
                    result.curation = await curate(self.memory, solve_trajectory(result, solve, task),
                                                   solve.namespace, gateway=self.gateway,
                                                   curator_model=self.curator_model)
                    result.spend = self._spend(run_id, started, fresh)
        except (asyncio.CancelledError, KeyboardInterrupt):  # Ctrl-C, or the caller stopped listening
            self.mark_interrupted(run_id, started)
            raise
        except Exception as exc:
            if self.store is not None:
                self.store.finish_run(run_id, status="failed", answer=None, verified=False, confidence=None,
                                      spend=self._spend(run_id, started).model_dump(), error=str(exc))
            raise
        known = env_checked(result, solve)  # an environment's check is ground truth: credit memory now
        if self.memory is not None and known:
            credit_items(self.memory, result, solve.namespace)
        if self.store is not None:
            self.store.record_result(result, namespace=solve.namespace, outcome_recorded=known)
        yield Event("result", run_id, data={"result": result})

    def mark_interrupted(self, run_id: str, started: float | None = None) -> None:
        """Record a run stopped from outside as ``interrupted``, with what it spent so far (idempotent;
        ``seasoned run --resume ID`` continues it)."""
        if self.store is None:
            return
        try:
            if started is None:  # from outside the run: only if it did not record itself already
                record = self.store.get_run(run_id).run
                if record.status != "running":
                    return
                started = time.perf_counter() - record.seconds
            self.store.finish_run(run_id, status="interrupted", answer=None, verified=False, confidence=None,
                                  spend=self._spend(run_id, started).model_dump(), error="interrupted")
        except SeasonedError:
            pass  # no record to mark (it was never started)

    def _spend(self, run_id: str, started: float, fresh: bool = False) -> Spend:
        return run_spend(None if fresh else self.store, self.gateway.ledger, run_id, started)

    def feedback(self, run_id: str, success: bool, comment: str | None = None) -> dict:
        """An outcome that arrived after the run (e.g. a user's verdict): stored with the run, credited to
        the memory items the run used, and to the verifier that accepted its answer (its precision)."""
        if self.store is None:
            raise SeasonedError("feedback needs recorded runs (Agent(record=True))")
        return apply_feedback(self.store, self.memory, self.stats, run_id, success, comment, self.namespace)

    async def arun(self, task: TaskInput, **kwargs: Any) -> RunResult:
        result = None
        async for event in self.astream(task, **kwargs):
            if event.kind == "result":
                result = event.data["result"]
        assert result is not None
        return result

    async def aresume(self, run_id: str, *, env: Environment | None = None, task: TaskInput | None = None) -> RunResult:
        """Continue a killed run from its last checkpoint (finished samples are not redone)."""
        events = [event async for event in self.astream_resume(run_id, env=env, task=task)]
        return events[-1].data["result"]

    def run(self, task: TaskInput, **kwargs: Any) -> RunResult:
        return run_sync(self.arun(task, **kwargs))

    def resume(self, run_id: str, **kwargs: Any) -> RunResult:
        return run_sync(self.aresume(run_id, **kwargs))

    def stream(self, task: TaskInput, **kwargs: Any) -> Iterator[Event]:
        """Synchronous ``astream``: events as they happen. Leaving the loop early (or Ctrl-C) cancels the
        run, which is then recorded as interrupted."""
        return iterate_sync(lambda: self.astream(task, **kwargs), STOP_WAIT_S)

    def stream_resume(self, run_id: str, **kwargs: Any) -> Iterator[Event]:
        """Synchronous ``astream_resume``."""
        return iterate_sync(lambda: self.astream_resume(run_id, **kwargs), STOP_WAIT_S)

    async def aclose(self) -> None:
        """Close the checkpoint connection opened on this loop and the MCP servers, flush the run store
        and detach it from the gateway's ledger."""
        if self.toolbox is not None:
            await self.toolbox.aclose()
        await self._checkpointed.aclose()
        if self.store is not None:
            self.store.flush()
        if self._detach_ledger is not None:
            self._detach_ledger()
            self._detach_ledger = None

    def wait_for_training(self, timeout: float | None = None) -> bool:
        """Wait for the adapter trainings started in the background after curation (``SEASONED_TRAIN_EVERY``):
        for benchmarks and tests; a run never waits for them. True when none is left running."""
        from seasoned.memory.training import wait_for_training

        return wait_for_training(timeout)

    def close(self) -> None:
        """``aclose`` for the synchronous API (``run``/``stream``/``resume`` use one background loop)."""
        run_sync(self.aclose())
