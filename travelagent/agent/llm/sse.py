"""Server-sent events as OpenAI-compatible servers stream them; pure, no I/O.

Feed text lines (``SSEDecoder.feed_line``); get back the content deltas of
``/v1/chat/completions`` chunks. ``data: [DONE]`` ends the stream. Anything a conforming server
would not send (data that is not JSON, a chunk without choices, an ``error`` object) raises
``LLMError`` with the reason, so a broken endpoint is reported instead of silently truncated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


class LLMError(RuntimeError):
    """The LLM backend failed; ``str(err)`` says how, fit to show to a user."""


@dataclass
class SSEDecoder:
    done: bool = False
    finished: bool = False  # a choice reported a finish_reason
    _data: list[str] = field(default_factory=list)

    def feed_line(self, line: str) -> list[str]:
        """One line without its newline; returns content deltas completed by it."""
        if self.done:
            return []
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return []  # comment / keep-alive
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        # "event", "id", "retry" carry nothing an OpenAI-style stream needs.
        return []

    def end(self) -> list[str]:
        """The byte stream ended: flush and check that the completion actually finished."""
        out = self._dispatch() if self._data else []
        if not self.done and not self.finished:
            raise LLMError("LLM stream ended before [DONE] or a finish_reason")
        return out

    def _dispatch(self) -> list[str]:
        if not self._data:
            return []
        data = "\n".join(self._data)
        self._data.clear()
        if data.strip() == "[DONE]":
            self.done = True
            return []
        try:
            obj: Any = json.loads(data)
        except json.JSONDecodeError:
            raise LLMError(f"malformed SSE data from the LLM endpoint: {data[:120]!r}") from None
        if not isinstance(obj, dict):
            raise LLMError("malformed SSE chunk: expected a JSON object")
        if obj.get("error"):
            err = obj["error"]
            msg = err.get("message") if isinstance(err, dict) else err
            raise LLMError(f"LLM endpoint reported an error: {msg}")
        choices = obj.get("choices")
        if not isinstance(choices, list):
            raise LLMError("malformed SSE chunk: no 'choices' list")
        out = []
        for choice in choices:
            if not isinstance(choice, dict):
                raise LLMError("malformed SSE chunk: a choice is not an object")
            delta = choice.get("delta") or {}
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str) and content:
                out.append(content)
            if choice.get("finish_reason"):
                self.finished = True
        return out
