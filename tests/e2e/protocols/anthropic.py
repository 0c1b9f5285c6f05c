"""The Anthropic Messages API as the scripted model speaks it (claude, Claude Code).

`POST /v1/messages`: a conversation that offers the `Bash` tool and holds no `tool_result`
yet gets one `tool_use` of Bash running the script's command; one that holds a tool result
gets the final answer. A request offering no shell tool (Claude Code's side requests: a
session title, a topic check, a summary) gets the answer text, so it never runs a command.
Replies stream as server-sent events when the request asks (`"stream": true`, as Claude Code
always does for its main loop), else come whole. Token counting, model lists and any other
GET under /v1 or /api (settings, feature flags, metrics) are answered harmlessly.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from ..model_server import Handler, Request, ScriptedModel

_ids = itertools.count(1)
SHELL_TOOLS = ("Bash", "bash")


def _has_tool_result(body: dict[str, Any]) -> bool:
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list) and any(
                isinstance(block, dict) and block.get("type") == "tool_result" for block in content):
            return True
    return False


def _shell_tool(body: dict[str, Any]) -> str | None:
    names = [t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)]
    return next((n for n in SHELL_TOOLS if n in names), None)


def _usage(tokens_in: int, tokens_out: int) -> dict[str, int]:
    return {"input_tokens": tokens_in, "output_tokens": tokens_out, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0}


def messages(model: ScriptedModel, req: Request) -> None:
    body = req.json()
    n = next(_ids)
    tokens_in, tokens_out = model.report(req)
    tool = _shell_tool(body)
    if tool and not _has_tool_result(body):
        block: dict[str, Any] = {"type": "tool_use", "id": f"toolu_scripted_{n:06d}", "name": tool,
                                 "input": {"command": model.script.command,
                                           "description": "Run the scripted command"}}
        stop = "tool_use"
    else:
        block = {"type": "text", "text": model.script.answer}
        stop = "end_turn"
    message = {"id": f"msg_scripted_{n:06d}", "type": "message", "role": "assistant",
               "model": body.get("model") or "claude-scripted", "content": [block],
               "stop_reason": stop, "stop_sequence": None, "usage": _usage(tokens_in, tokens_out)}
    if not body.get("stream"):
        req.reply(200, message)
        return
    start_block = dict(block, input={}) if block["type"] == "tool_use" else dict(block, text="")
    delta = ({"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
             if block["type"] == "tool_use" else {"type": "text_delta", "text": block["text"]})
    req.stream([
        ("message_start", {"type": "message_start",
                           "message": dict(message, content=[], stop_reason=None,
                                        usage=_usage(tokens_in, 1))}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": start_block}),
        ("ping", {"type": "ping"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                           "usage": {"output_tokens": tokens_out}}),
        ("message_stop", {"type": "message_stop"}),
    ])


def count_tokens(model: ScriptedModel, req: Request) -> None:
    req.reply(200, {"input_tokens": 10})


def models(model: ScriptedModel, req: Request) -> None:
    names = ["claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5"]
    req.reply(200, {"data": [{"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
                             for m in names], "has_more": False, "first_id": names[0], "last_id": names[-1]})


def anything(model: ScriptedModel, req: Request) -> None:
    """Side traffic (feature flags, settings, metrics, event logging): an empty success."""
    req.reply(200, {})


ROUTES: dict[tuple[str, str], Handler] = {
    ("POST", "/v1/messages/count_tokens"): count_tokens,
    ("POST", "/v1/messages"): messages,
    ("GET", "/v1/models"): models,
    ("GET", "/v1/"): anything,
    ("GET", "/api/"): anything,
    ("POST", "/api/"): anything,
    ("HEAD", "/"): anything,
}
