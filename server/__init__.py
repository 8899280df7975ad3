"""``seasoned serve``: an OpenAI-compatible HTTP service with test-time scaling and experience memory.

Any OpenAI client works by changing its base URL::

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="KEY or anything on loopback")
    reply = client.chat.completions.create(model="best_of_n-4:local/smollm2-135m",
                                           messages=[{"role": "user", "content": "What is 17 + 25?"}])
    reply.choices[0].message.content, reply.usage.total_tokens, reply.model_extra["seasoned"]["run_id"]

Python: ``create_app(ServerSettings(model=..., keys={...}))`` builds the FastAPI app;
``serve(host="127.0.0.1", port=8000, *, model=None, keys_file=None, db_url=None, log_level="info",
**settings)`` runs it with uvicorn.

Model field grammar: ``[STRATEGY:]MODEL``
    ``adaptive:local/smollm2-135m``, ``best_of_n-8:openai/gpt-4o-mini``, ``self_consistency-5:MODEL``,
    ``revise-2:MODEL``, ``single:MODEL``, a bare ``MODEL`` (strategy: the server's default, ``ServerSettings.strategy`` / ``seasoned serve
    --strategy``, ``single`` - one plain call - unless set) or a
    bare ``STRATEGY`` (the server's default model). ``MODEL`` may name fallbacks with ``|``. Only models the
    server serves are accepted (``ServerSettings.model`` plus ``models``; ``"*"`` in ``models`` serves
    any model string). ``GET /v1/models`` lists them and repeats this grammar in its ``seasoned`` field.

Request extension (optional)::

    "seasoned": {"budget": {"max_tokens": 4000, "max_usd": 0.05, "max_calls": 20, "max_seconds": 60},
                 "namespace": "math", "memory": true, "strategy": {"n": 4, "judge": false, ...}}

``strategy`` takes ``StrategyConfig`` fields. Standard fields map onto the strategy's per-sample settings:
``max_tokens`` / ``max_completion_tokens`` -> per-sample ``max_tokens``, ``temperature``, ``seed``. The run
budget is ``seasoned.budget`` (default ``ServerSettings.budget``; ``max_budget`` caps it). ``stop`` (up to 4
strings) and ``response_format`` (``json_object``, ``json_schema``) go to every solver call; the reply is
cut at the first stop text and checked against the format (else 502 ``invalid_response_format``).
Informational fields (user, metadata...) are accepted; tools, functions, n > 1 and logprobs are refused
(400 naming the field). A model the server does not serve is 404 ``model_not_found``.

Messages -> task: a lone user message is the task. Otherwise system/developer text comes first, earlier
turns follow as ``Conversation so far:`` lines (``role: text``), then ``Now answer:`` and the last
message, which must be from the user. Only text content parts are accepted.

Reply: a standard ``chat.completion``; the content is the selected candidate's text; ``usage`` is the
ledger's total for the run (every sample, judge and critic call, cancelled calls included); an extra
``seasoned`` field carries run_id, answer, verified, confidence, verified_by, stop_reason, strategy,
model, namespace, memory_ids, spend and budget. A run without any usable candidate answers 402 (budget
ran out) or 502 (model errors), with the run_id in the error (the run is recorded).

Streaming (``stream: true``): server-sent events in the chunk format. First a chunk with the role, then
progress chunks with an empty ``delta`` and an extra ``seasoned`` field ``{"event": node | candidate |
verdict | decision | memory, "run_id", "node", "data"}``, then the answer in one content chunk, then a
chunk with ``finish_reason``, ``usage`` (unless ``stream_options.include_usage`` is false) and the run
summary in ``seasoned``, then ``data: [DONE]``. An error after the stream started is sent as
``data: {"error": {...}}`` followed by ``[DONE]``. A client that disconnects mid-stream cancels its run:
the calls in flight are cancelled and the record ends ``cancelled`` with what the run spent. Non-finite
numbers (a judge's NaN score) are sent as ``null``: every chunk is standard JSON.

Endpoints (all under ``/v1``):
    GET  /models, /models/{id}            what can be asked for
    POST /chat/completions                run a task (plain or streamed)
    POST /runs/{id}/resume                continue an interrupted run from its checkpoint (its completion; 409
                                          when completed or running on a live server process)
    POST /runs/{id}/feedback              {"success": bool, "comment": str?}: credits the memory items the
                                          run used and the verifier that accepted its answer
    GET  /runs/{id}                       the run's trace (candidates, verdicts, events, calls, feedback)
    GET  /memory/search?q=&k=5&kinds=     read-only retrieval (does not count as a use of the items)
    GET  /memory/items/{id}               one memory item
    GET  /health (no /v1, no key)         status, default model and strategy, memory enabled and reachable
Runs are found by their id or a unique prefix of it within the key's namespace; without keys, within the
``?namespace=`` given, or in any namespace when none is given. Memory endpoints take ``?namespace=`` when no
keys are configured. A misspelled strategy (``adaptiv``, ``bestofn-4:MODEL``) is 400 ``unknown_strategy``
naming the valid ones. Every chunk of a stream has the id ``chatcmpl-RUN_ID``; ``finish_reason`` is
``length`` when the reply sent was cut at ``max_tokens`` (which caps each sample's reply).

Security: binds 127.0.0.1 by default; any other host needs API keys (``SEASONED_API_KEYS="key1=ns1,key2=ns2"``
or a keys file), else ``serve`` prints one error and exits with code 2. With keys every endpoint needs
``Authorization: Bearer KEY`` (401), the key's namespace is forced (naming another is 403; runs and items
of other namespaces are 404). Errors use the OpenAI error format: 400 names the field at fault
(``messages[0].role``, ``seasoned.budget.max_tokens``), 402 a budget that cannot pay for one call or exceeds
``max_budget``, 413 a body over ``max_body_bytes`` (1 MB), 429 more than ``max_concurrent_per_key``
requests in flight for one key. Bodies nested more than 32 levels, with lone surrogates, ``NaN``/``Infinity``
(or numbers that overflow to them) or integers outside int64 (``seed``) are 400. A rejected request writes
nothing (no run, no memory change). A finished run's ledger records leave memory once they are stored.

Slow or idle clients (``guards``): headers within ``header_timeout``, the body within ``body_timeout`` (408),
``max_open_per_key`` open requests per key (429), ``max_connections`` in all (503), a response left unread
for ``send_timeout`` is dropped (its run cancelled, its slot freed). Ctrl-C answers every request in flight
503 ``server_shutting_down`` naming its run (kept ``interrupted``, resumable); a second Ctrl-C exits at once.

One process holds one memory bank, ledger, run store and verifier stats, and one Agent per served model
(and memory on/off), all shared by concurrent requests; runs are async end to end. Replicas on one
PostgreSQL database (and a Chroma server) share runs, checkpoints, memory, statistics and the per-key
in-flight limit (``slots``); runs a stopped process left ``running`` become ``interrupted``.
"""

from importlib import import_module

_EXPORTS = {
    "create_app": ".app", "serve": ".runner", "BackgroundServer": ".runner", "build_settings": ".runner",
    "ServerSettings": ".settings", "ServerConfigError": ".settings",
}

__all__ = ["BackgroundServer", "ServerConfigError", "ServerSettings", "build_settings", "create_app", "serve"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
