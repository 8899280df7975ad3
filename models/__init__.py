"""The model gateway: the one place seasoned calls a model (litellm underneath).

    from seasoned.models import Gateway, Budget
    gw = Gateway("local/smollm2-135m")            # or any litellm model string, or scripted/<name>
    reply = gw.complete("What is 2+2?", max_tokens=32, budget=Budget(max_tokens=2000))
    print(reply.text, reply.total_tokens, gw.ledger.totals().model_dump())

Structured replies (tool calls, plans): pass an OpenAI ``response_format``. ``local/`` models decode under a
llama.cpp grammar built from the schema, so the reply parses unless ``max_tokens`` cut it (bound strings
with ``maxLength`` and give room); remote models get it where litellm says they take it; a provider that
cannot honour it refuses with ``ModelCallError`` (status 400) instead of ignoring it::

    fmt = {"type": "json_schema", "json_schema": {"name": "action", "schema": Action.model_json_schema()}}
    if providers.supports_response_schema(gw.model):   # True for local/ models
        reply = gw.complete(messages, response_format=fmt, max_tokens=256)   # or response_format=Action

``stop=[...]`` cuts every provider's reply. ``adapter=<LoRA adapter GGUF>`` (per call, or ``Gateway(adapter=)``)
decodes a ``local/`` model with an adapter trained on that model's file (``local.model_digest``).

Importing this package is light: litellm, llama.cpp and torch load on first use.
"""

from seasoned.settings import apply_offline_defaults

apply_offline_defaults()

from seasoned.errors import BudgetExceeded, ModelCallError, ModelConfigError, SeasonedError
from seasoned.settings import default_model, seasoned_home

from . import scripted, sim
from .budget import Budget
from .gateway import Completion, Gateway, RetryPolicy, acomplete, complete, connection_params, default_gateway
from .ledger import CallRecord, Ledger, default_ledger
from .spend import Spend
from .tags import call_tags, current_tags

__all__ = [
    "Budget", "BudgetExceeded", "CallRecord", "Completion", "Gateway", "Ledger", "ModelCallError",
    "ModelConfigError", "RetryPolicy", "SeasonedError", "Spend", "acomplete", "call_tags", "complete", "connection_params",
    "current_tags", "default_gateway", "default_ledger", "default_model", "scripted", "seasoned_home", "sim",
]
