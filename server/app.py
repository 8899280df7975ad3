"""The FastAPI application: ``create_app(settings)`` builds it (tests use it directly; ``serve`` runs it)."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from seasoned.errors import ApiError
from seasoned.models import SeasonedError, untrusted

from .auth import Caller, KeyRing
from .guards import RequestGuard
from .responses import SlotStreamingResponse, check_result, completion_body, json_safe, sse_events
from .schemas import EXAMPLE_STRATEGIES, GRAMMAR, ChatCompletionRequest, FeedbackRequest, validation_error
from .service import RequestPlan, Service, ShuttingDown
from .settings import ServerSettings

MAX_SEARCH_K = 50
MAX_BODY_DEPTH = 32  # a chat request nests 5 levels (messages[].content[].text); 32 leaves room for metadata


def _model_entry(model_id: str, created: int) -> dict:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "seasoned"}


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """The app, with its Service (memory bank, agents, run store) opened now and closed at shutdown."""
    settings = settings or ServerSettings()
    service = Service(settings)
    keys = KeyRing(settings.keys)
    in_flight = service.in_flight
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await service.start()
        yield
        await service.aclose()

    public_docs = not keys.enabled
    app = FastAPI(title="seasoned", summary="OpenAI-compatible chat completions with experience memory",
                  lifespan=lifespan, docs_url="/docs" if public_docs else None,
                  redoc_url=None, openapi_url="/openapi.json" if public_docs else None)
    app.state.settings, app.state.service, app.state.in_flight = settings, service, in_flight
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(RequestValidationError, request_validation_handler)
    app.add_middleware(RequestGuard, label=keys.label_of, max_open_per_key=settings.max_open_per_key,
                       max_body_bytes=settings.max_body_bytes, body_timeout=settings.body_timeout)

    @app.get("/health")
    async def health() -> dict:
        """Liveness plus what a client needs to know: the default model and strategy, memory on or off
        and whether its database answers. Needs no key (it shows no namespace's data)."""
        return await service.health()

    @app.get("/v1/models")
    async def list_models(request: Request) -> dict:
        keys.caller(request)
        ids = []
        for model in settings.served_models:
            ids.append(model)
            ids.extend(f"{strategy}:{model}" for strategy in EXAMPLE_STRATEGIES)
        return {"object": "list", "data": [_model_entry(i, created) for i in ids],
                "seasoned": {"grammar": GRAMMAR, "default_model": settings.model,
                             "default_strategy": settings.strategy, "strategies": list(EXAMPLE_STRATEGIES),
                             "any_model": settings.any_model}}

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str, request: Request) -> dict:
        keys.caller(request)
        from .schemas import parse_model_field

        choice = parse_model_field(model_id)
        service.check_model(choice.model or settings.model)
        return _model_entry(model_id, created)

    async def answer(plan: RequestPlan, caller: Caller) -> Any:
        if service.shutting_down.is_set():
            raise ApiError(503, "the server is shutting down", code="server_shutting_down")
        slot = await in_flight.acquire(caller.label)
        if plan.stream:
            return SlotStreamingResponse(sse_events(service, plan), slot)
        try:
            result = await service.run(plan)
            check_result(result, plan)
            return completion_body(result, plan, service.usage(result.run_id), service.finish_reason(result))
        except ShuttingDown as exc:
            raise exc.api_error() from None
        except SeasonedError as exc:
            raise ApiError(502, str(exc), code="model_error") from None
        finally:
            await slot.release()
            service.finished(plan.run_id)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> Any:
        caller = keys.caller(request)
        body = await _parse(request, ChatCompletionRequest)
        return await answer(await service.plan(body, caller), caller)

    @app.post("/v1/runs/{run_id}/resume", response_model=None)
    async def resume(run_id: str, request: Request, namespace: str | None = Query(None),
                     stream: bool = Query(False)) -> Any:
        """Continue an interrupted run (a server stopped or killed mid-run, on this replica or another)
        from its last checkpoint; the reply is the run's chat completion, as if it had never stopped."""
        caller = keys.caller(request)
        plan = await service.resume_plan(run_id, _run_namespace(caller, namespace), stream)
        return await answer(plan, caller)

    @app.get("/v1/runs/{run_id}")
    async def get_run(run_id: str, request: Request, namespace: str | None = Query(None)) -> dict:
        trace = await service.get_run(run_id, _run_namespace(keys.caller(request), namespace))
        return json_safe(trace.model_dump(mode="json"))

    @app.post("/v1/runs/{run_id}/feedback")
    async def feedback(run_id: str, request: Request, namespace: str | None = Query(None)) -> dict:
        ns = _run_namespace(keys.caller(request), namespace)
        body = await _parse(request, FeedbackRequest)
        return await service.feedback(run_id, ns, body.success, body.comment)

    @app.get("/v1/memory/search")
    async def memory_search(request: Request, q: str = Query(..., min_length=1, max_length=10_000),
                            k: int = Query(5, ge=1, le=MAX_SEARCH_K), kinds: str | None = Query(None),
                            namespace: str | None = Query(None)) -> dict:
        caller = keys.caller(request)
        ns = caller.namespace_for(namespace, settings.default_namespace)
        wanted = [kind.strip() for kind in kinds.split(",") if kind.strip()] if kinds else None
        hits = await service.search(q, ns, k, wanted)
        return {"object": "list", "namespace": ns,
                "data": [{"item": h.item.model_dump(mode="json"), "score": h.score, "parts": h.parts} for h in hits]}

    @app.get("/v1/memory/items/{item_id}")
    async def memory_item(item_id: str, request: Request, namespace: str | None = Query(None)) -> dict:
        caller = keys.caller(request)
        ns = caller.namespace_for(namespace, settings.default_namespace)
        item = await service.get_item(item_id, ns)
        return item.model_dump(mode="json")

    return app


def _run_namespace(caller: Caller, requested: str | None) -> str | None:
    """Where to look a run up: the key's namespace; without keys the one named, or every namespace (a run
    id is unique, so a loopback caller needs no ``?namespace=``)."""
    if caller.namespace is None and requested is None:
        return None
    return caller.namespace_for(requested, "")


async def _parse(request: Request, model: Any) -> Any:
    """The JSON body as ``model``, or a 400 naming the field at fault.

    Bodies are untrusted: nesting is limited (``MAX_BODY_DEPTH``), and ``NaN``/``Infinity`` (or numbers
    that overflow to them), integers outside int64 and lone surrogates are refused here, before anything
    can be run or written, because nothing downstream (SQL, JSON replies, tokenizers) can hold them."""
    raw = await request.body()
    try:
        data = untrusted.loads(raw or b"null", max_depth=MAX_BODY_DEPTH, allow_nan=False)
    except untrusted.UntrustedInputError as exc:
        raise ApiError(400, f"the request body is not acceptable JSON: {exc}", param="body",
                       code="invalid_json") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ApiError(400, f"the request body is not valid JSON ({exc})", param="body",
                       code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object", param="body")
    try:
        untrusted.check_tree(data, path="body", max_depth=MAX_BODY_DEPTH)
    except untrusted.UntrustedInputError as exc:
        field = str(exc).split(":", 1)[0].removesuffix(" key")
        raise ApiError(400, str(exc), param=field, code="invalid_value") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


async def api_error_handler(_request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


async def request_validation_handler(_request: Request, exc: RequestValidationError) -> JSONResponse:
    error = validation_error(exc)
    return JSONResponse(error.body(), status_code=error.status)
