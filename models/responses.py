"""The litellm reply of an in-process provider (``local/``, ``scripted/``, ``sim/``): one text choice and
its usage, built in one place so every provider reports tokens and finish reasons alike."""

from __future__ import annotations

from typing import Any


def text_response(model: str, text: str, finish_reason: str, prompt_tokens: int, completion_tokens: int) -> Any:
    """A ``litellm.ModelResponse`` for ``model`` (the full model string, provider prefix included)."""
    import litellm

    return litellm.ModelResponse(
        model=model,
        choices=[{"index": 0, "finish_reason": finish_reason, "message": {"role": "assistant", "content": text}}],
        usage=litellm.Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                            total_tokens=prompt_tokens + completion_tokens),
    )
