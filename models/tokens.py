"""Token counting used to reserve budget before a call."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\w+|[^\w\s]")
MESSAGE_OVERHEAD = 4  # role markers and separators per chat message


def count_text_tokens(text: str) -> int:
    """A deterministic approximation: words and punctuation marks (used by the scripted provider)."""
    return len(_TOKEN.findall(text or ""))


def message_text(message: dict) -> str:
    """The text of a chat message whose content may be a string or a list of parts."""
    content = message.get("content") or ""
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def count_message_tokens(messages: list[dict]) -> int:
    return sum(count_text_tokens(message_text(m)) + MESSAGE_OVERHEAD for m in messages) + 2
