"""What the endpoints call: one memory bank, ledger, run store and verifier stats per server process,
and one Agent per served (model, memory on/off), all sharing them.

``plan`` checks a chat request completely (model, strategy, namespace, budget) without writing
anything; only a plan that passed is ever run.
"""

from __future__ import annotations

import asyncio
import contextvars
import difflib
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from seasoned.agents import solver
from seasoned.errors import ApiError
from seasoned.graphs import Agent, Event, RunResult, StrategyConfig
from seasoned.graphs.decide import MIN_SAMPLE_TOKENS
from seasoned.graphs.strategy import STRATEGIES
from seasoned.models import Gateway, Ledger, ModelConfigError, SeasonedError, current_tags, providers
from seasoned.models.gateway import parse_model_spec

from .auth import Caller
from .schemas import ChatCompletionRequest, parse_model_field, strategy_config, task_from_messages
from .settings import BUDGET_FIELDS, ServerSettings
from .slots import InFlight, SharedInFlight

log = logging.getLogger(__name__)
SETTLE_POLLS = 1000  # x 10 ms: how long a cancelled run's calls may take to unwind before it is recorded
STARTUP_LOCK_ID = 0x5EA5_0001  # pg_advisory_lock key of start-up
HEARTBEAT_S = 10.0  # how often a replica says it is alive and looks for runs whose process stopped
SHUTDOWN_WAIT_S = 1.0  # how long a run stopped by shutdown may take to record itself interrupted
# The client's own sampling settings (stop, response_format) for the solver calls of the current request.
CLIENT_SAMPLING: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("client_sampling",
                                                                                 default=None)


class ShuttingDown(Exception):
    """The server is stopping: the request's run was interrupted (it stays resumable)."""

    def __init__(self, run_id: str):
        super().__init__(run_id)
        self.run_id = run_id

    def api_error(self) -> ApiError:
        return ApiError(503, f"the server is shutting down; run {self.run_id} was interrupted and can be resumed "
                             f"(POST /v1/runs/{self.run_id}/resume)", code="server_shutting_down",
                        extra={"run_id": self.run_id})


class ServedGateway(Gateway):
    """The gateway of a served model: solver calls also get the client's ``stop`` and ``response_format``
    (the judge, critic and curator keep their own settings)."""

    async def acomplete(self, messages, *, role: str | None = None, **kwargs: Any):
        extra = CLIENT_SAMPLING.get()
        if extra and (role or current_tags().role) == "solver":
            kwargs = {**extra, **{k: v for k, v in kwargs.items() if v is not None}}
        return await super().acomplete(messages, role=role, **kwargs)


@dataclass
class RequestPlan:
    """A checked request, ready to run."""

    task: str
    model: str
    label: str  # the model field as the client sent it
    strategy: StrategyConfig
    namespace: str
    budget: dict[str, float]
    memory: bool
    stream: bool
    include_usage: bool = True
    sampling: dict[str, Any] = field(default_factory=dict)  # the client's stop / response_format
    extra: dict[str, Any] = field(default_factory=dict)
    resume: bool = False  # continue the run ``run_id`` from its checkpoint instead of starting it
    interrupted: bool = False  # stopped by the server's shutdown: it stays interrupted (resumable)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    started: float = field(default_factory=time.perf_counter)


class Service:
    def __init__(self, settings: ServerSettings):
        self.settings = settings
        self.ledger = Ledger()
        self.bank = None
        self._background: set[asyncio.Task] = set()
        self._gateways: dict[str, Gateway] = {}
        self._agents: dict[tuple[str, bool], Agent] = {}
        with startup_lock(settings.db_url):  # replicas starting together create the tables one at a time
            if settings.memory:
                from seasoned.memory import MemoryBank

                self.bank = MemoryBank.open(settings.db_url, namespace=settings.default_namespace,
                                            chroma_path=settings.chroma_path)
            self.primary = self.agent_for(settings.model, memory=self.bank is not None)
        self.shutting_down = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None  # the server's, once started
        self._heartbeat: asyncio.Task | None = None
        shared = settings.shared_limits if settings.shared_limits is not None else not self.store.db.is_sqlite
        self.in_flight = (SharedInFlight(self.store.db, settings.max_concurrent_per_key) if shared
                          else InFlight(settings.max_concurrent_per_key))
        self.store.heartbeat()
        self.store.recover_abandoned()  # runs a killed server left "running" become "interrupted" (resumable)

    # --- liveness and shutdown -----------------------------------------------------------------------
    async def start(self) -> None:
        """On the server's loop: say this replica is alive every few seconds, and look for runs (and
        in-flight slots) that a stopped replica left behind."""
        self.loop = asyncio.get_running_loop()
        self._heartbeat = self.loop.create_task(self._beat())

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await asyncio.to_thread(self._beat_once)
            except Exception as exc:  # noqa: BLE001 - a database hiccup must not stop the heartbeat
                log.warning("heartbeat: %s", exc)

    def _beat_once(self) -> None:
        self.store.heartbeat()
        self.store.recover_abandoned()
        if isinstance(self.in_flight, SharedInFlight):
            self.in_flight.sweep()

    def begin_shutdown(self) -> None:
        """Stop every run in flight: each request gets a clean 503 naming its run, which stays resumable."""
        self.shutting_down.set()

    async def progress(self, plan: RequestPlan) -> AsyncIterator[Event]:
        """``events``, stopped by the server's shutdown: then the run is cancelled, given ``SHUTDOWN_WAIT_S``
        to record itself interrupted (it stays resumable), and ``ShuttingDown`` is raised.

        The run is driven by a task of its own (its context variables must be set and reset in one
        task); a consumer that leaves cancels it."""
        CLIENT_SAMPLING.set(plan.sampling)  # seen by every task the run starts from here
        queue: asyncio.Queue = asyncio.Queue()

        async def pump() -> None:
            async for event in self.events(plan):
                queue.put_nowait(event)

        run = asyncio.ensure_future(pump())
        run.add_done_callback(lambda _: queue.put_nowait(None))
        stop = asyncio.ensure_future(self.shutting_down.wait())
        try:
            while True:
                get = asyncio.ensure_future(queue.get())
                await asyncio.wait({get, stop}, return_when=asyncio.FIRST_COMPLETED)
                if not get.done():
                    get.cancel()
                    plan.interrupted = True
                    run.cancel()
                    await asyncio.wait({run}, timeout=SHUTDOWN_WAIT_S)
                    raise ShuttingDown(plan.run_id)
                event = get.result()
                if event is None:
                    run.result()  # the run's own error, if it failed
                    return
                yield event
        finally:
            stop.cancel()
            if not run.done():  # the consumer left: the run is cancelled (and recorded so)
                run.cancel()

    # --- agents --------------------------------------------------------------------------------------
    def gateway_for(self, model: str) -> Gateway:
        if model not in self._gateways:
            self._gateways[model] = ServedGateway(model, ledger=self.ledger,
                                                  max_concurrency=self.settings.gateway_concurrency)
        return self._gateways[model]

    def agent_for(self, model: str, *, memory: bool) -> Agent:
        """The agent of this model (memory on or off); the first one owns the run store and the verifier
        stats, the others share them so every run and call is recorded exactly once."""
        key = (model, memory and self.bank is not None)
        if key not in self._agents:
            shared = {"store": self.primary.store, "stats": self.primary.stats} if self._agents else {}
            self._agents[key] = Agent(gateway=self.gateway_for(model), memory=self.bank if key[1] else None,
                                      strategy=self.settings.strategy, namespace=self.settings.default_namespace,
                                      db_url=self.settings.db_url, checkpoint=self.settings.checkpoint,
                                      memory_channel=self.settings.memory_channel, **shared)
        return self._agents[key]

    @property
    def store(self):
        return self.primary.store

    # --- checking a request ------------------------------------------------------------------------
    def check_model(self, model: str, param: str = "model") -> str:
        settings = self.settings
        try:
            chain = parse_model_spec(model)
        except ModelConfigError as exc:
            raise ApiError(400, f"{param}: {exc}", param=param) from None
        if not settings.any_model and model not in settings.served_models:
            raise ApiError(404 if param == "model" else 400, f"{param}: the model {model!r} does not exist here; served: "
                           f"{', '.join(settings.served_models)} (GET /v1/models)", param=param,
                           code="model_not_found")
        try:
            for name in chain:
                providers.validate(name)
        except SeasonedError as exc:
            raise ApiError(400, f"{param}: {exc}", param=param) from None
        return model

    def _check_model_or_strategy(self, choice) -> str:
        """The model to run. A name that is not served, has no provider part and is close to a strategy
        name (``adaptiv``, ``bestofn-4:MODEL``) is reported as an unknown strategy, naming the valid ones;
        any other unknown name (``gpt-4o``) is 404 ``model_not_found``, as OpenAI answers it."""
        try:
            return self.check_model(choice.model or self.settings.model)
        except ApiError:
            if choice.strategy is not None or not choice.model:
                raise
            word = choice.model.partition(":")[0].strip()
            base = re.sub(r"-\d+$", "", word.lower()).replace("-", "_")
            if "/" in word or "|" in word or not difflib.get_close_matches(base, STRATEGIES, n=1, cutoff=0.75):
                raise
            raise ApiError(400, f"model: unknown strategy {word!r}: strategies are {', '.join(STRATEGIES)} "
                           f"(optionally -N, e.g. best_of_n-8), written STRATEGY:MODEL; served models: "
                           f"{', '.join(self.settings.served_models)}", param="model",
                           code="unknown_strategy") from None

    async def plan(self, body: ChatCompletionRequest, caller: Caller) -> RequestPlan:
        """Everything about a request that can be wrong is found here, before anything is written."""
        body.refuse_unsupported()
        options = body.seasoned
        choice = parse_model_field(body.model)
        model = self._check_model_or_strategy(choice)
        strategy = strategy_config(choice.strategy or self.settings.strategy,
                                   options.strategy if options else None,
                                   max_tokens=body.max_completion_tokens or body.max_tokens,
                                   temperature=body.temperature, seed=body.seed)
        if strategy.judge_model:
            self.check_model(strategy.judge_model, "seasoned.strategy.judge_model")
        namespace = caller.namespace_for(options.namespace if options else None, self.settings.default_namespace,
                                         "seasoned.namespace")
        task = task_from_messages(body.messages)
        sampling = body.client_sampling()
        requested = options.budget.model_dump(exclude_none=True) if options and options.budget else {}
        budget = self._budget(requested)
        await self._check_affordable(task, model, strategy, budget)
        include_usage = True
        if body.stream_options and body.stream_options.get("include_usage") is False:
            include_usage = False
        return RequestPlan(task=task, model=model, label=body.model, strategy=strategy, namespace=namespace,
                    budget=budget, memory=(options.memory if options else True) and self.bank is not None,
                    stream=body.stream, include_usage=include_usage, sampling=sampling)

    def _budget(self, requested: dict[str, float]) -> dict[str, float]:
        budget = {**self.settings.budget, **requested}
        for name, cap in self.settings.max_budget.items():
            if name in requested and requested[name] > cap:
                raise ApiError(402, f"seasoned.budget.{name}: {requested[name]:g} is more than this server "
                               f"allows per request ({cap:g})", param=f"seasoned.budget.{name}",
                               code="budget_too_large")
            budget[name] = min(budget.get(name, cap), cap)
        return {k: budget[k] for k in BUDGET_FIELDS if budget.get(k) is not None}

    async def _check_affordable(self, task: str, model: str, strategy: StrategyConfig, budget: dict) -> None:
        """402 when the budget cannot pay for even one solver call (the gateway would refuse it)."""
        messages = solver.build_messages(task)
        chain = parse_model_spec(model)
        prompt = max([await providers.estimate_prompt_tokens(name, messages) for name in chain])
        completion = min(strategy.max_tokens, MIN_SAMPLE_TOKENS)
        need_usd = 0.0
        if budget.get("max_usd") is not None:  # pricing goes through litellm's tables: only when capped
            need_usd = max(providers.price(name, prompt, completion)[0] for name in chain)
        checks = [
            ("max_tokens", budget.get("max_tokens"), prompt + completion, "tokens"),
            ("max_calls", budget.get("max_calls"), 1, "calls"),
            ("max_usd", budget.get("max_usd"), need_usd, "USD"),
        ]
        for name, cap, need, unit in checks:
            if cap is not None and need > cap:
                raise ApiError(402, f"seasoned.budget.{name}: {cap:g} {unit} cannot pay for even one call "
                               f"(the first call needs about {need:g} {unit}: the prompt plus "
                               f"{completion} completion tokens)", param=f"seasoned.budget.{name}",
                               code="budget_too_small")
        if budget.get("max_seconds") is not None and budget["max_seconds"] <= 0:
            raise ApiError(402, "seasoned.budget.max_seconds: no time to make a call",
                           param="seasoned.budget.max_seconds", code="budget_too_small")

    # --- running -------------------------------------------------------------------------------------
    async def events(self, plan: RequestPlan) -> AsyncIterator[Event]:
        """The run's progress events; the last is ``result``.

        A consumer that goes away (a client that disconnected: the task is cancelled, or this generator
        is closed) cancels the run: its record ends ``cancelled`` with what it spent."""
        agent = self.agent_for(plan.model, memory=plan.memory)
        if plan.resume:
            status = await asyncio.to_thread(self.store.claim, plan.run_id)  # one replica resumes it
            if status != "claimed":
                raise _not_resumable(plan.run_id, status)
            stream = self._resumed(agent, plan)
        else:
            stream = agent.astream(plan.task, budget=dict(plan.budget), strategy=plan.strategy,
                                   namespace=plan.namespace, run_id=plan.run_id)
        try:
            async for event in stream:
                yield event
        except (asyncio.CancelledError, GeneratorExit):
            # No await here: under a cancelled scope every await would be cancelled again. The inner
            # stream is closed and the record written by a task of its own.
            self._spawn(self._cancel(plan, stream))
            raise

    async def _resumed(self, agent: Agent, plan: RequestPlan) -> AsyncIterator[Event]:
        """The run continued from its last checkpoint; one cut off before its first checkpoint was written
        (nothing of it done) starts again under its id, from its record's task, budget and strategy."""
        from seasoned.errors import RunNotResumable

        try:
            async for event in agent.astream_resume(plan.run_id):
                yield event
            return
        except RunNotResumable as exc:
            log.info("run %s: %s; starting it again", plan.run_id, exc)
        async for event in agent.astream(plan.task, budget=dict(plan.budget), strategy=plan.strategy,
                                         namespace=plan.namespace, run_id=plan.run_id):
            yield event

    def _spawn(self, coroutine) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coroutine)
        except RuntimeError:  # no loop any more (interpreter shutdown): nothing can be recorded
            coroutine.close()
            return
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _cancel(self, plan: RequestPlan, stream) -> None:
        """Stop a run whose client went away and record it ``cancelled`` with its spend."""
        try:
            await stream.aclose()  # cancels what the run still has in flight (those calls are recorded)
        except Exception as exc:  # noqa: BLE001 - the run is being abandoned: log and record it anyway
            log.warning("run %s: closing its stream: %s", plan.run_id, exc)
        for gateway in list(self._gateways.values()):  # nobody waits for the run: stop what it has in flight
            gateway.cancel_run(plan.run_id)
        for _ in range(SETTLE_POLLS):  # cancelled calls write their ledger records as they unwind
            if not any(gateway.in_flight(plan.run_id) for gateway in self._gateways.values()):
                break
            await asyncio.sleep(0.01)
        try:
            await asyncio.to_thread(self._finish_cancelled, plan)
        except Exception as exc:  # noqa: BLE001
            log.warning("run %s: could not record the cancellation: %s", plan.run_id, exc)
        finally:
            self.finished(plan.run_id)

    def _finish_cancelled(self, plan: RequestPlan) -> None:
        from seasoned.runs import RunNotFound

        if self.store is None:
            return
        try:
            status = self.store.get_run(plan.run_id).run.status
        except RunNotFound:
            return  # cancelled before the run was opened: nothing ran, nothing to record
        if status not in ("running", "interrupted") or plan.interrupted:  # the agent marks a cancelled run
            return  # interrupted at once; for the service it is a client gone: cancelled, with its spend
        self.store.finish_run(plan.run_id, status="cancelled", answer=None, verified=False, confidence=None,
                              spend=self.spend(plan), error="the client disconnected; the run was cancelled")

    def spend(self, plan: RequestPlan) -> dict[str, Any]:
        """What the run spent so far, from the ledger (the same fields as a finished run's spend)."""
        spend = self.ledger.totals(run_id=plan.run_id)
        spend.seconds = round(time.perf_counter() - plan.started, 3)
        return spend.model_dump()

    def finished(self, run_id: str) -> None:
        """The run is over and stored: drop its ledger records from memory (the run store has them)."""
        self.ledger.forget(run_id)
        for gateway in list(self._gateways.values()):
            gateway.forget_cut(run_id)

    def finish_reason(self, result: RunResult) -> str:
        """``length`` when the reply sent is a completion the provider cut at ``max_tokens``, else ``stop``."""
        cut = any(result.text in gateway.cut_replies(result.run_id) for gateway in self._gateways.values())
        return "length" if cut else "stop"

    async def health(self) -> dict[str, Any]:
        """The default model and strategy, and the memory bank's state (off, ok, or the error)."""
        memory: dict[str, Any] = {"enabled": self.bank is not None}
        if self.bank is not None:
            try:
                await asyncio.to_thread(self.bank.stats, namespace=self.settings.default_namespace)
                memory["status"] = "ok"
            except Exception as exc:  # noqa: BLE001 - health reports the failure instead of failing
                memory["status"] = f"error: {type(exc).__name__}: {str(exc)[:200]}"
        else:
            memory["status"] = "disabled"
        ok = memory["status"] in ("ok", "disabled")
        return {"status": "ok" if ok else "degraded", "model": self.settings.model,
                "models": self.settings.served_models, "default_strategy": self.settings.strategy,
                "memory": memory}

    async def run(self, plan: RequestPlan) -> RunResult:
        """The run's result; ``ShuttingDown`` if the server stops first (the run stays resumable)."""
        result = None
        async for event in self.progress(plan):
            if event.kind == "result":
                result = event.data["result"]
        if result is None:
            raise ApiError(502, "the run ended without a result")
        return result

    async def resume_plan(self, run_id: str, namespace: str | None, stream: bool) -> RequestPlan:
        """A plan that continues the run ``run_id`` (interrupted, failed, cancelled, or left running by a
        replica that stopped) from its last checkpoint, on this replica. 409 while a live process runs it."""
        trace = await self.get_run(run_id, namespace)
        record = trace.run
        model = self.check_model(record.model)
        if record.status == "completed":
            raise _not_resumable(record.id, "completed")
        strategy = strategy_config(record.strategy or self.settings.strategy, None, max_tokens=None,
                                   temperature=None, seed=None)
        return RequestPlan(task=record.task, model=model, label=model, strategy=strategy,
                           namespace=record.namespace, budget=dict(record.budget or {}),
                           memory=self.bank is not None, stream=stream, run_id=record.id, resume=True)

    def usage(self, run_id: str) -> dict[str, int]:
        """Every token the run spent (all samples, judge, critic calls): the ledger's totals."""
        totals = self.ledger.totals(run_id=run_id)
        return {"prompt_tokens": totals.prompt_tokens, "completion_tokens": totals.completion_tokens,
                "total_tokens": totals.total_tokens}

    # --- runs and memory -----------------------------------------------------------------------------
    def _resolve(self, run_id: str, namespace: str | None) -> str | None:
        """The full id of the run ``run_id`` names (its id or a prefix unique among the runs the caller may
        see: ``namespace``, or every namespace when None), or None. Never names runs the caller cannot see."""
        from seasoned.runs.tables import RUN_ID_MAX, RunRow
        from sqlalchemy import select

        run_id = (run_id or "").strip()
        if not run_id or len(run_id) > RUN_ID_MAX:
            return None
        escaped = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = select(RunRow.id).where(RunRow.id.like(f"{escaped}%", escape="\\"))
        if namespace is not None:
            query = query.where(RunRow.namespace == namespace)
        with self.store.db.read() as session:
            found = list(session.scalars(query.order_by(RunRow.id).limit(2)))
        if run_id in found:
            return run_id
        if len(found) > 1:
            raise ApiError(400, f"run id prefix {run_id!r} matches more than one of your runs; give more "
                           "characters", param="run_id", code="ambiguous_run_id")
        return found[0] if found else None

    async def get_run(self, run_id: str, namespace: str | None):
        """The run by its id or a unique prefix, among ``namespace``'s runs (None: any namespace, for a
        loopback caller without keys who named none)."""
        from seasoned.runs import RunNotFound

        full = await asyncio.to_thread(self._resolve, run_id, namespace)
        trace = None
        if full is not None:
            try:
                trace = await asyncio.to_thread(self.store.get_run, full)
            except RunNotFound:
                trace = None
        if trace is None or (namespace is not None and trace.run.namespace != namespace):
            where = f" in namespace {namespace!r}" if namespace is not None else ""
            raise ApiError(404, f"no run {run_id!r}{where}", param="run_id", code="run_not_found")
        return trace

    async def feedback(self, run_id: str, namespace: str | None, success: bool, comment: str | None) -> dict:
        trace = await self.get_run(run_id, namespace)
        return await asyncio.to_thread(self.primary.feedback, trace.run.id, success, comment)

    def _bank(self):
        if self.bank is None:
            raise ApiError(404, "memory is disabled on this server", code="memory_disabled")
        return self.bank

    async def search(self, query: str, namespace: str, k: int, kinds: list[str] | None) -> list:
        from seasoned.memory import InvalidItemError

        bank = self._bank()
        try:
            return await asyncio.to_thread(bank.retrieve, query, k, kinds, namespace, track=False)
        except InvalidItemError as exc:
            raise ApiError(400, f"kinds: {exc}", param="kinds") from None

    async def get_item(self, item_id: str, namespace: str):
        from seasoned.memory import ItemNotFound

        bank = self._bank()
        try:
            return await asyncio.to_thread(bank.get, item_id, namespace=namespace)
        except ItemNotFound:
            raise ApiError(404, f"no memory item {item_id!r} in namespace {namespace!r}", param="item_id",
                           code="item_not_found") from None

    # --- shutting down --------------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Close what the agents opened on this loop (checkpoint connections), the store and the bank."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        if self._background:  # cancellations still being recorded (bounded: a stop must not hang)
            await asyncio.wait(set(self._background), timeout=SHUTDOWN_WAIT_S * 2)
        for agent in self._agents.values():  # each Agent's checkpoint connection on this loop, its MCP servers
            try:
                await agent.aclose()
            except Exception as exc:  # noqa: BLE001 - shutting down: log and go on
                log.warning("closing an agent: %s", exc)
        if self.store is not None:
            await asyncio.to_thread(self.store.interrupt_own)  # runs cut off by the shutdown stay resumable
            await asyncio.to_thread(self.store.close)
        if self.bank is not None:
            self.bank.close()


@contextmanager
def startup_lock(db_url: str | None) -> Iterator[None]:
    """On PostgreSQL, one server process at a time opens its stores (and creates missing tables: two
    ``CREATE TABLE`` of the same table at once fail there); elsewhere nothing to do."""
    from seasoned.graphs.checkpoints import postgres_conninfo
    from seasoned.settings import settings as seasoned_settings

    conninfo = postgres_conninfo(db_url or seasoned_settings().db_url)
    if conninfo is None:
        yield
        return
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as lock:
        lock.execute("SELECT pg_advisory_lock(%s)", (STARTUP_LOCK_ID,))
        yield


def _not_resumable(run_id: str, status: str) -> ApiError:
    why = ("a live server process is running it; it cannot be resumed twice" if status == "running"
           else "there is nothing to resume")
    return ApiError(409, f"run {run_id} is {status}: {why}", param="run_id", code=f"run_{status}")
