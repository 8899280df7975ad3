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
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, TypedDict

from pydantic import BaseModel, Field
from seasoned.memory.channels import CHANNELS
from seasoned.models import Budget, Gateway, SeasonedError, call_tags, seasoned_home
from seasoned.models.sync import _background_loop as background_loop
from seasoned.models.sync import run_sync

from .allocation import AllocationPolicy, make_policy
from .checking import as_checker
from .context import ContextBuilder, demonstration_item
from .solve import ActorOutput, SolveContext, build_solve_graph
from .stopping import stopping_for
from .strategy import StrategyConfig, parse_strategy
from .task import TaskContext, build_task_graph
from .toolbox import Toolbox
from seasoned.runs.verifier_stats import VerifierStats

RECURSION_LIMIT = 200
GIVE_UP_RATE = 0.5  # single questions: the give-up rule's price makes a stream spend half of n samples' worth
STOP_WAIT_S = 1.5  # how long a cancelled ``stream`` waits for the run to record itself as interrupted


class RunSpend(BaseModel):
    tokens: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usd: float = 0.0
    calls: int = 0
    seconds: float = 0.0
    by_role: dict[str, int] = Field(default_factory=dict)


class RunResult(BaseModel):
    """What a run produced and what it cost."""

    run_id: str
    task: str
    answer: str | None
    text: str = ""
    verified: bool = False
    confidence: float = 0.0
    verified_by: str | None = None
    reward: float | None = None  # the environment's reward for the chosen answer, when it judged it
    stop_reason: str = ""
    strategy: str = ""
    model: str = ""
    candidates: list[dict] = Field(default_factory=list)
    verdicts: list[dict] = Field(default_factory=list)
    decisions: list[dict] = Field(default_factory=list)
    memory_ids: list[str] = Field(default_factory=list)
    memory: dict | None = None  # channel chosen, why, demonstrations used, cache hit
    subtasks: list[dict] = Field(default_factory=list)
    plan_source: str | None = None
    curation: dict | None = None
    spend: RunSpend = Field(default_factory=RunSpend)


@dataclass
class Event:
    """A progress event: ``kind`` is node (a node finished), candidate, verdict, decision, memory or result."""

    kind: str
    run_id: str
    node: str | None = None
    data: dict = field(default_factory=dict)


class AgentInput(TypedDict):
    """What ``Agent.as_subgraph()`` reads from its parent's state."""

    task: str


class AgentOutput(TypedDict, total=False):
    """What ``Agent.as_subgraph()`` writes back: the answer, whether it was verified, the run to inspect."""

    answer: str | None
    verified: bool
    run_id: str
    tokens: int


class AgentState(AgentInput, AgentOutput):
    pass


class RunNotResumable(SeasonedError):
    pass


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


class Agent:
    def __init__(
        self,
        model: str | None = None,
        *,
        memory: Any = None,
        budget: Budget | dict | int | None = None,
        strategy: str | StrategyConfig | dict = "adaptive",
        namespace: str = "default",
        gateway: Gateway | None = None,
        record: bool = True,
        db_url: str | None = None,
        checkpoint: bool = True,
        max_steps: int = 20,
        allocation: str | AllocationPolicy = "difficulty",
        plan: bool | None = None,
        models: list[str] | None = None,
        curate: bool = True,
        curator_model: str | None = None,
        memory_channel: str = "auto",
        api_base: str | None = None,
        api_key: str | None = None,
        system_prompt: str | None = None,
        tools: list[Any] | None = None,
        checker: Any = None,
    ):
        """``api_base``/``api_key``: an OpenAI-compatible server (or a provider's key) for ``model``.
        ``system_prompt``: the solver's system message. ``tools``: plain Python callables (schema from
        type hints and docstrings), ``python_tool()`` (model-written code, run in the sandbox) or
        ``McpServer`` objects; with tools the agent answers by acting. ``checker``: ``fn(text)``, sync
        or async, returning a bool, a reward in 0..1 or a Verdict (see ``graphs.checking``)."""
        connection = {k: v for k, v in (("api_base", api_base), ("api_key", api_key)) if v is not None}
        if gateway is not None and connection:
            raise SeasonedError("give api_base/api_key to the Gateway you pass, or pass no gateway")
        self.gateway = gateway or Gateway(model, max_concurrency=32, **connection)
        self.system_prompt = system_prompt
        self.checker = as_checker(checker)
        self.toolbox = Toolbox(tools) if tools else None
        self.model = self.gateway.model if model is None else model
        self.memory = memory
        self.budget = budget
        self.strategy = parse_strategy(strategy)
        self.namespace = namespace
        self.max_steps = max_steps
        self.checkpoint = checkpoint
        self.db_url = db_url
        self.store = None
        if record:
            from seasoned.runs import RunStore

            self.store = RunStore.open(db_url)
            self._unsubscribe = self.store.attach(self.gateway.ledger)
        self.stats = VerifierStats.open(db_url) if record else VerifierStats()
        if isinstance(allocation, str):
            make_policy(allocation)  # a bad name fails here, not mid-run
        self.allocation = allocation
        self.plan = plan
        self.models = models
        self.curate = curate
        self.curator_model = curator_model
        if memory_channel != "auto" and memory_channel not in CHANNELS:
            raise SeasonedError(f"memory_channel must be 'auto' or one of {', '.join(CHANNELS)}, "
                                f"not {memory_channel!r}")
        self.memory_channel = memory_channel
        self._builders = {"solve": build_solve_graph(), "task": build_task_graph()}
        self._graph = self._builders["solve"].compile()
        self._compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    # --- graph and context ---------------------------------------------------------------------------
    @property
    def graph(self):
        """The compiled solve graph (no checkpointer: a parent graph's applies when it is mounted). It
        needs a ``SolveContext`` (``agent.context_for(...)``) as its runtime context; to use the agent
        inside a graph of your own, mount ``as_subgraph()`` instead."""
        return self._graph

    def as_subgraph(self, **run_options: Any):
        """The agent as a node of another graph, with a declared schema: input ``{"task": str}``,
        output ``{"answer", "verified", "run_id", "tokens"}`` (``AgentInput``/``AgentOutput``). Each call
        is a full run (memory, budget, checker, tools), recorded like any other (``seasoned runs list``).
        ``run_options`` go to every ``arun`` (``strategy=``, ``budget=``, ``checker=``...)."""
        from langchain_core.runnables import RunnableLambda
        from langgraph.graph import END, START, StateGraph

        def output(result: RunResult) -> dict:
            return {"answer": result.answer, "verified": result.verified, "run_id": result.run_id,
                    "tokens": result.spend.tokens}

        async def solve(state: dict) -> dict:
            return output(await self.arun(state["task"], **run_options))

        def solve_sync(state: dict) -> dict:
            return output(self.run(state["task"], **run_options))

        builder = StateGraph(AgentState, input_schema=AgentInput, output_schema=AgentOutput)
        builder.add_node("agent", RunnableLambda(solve_sync, afunc=solve, name="agent"))
        builder.add_edge(START, "agent")
        builder.add_edge("agent", END)
        return builder.compile(name="seasoned-agent")

    @property
    def task_graph(self):
        """The compiled multi-stage task graph (plan -> allocate -> solve subtasks -> aggregate -> curate)."""
        return self._builders["task"].compile()

    async def _checkpointed_graph(self, kind: str = "solve"):
        """A graph compiled with a checkpointer bound to the running loop (SQLite file, or in memory)."""
        loop = asyncio.get_running_loop()
        graphs = self._compiled.setdefault(loop, {})
        if kind not in graphs:
            if "saver" not in graphs:
                if self.checkpoint:
                    import aiosqlite
                    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

                    connection = await aiosqlite.connect(str(seasoned_home() / "checkpoints.sqlite"))
                    graphs["saver"] = AsyncSqliteSaver(connection)
                    await graphs["saver"].setup()
                else:
                    from langgraph.checkpoint.memory import InMemorySaver

                    graphs["saver"] = InMemorySaver()
            graphs[kind] = self._builders[kind].compile(checkpointer=graphs["saver"])
        return graphs[kind]

    def context_for(self, task: Any = None, *, env: Any = None, budget: Budget | None = None,
                    strategy: StrategyConfig | None = None, checker: Any = None,
                    namespace: str | None = None) -> SolveContext:
        """The runtime context of one solve: checker/actor from the environment, memory retrieval."""
        namespace = namespace or self.namespace
        context = SolveContext(gateway=self.gateway, budget=budget or budget_from(self.budget, "run"),
                               strategy=strategy or self.strategy, namespace=namespace, stats=self.stats,
                               system=self.system_prompt)
        if env is not None and task is not None and not isinstance(task, str):
            context.checker_name = f"env:{env.name}"
            context.extract = env.extract_answer
            context.answer_format = None  # the environment's prompt says how to answer
            if env.interactive:
                context.actor = self._actor_for(env, task)
            else:
                context.checker = lambda text: env.verify(task, text)
        elif self.toolbox is not None:  # the application's tools: answer by acting
            text = task if isinstance(task, str) else getattr(task, "prompt", str(task))
            context.actor = self._actor_for(self.toolbox, self.toolbox.task(text, self.system_prompt))
            context.extract, context.answer_format = self.toolbox.extract_answer, None
        checker = as_checker(checker) or (self.checker if env is None else None)
        if checker is not None:
            context.checker = checker
            context.checker_name = getattr(checker, "name", "env:checker")
        if self.memory is not None:
            scope = getattr(env, "name", None) or "general"
            context.memory = ContextBuilder(self.memory, namespace, self.gateway.model, scope,
                                            channel=self.memory_channel, seed=context.strategy.seed)
            if not self.is_multi_stage(task):  # multi-stage subtasks get theirs from the allocation
                context.stopping = self._learned_stopping(task, context)
        return context

    def _learned_stopping(self, task: Any, context: SolveContext) -> dict | None:
        """The learned give-up rule for a single question (``adaptive`` with a check): the Beta prior of the
        question's kind and model from this namespace's allocation records, priced so that a stream of such
        questions spends on average ``GIVE_UP_RATE`` of what drawing all n samples (or the run's token cap)
        would. None while the kind has too few records, or when the rule does not apply."""
        cfg = context.strategy
        if cfg.name != "adaptive" or not context.can_check:
            return None
        records = self.memory.allocations(namespace=context.namespace)
        cap = context.budget.max_tokens
        return stopping_for(records, single_stage_kind(task), math.inf if cap is None else cap * GIVE_UP_RATE,
                            model=self.gateway.model, wave=max(1, cfg.wave_size), max_samples=cfg.n,
                            rate_samples=cfg.n * GIVE_UP_RATE)

    def _actor_for(self, env: Any, task: Any):
        from seasoned.agents.actor import run_actor

        async def act(memory: dict, budget: Budget, seed: int | None) -> ActorOutput:
            memory = memory or {}
            attempt = await run_actor(_Watched(env, _stream_writer()), task, self.gateway, budget=budget,
                                      max_steps=self.max_steps,
                                      memory_context=memory.get("notes") or "",
                                      demonstrations=memory.get("demos") or [])
            trajectory = [getattr(step, "__dict__", step) for step in getattr(attempt, "steps", [])]
            return ActorOutput(text=attempt.answer or "", verdict=attempt.verdict, trajectory=trajectory)

        return act

    # --- running -------------------------------------------------------------------------------------
    def is_multi_stage(self, task: Any, plan: bool | None = None) -> bool:
        """Multi-stage (plan, allocate, solve subtasks) when asked, or when the task brings its own stages."""
        choice = self.plan if plan is None else plan
        return bool(getattr(task, "stages", None)) if choice is None else choice

    def task_context_for(self, task: Any, solve: SolveContext, *, env: Any = None, run_id: str = "",
                         allocation: str | None = None, seed: int = 0) -> TaskContext:
        """The runtime context of a multi-stage run, around a solve context used as the subtasks' template."""
        namespace = solve.namespace
        records = (lambda: self.memory.allocations(namespace=namespace)) if self.memory is not None else None
        chosen = allocation or self.allocation
        policy = make_policy(chosen, records=records, seed=seed) if isinstance(chosen, str) else chosen
        context = TaskContext(solve=solve, budget=solve.budget, policy=policy,
                              models=self.models, solve_graph=self._graph)
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
        if self.memory is not None and self.curate:
            async def curate(state: dict) -> dict:
                trajectory = task_trajectory(state, run_id)
                trajectory.update(scope=getattr(env, "name", None) or "general", checker=context.final_checker_name)
                return await self._curate(trajectory, namespace)

            context.curator = curate
        return context

    async def astream(self, task: Any, *, env: Any = None, budget: Budget | dict | int | None = None,
                      strategy: str | StrategyConfig | None = None, run_id: str | None = None,
                      checker: Any = None, namespace: str | None = None, allocation: str | None = None,
                      plan: bool | None = None) -> AsyncIterator[Event]:
        """Run and yield progress events; the last event is ``result`` with the ``RunResult``."""
        run_id = run_id or uuid.uuid4().hex[:16]
        config = parse_strategy(strategy) if strategy is not None else self.strategy
        spec = budget if budget is not None else self.budget
        text = task if isinstance(task, str) else task.prompt
        multi = self.is_multi_stage(task, plan)
        chosen = allocation or self.allocation
        options = {"strategy": config.model_dump(), "multi_stage": multi,
                   "allocation": (chosen if isinstance(chosen, str) else chosen.name) if multi else None}
        if self.store is not None:
            self.store.start_run(run_id, task=text, model=self.gateway.model, strategy=config.label,
                                 namespace=namespace or self.namespace, budget=budget_caps(spec),
                                 env=getattr(env, "name", None), task_id=getattr(task, "id", None), options=options)
        context = self._contexts(task, env, budget_from(spec, f"run {run_id}"), config, checker, namespace,
                                 run_id, options, chosen)
        initial = {"task": text} if multi else {"task": text, "subtask": "main"}
        async for event in self._drive(run_id, initial, context, task):
            yield event

    def _contexts(self, task, env, budget, strategy, checker, namespace, run_id, options, allocation=None):
        solve = self.context_for(task, env=env, budget=budget, strategy=strategy, checker=checker,
                                 namespace=namespace)
        if not options.get("multi_stage"):
            return solve
        if allocation is None:  # resuming: the recorded policy name, or this agent's own policy object
            allocation = options.get("allocation") or self.allocation
            if not isinstance(self.allocation, str) and self.allocation.name == allocation:
                allocation = self.allocation
        return self.task_context_for(task, solve, env=env, run_id=run_id, allocation=allocation,
                                     seed=strategy.seed or 0)

    async def aresume(self, run_id: str, *, env: Any = None, task: Any = None) -> RunResult:
        """Continue a killed run from its last checkpoint (finished samples are not redone)."""
        events = [event async for event in self.astream_resume(run_id, env=env, task=task)]
        return events[-1].data["result"]

    async def astream_resume(self, run_id: str, *, env: Any = None, task: Any = None) -> AsyncIterator[Event]:
        """``aresume`` as events; ``run_id`` may be any unique prefix of the id (as progress lines show)."""
        if self.store is not None:
            run_id = self.store.resolve(run_id)
        record = self.store.get_run(run_id).run if self.store is not None else None
        options = (getattr(record, "options", None) or {}) if record else {}
        kind = "task" if options.get("multi_stage") else "solve"
        graph = await self._checkpointed_graph(kind)
        snapshot = await graph.aget_state({"configurable": {"thread_id": run_id}})
        if not snapshot.values:
            raise RunNotResumable(f"run {run_id!r} has no checkpoint to resume from")
        strategy = parse_strategy(options["strategy"]) if options.get("strategy") else self.strategy
        caps = getattr(record, "budget", None) or budget_caps(self.budget)
        run_budget = Budget(**caps, name=f"run {run_id}")
        spent = snapshot.values.get("spend", [])
        run_budget.charge(sum(s["tokens"] for s in spent), sum(s["usd"] for s in spent),
                          sum(s["calls"] for s in spent))
        if env is not None and task is None and record is not None and getattr(record, "task_id", None):
            task = env.get_task(record.task_id)
        context = self._contexts(task, env, run_budget, strategy, None, getattr(record, "namespace", None),
                                 run_id, options)
        if self.store is not None:
            self.store.start_run(run_id, task=snapshot.values["task"], model=self.gateway.model,
                                 strategy=strategy.label, namespace=self._namespace_of(context), budget=caps)
        async for event in self._drive(run_id, None, context, task):
            yield event

    @staticmethod
    def _namespace_of(context: SolveContext | TaskContext) -> str:
        return context.solve.namespace if isinstance(context, TaskContext) else context.namespace

    async def _drive(self, run_id: str, initial: dict | None, context: SolveContext | TaskContext,
                     task: Any) -> AsyncIterator[Event]:
        kind = "task" if isinstance(context, TaskContext) else "solve"
        graph = await self._checkpointed_graph(kind)
        config = {"configurable": {"thread_id": run_id}, "recursion_limit": RECURSION_LIMIT}
        started = time.perf_counter()
        try:
            with call_tags(run_id=run_id):
                async for mode, chunk in graph.astream(initial, config, context=context,
                                                       stream_mode=["updates", "custom"]):
                    event = self._event(run_id, mode, chunk)
                    if event is not None:
                        if self.store is not None and event.kind in ("decision", "memory", "plan", "allocation",
                                                                     "step", "episode"):
                            self.store.record_event(run_id, event.kind, event.data)
                        yield event
                values = (await graph.aget_state(config)).values
                solve = context.solve if isinstance(context, TaskContext) else context
                result = self._result(run_id, values, solve, started)
                if kind == "solve" and self.memory is not None and self.curate:
                    result.curation = await self._curate(solve_trajectory(result, solve, task), solve.namespace)
                    result.spend = self._spend(run_id, started)
        except (asyncio.CancelledError, KeyboardInterrupt):  # Ctrl-C, or the caller stopped listening
            self.mark_interrupted(run_id, started)
            raise
        except Exception as exc:
            if self.store is not None:
                self.store.finish_run(run_id, status="failed", answer=None, verified=False, confidence=None,
                                      spend=self._spend(run_id, started).model_dump(), error=str(exc))
            raise
        self._record(result, solve)
        yield Event("result", run_id, data={"result": result})

    @staticmethod
    def _event(run_id: str, mode: str, chunk: Any) -> Event | None:
        if mode == "custom" and isinstance(chunk, dict):
            data = dict(chunk)
            return Event(data.pop("event", "custom"), run_id, data=data)
        if mode == "updates" and isinstance(chunk, dict):
            for node, update in chunk.items():
                return Event("node", run_id, node=node, data={"keys": sorted((update or {}).keys())})
        return None

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
            spend = self._spend(run_id, started)
            self.store.finish_run(run_id, status="interrupted", answer=None, verified=False, confidence=None,
                                  spend=spend.model_dump(), error="interrupted")
        except SeasonedError:
            pass  # no record to mark (it was never started)

    def _spend(self, run_id: str, started: float) -> RunSpend:
        """Every call of the run: the recorded ones when runs are recorded (so a resumed run counts the calls
        made before it was interrupted, in another process), else this process's ledger."""
        if self.store is not None:
            self.store.flush()
            roles = self.store.spend_by(run_id, "role")
            by_role = {role or "other": t.total_tokens for role, t in roles.items()}
            total = lambda field: sum(getattr(t, field) for t in roles.values())
            return RunSpend(tokens=total("total_tokens"), prompt_tokens=total("prompt_tokens"),
                            completion_tokens=total("completion_tokens"), usd=total("cost_usd"),
                            calls=total("calls"), seconds=round(time.perf_counter() - started, 3), by_role=by_role)
        ledger = self.gateway.ledger
        totals = ledger.totals(run_id=run_id)
        by_role: dict[str, int] = {}
        for record in ledger.calls(run_id=run_id):
            by_role[record.role or "other"] = by_role.get(record.role or "other", 0) + record.total_tokens
        return RunSpend(tokens=totals.total_tokens, prompt_tokens=totals.prompt_tokens,
                        completion_tokens=totals.completion_tokens, usd=totals.cost_usd, calls=totals.calls,
                        seconds=round(time.perf_counter() - started, 3), by_role=by_role)

    def _result(self, run_id: str, values: dict, context: SolveContext, started: float) -> RunResult:
        common = {"run_id": run_id, "task": values.get("task", ""), "strategy": context.strategy.label,
                  "model": self.gateway.model, "decisions": values.get("decisions", []),
                  "memory_ids": values.get("memory_ids") or [], "spend": self._spend(run_id, started)}
        if "subtasks" in values:  # multi-stage
            final = values.get("final") or {}
            results = values.get("results", {})
            used = [i for r in results.values() for i in (r or {}).get("memory_ids") or []]
            common["memory_ids"] = list(dict.fromkeys([*common["memory_ids"], *used]))
            allocations = values.get("allocations", {})
            subtasks = [{**s, "allocation": allocations.get(s["id"]), "result": results.get(s["id"])}
                        for s in values.get("subtasks", [])]
            solved = sum(bool((s["result"] or {}).get("verified")) for s in subtasks)
            return RunResult(**common, answer=final.get("answer"), text=final.get("text", ""),
                             reward=final.get("reward"),
                             verified=bool(final.get("verified")), verified_by=final.get("verified_by"),
                             confidence=1.0 if final.get("verified") else 0.0,
                             stop_reason=f"{len(subtasks)} subtask(s), {solved} verified",
                             subtasks=subtasks, plan_source=values.get("plan_source"),
                             curation=values.get("curation"))
        outcome = values.get("result") or {}
        memory = values.get("memory")
        if memory is not None:
            cached = next((c for c in values.get("candidates", []) if c["kind"] == "cached"), None)
            common["memory"] = {"channel": memory.get("channel"), "reason": memory.get("reason"),
                                "demonstrations": [d["id"] for d in memory.get("demos") or []],
                                "notes": bool(memory.get("notes")), "context_tokens": memory.get("context_tokens"),
                                "cache_hit": bool(cached and cached["id"] == outcome.get("candidate_id")
                                                  and outcome.get("verified"))}
        chosen = [v["score"] for v in values.get("verdicts", [])
                  if v["candidate_id"] == outcome.get("candidate_id") and v["verifier"].startswith("env")]
        return RunResult(**common, answer=outcome.get("answer"), text=outcome.get("text", ""),
                         reward=chosen[0] if chosen else None,
                         verified=bool(outcome.get("verified")), confidence=float(outcome.get("confidence") or 0.0),
                         verified_by=outcome.get("verified_by"), stop_reason=outcome.get("stop_reason", ""),
                         candidates=values.get("candidates", []), verdicts=values.get("verdicts", []))

    async def _curate(self, trajectory: dict, namespace: str) -> dict:
        """Distill items from the trajectory into memory (deduplicated), and record the allocation outcomes."""
        from seasoned.agents import curator
        from seasoned.memory import MemoryItem

        items = curator.distill(trajectory)
        demos = [demonstration_item(**d, model=self.gateway.model) for d in curator.demonstrations(trajectory)]
        if self.curator_model:
            with call_tags(run_id=trajectory.get("run_id"), role="curator"):
                items += await curator.propose(self.gateway, trajectory, model=self.curator_model)
        actions: dict[str, int] = {}
        for item in items:
            added = await asyncio.to_thread(self.memory.add, MemoryItem(**item), namespace=namespace,
                                            actor="curator")
            actions[added.action.value] = actions.get(added.action.value, 0) + 1
        for demo in demos:  # key-addressed: one per task, the newest verified reply
            await asyncio.to_thread(self.memory.put, demo["key"], demo, namespace=namespace, actor="curator",
                                    reason="verified demonstration")
        if demos:
            actions["demonstrations"] = len(demos)
        records = curator.allocation_records(trajectory)
        for record in records:
            kind = record.pop("subtask_kind")
            await asyncio.to_thread(self.memory.record_allocation, kind, run_id=trajectory.get("run_id"),
                                    namespace=namespace, **record)
        return {"items": actions, "allocation_records": len(records)}

    def _record(self, result: RunResult, context: SolveContext) -> None:
        # An environment's check is ground truth: credit the memory items now. Otherwise the outcome
        # is not known yet and comes later through ``feedback``.
        env_checked = bool(result.verified_by and result.verified_by.startswith("env")) or (
            context.can_check and not result.verified) or bool(
            result.subtasks and (result.verified_by or "").startswith("env"))
        if self.memory is not None and env_checked:
            self._credit_items(result, context.namespace)
        if self.store is not None:
            self.store.record_result(result, namespace=context.namespace, outcome_recorded=env_checked)

    def _credit_items(self, result: RunResult, namespace: str) -> None:
        """Credit the memory items a run used with its outcome (each subtask's own, when it was checked)."""
        credited: set[str] = set()
        for subtask in result.subtasks:
            sub = subtask.get("result") or {}
            ids = [i for i in sub.get("memory_ids") or [] if i not in credited]
            if ids and sub.get("checked"):
                self.memory.record_outcome(ids, success=bool(sub.get("verified")), namespace=namespace)
                credited.update(ids)
        rest = [i for i in result.memory_ids if i not in credited]
        if rest:
            self.memory.record_outcome(rest, success=result.verified, namespace=namespace)

    async def aclose(self) -> None:
        """Close the checkpoint connection opened on this loop, the MCP servers, and flush the run store."""
        if self.toolbox is not None:
            await self.toolbox.aclose()
        graphs = self._compiled.pop(asyncio.get_running_loop(), {})
        connection = getattr(graphs.get("saver"), "conn", None)
        if connection is not None:
            await connection.close()
        if self.store is not None:
            self.store.flush()

    def close(self) -> None:
        """``aclose`` for the synchronous API (``run``/``stream``/``resume`` use one background loop)."""
        run_sync(self.aclose())

    def feedback(self, run_id: str, success: bool, comment: str | None = None) -> dict:
        """An outcome that arrived after the run (e.g. a user's verdict): stored with the run, credited to
        the memory items the run used, and to the verifier that accepted its answer (its precision)."""
        if self.store is None:
            raise SeasonedError("feedback needs recorded runs (Agent(record=True))")
        trace = self.store.get_run(run_id)
        outcome = next((e.data for e in reversed(trace.events) if e.kind == "outcome"), {})
        self.store.record_feedback(run_id, success, comment)
        credited: list[str] = []
        memory_ids = outcome.get("memory_ids") or []
        if self.memory is not None and memory_ids and not outcome.get("outcome_recorded"):
            namespace = outcome.get("namespace", self.namespace)
            credited = [item.id for item in self.memory.record_outcome(memory_ids, success=success,
                                                                       namespace=namespace)]
        if outcome.get("verified_by"):
            self.stats.record(outcome.get("namespace", self.namespace), outcome["verified_by"], correct=success)
        chosen = next((e.data for e in trace.events if e.kind == "memory" and e.data.get("channel")), None)
        if self.memory is not None and chosen and outcome and not outcome.get("outcome_recorded"):
            # the run's outcome was unknown when it ended: now it credits the memory channel it used
            self.memory.channels.credit(outcome.get("namespace", self.namespace), trace.run.model,
                                        trace.run.env or "general", chosen["channel"],
                                        successes=int(success), failures=int(not success))
        return {"run_id": run_id, "success": success, "memory_items_credited": credited,
                "verifier": outcome.get("verified_by")}

    async def arun(self, task: Any, **kwargs: Any) -> RunResult:
        result = None
        async for event in self.astream(task, **kwargs):
            if event.kind == "result":
                result = event.data["result"]
        assert result is not None
        return result

    def run(self, task: Any, **kwargs: Any) -> RunResult:
        return run_sync(self.arun(task, **kwargs))

    def resume(self, run_id: str, **kwargs: Any) -> RunResult:
        return run_sync(self.aresume(run_id, **kwargs))

    def stream(self, task: Any, **kwargs: Any) -> Iterator[Event]:
        """Synchronous ``astream``: events as they happen. Leaving the loop early (or Ctrl-C) cancels the
        run, which is then recorded as interrupted."""
        return self._sync_events(lambda: self.astream(task, **kwargs))

    def stream_resume(self, run_id: str, **kwargs: Any) -> Iterator[Event]:
        """Synchronous ``astream_resume``."""
        return self._sync_events(lambda: self.astream_resume(run_id, **kwargs))

    def _sync_events(self, make: Any) -> Iterator[Event]:
        import queue

        events: queue.Queue[Event | BaseException | None] = queue.Queue()

        async def pump() -> None:
            try:
                async for event in make():
                    events.put(event)
            except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
                events.put(exc)
            finally:
                events.put(None)

        future = asyncio.run_coroutine_threadsafe(pump(), background_loop())
        try:
            while (item := events.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:  # Ctrl-C or the consumer stopped: cancel the run, which records it as interrupted
            if not future.done():
                future.cancel()
                with contextlib.suppress(BaseException):
                    future.result(timeout=STOP_WAIT_S)


def _stream_writer():
    """The running graph node's custom-event writer (a no-op outside a graph)."""
    try:
        from langgraph.config import get_stream_writer

        return get_stream_writer()
    except (RuntimeError, ImportError):
        return lambda _chunk: None


def _one_line(text: str, width: int = 100) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= width else line[: width - 1] + "…"


class _Watched:
    """An interactive environment whose sessions report each step as it happens (a ``step`` event:
    the action and a one-line observation), so long episodes are visible and recorded."""

    def __init__(self, env: Any, write: Any):
        self._env, self._write = env, write

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)

    async def open(self, task: Any) -> Any:
        return _WatchedSession(await self._env.open(task), self._write)


class _WatchedSession:
    def __init__(self, session: Any, write: Any):
        self._session, self._write, self._index = session, write, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    async def step(self, action: Any) -> Any:
        observation = await self._session.step(action)
        self._index += 1
        self._write({"event": "step", "task": getattr(self._session.task, "id", None), "index": self._index,
                     "action": action.render(), "observation": _one_line(observation.text)})
        return observation

    async def verify(self) -> Any:
        verdict = await self._session.verify()
        if verdict is not None:
            self._write({"event": "episode", "task": getattr(self._session.task, "id", None), "steps": self._index,
                         "passed": bool(verdict.passed), **verdict_summary(verdict.details)})
        return verdict


def verdict_summary(details: Any, limit: int = 20) -> dict:
    """What a person wants from a verdict's details: the failing tests (SWE's FAIL_TO_PASS and
    PASS_TO_PASS lists, at most ``limit``) and the reason, when there is one."""
    if not isinstance(details, dict):
        return {"reason": _one_line(details, 200)} if details else {}
    failing = [str(t) for key in ("FAIL_TO_PASS", "PASS_TO_PASS")
               for t in ((details.get(key) or {}).get("failing") or []) if isinstance(details.get(key), dict)]
    out: dict = {"failing_tests": failing[:limit]} if failing else {}
    if len(failing) > limit:
        out["more_failing"] = len(failing) - limit
    if details.get("reason"):
        out["reason"] = _one_line(details["reason"], 200)
    return out


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
