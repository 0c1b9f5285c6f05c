"""The OpenAI Responses API as the codex CLI speaks it: `POST /v1/responses`, answered by SSE.

Codex sends the whole conversation in `input` each turn (it keeps no server-side state here),
so the script stays stateless: a request with no tool output after its last user message gets
one call of the shell tool that codex offered (`exec_command`, `shell` or `shell_command`,
whichever is in `tools`) running the script's command; one with that output gets the answer.
Side requests (the model list) get harmless answers.
"""

from __future__ import annotations

import gzip
import json
import uuid
import zlib
from typing import Any

from ..model_server import Handler, Request, ScriptedModel

_OUTPUT_TYPES = {"function_call_output", "custom_tool_call_output", "local_shell_call_output"}


def body(req: Request) -> Any:
    """The request's JSON, inflated first when codex compressed it."""
    data = req.body
    encoding = req.headers.get("content-encoding", "").lower()
    if encoding == "gzip":
        data = gzip.decompress(data)
    elif encoding == "deflate":
        data = zlib.decompress(data)
    elif encoding:
        raise ValueError(f"scripted model: unsupported Content-Encoding {encoding}")
    try:
        return json.loads(data or b"{}")
    except ValueError:
        return {}


def answered(items: Any) -> bool:
    """Whether a tool output follows the last user message (so this turn's tool call has run).

    Looking only past the last user message keeps a resumed session (whose history holds the
    earlier turns' tool outputs) scripted like a new one: a follow-up prompt gets a tool call too.
    """
    if not isinstance(items, list):
        return False
    items = [item for item in items if isinstance(item, dict)]
    users = [i for i, item in enumerate(items)
             if item.get("type", "message") == "message" and item.get("role") == "user"]
    return any(item.get("type") in _OUTPUT_TYPES for item in items[(users[-1] + 1) if users else 0:])


def _tool_names(payload: dict[str, Any]) -> list[str]:
    names = []
    for tool in payload.get("tools") or []:
        if isinstance(tool, dict):
            names.append(tool.get("name") or (tool.get("function") or {}).get("name") or tool.get("type", ""))
    return names


def shell_call(payload: dict[str, Any], command: str) -> dict[str, Any]:
    """A function_call item that runs `command` with the shell tool codex offered."""
    names = _tool_names(payload)
    call_id = f"call_{uuid.uuid4().hex[:24]}"
    if "exec_command" in names:
        name, args = "exec_command", {"cmd": command, "yield_time_ms": 10000}
    elif "shell_command" in names:
        name, args = "shell_command", {"command": command}
    else:
        name, args = "shell", {"command": ["bash", "-lc", command]}
    return {"type": "function_call", "id": f"fc_{uuid.uuid4().hex[:24]}", "call_id": call_id,
            "name": name, "arguments": json.dumps(args), "status": "completed"}


def _message(text: str) -> dict[str, Any]:
    return {"type": "message", "id": f"msg_{uuid.uuid4().hex[:24]}", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def responses(model: ScriptedModel, req: Request) -> None:
    """POST /v1/responses: one tool call, or the final answer once a tool output is in the input."""
    payload = body(req)
    rid = f"resp_{uuid.uuid4().hex[:24]}"
    name = payload.get("model", "scripted")
    item = _message(model.script.answer) if answered(payload.get("input")) else \
        shell_call(payload, model.script.command)
    base = {"id": rid, "object": "response", "model": name, "created_at": 0}
    tokens_in, tokens_out = model.report(req)
    usage = {"input_tokens": tokens_in, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": tokens_out,
             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": tokens_in + tokens_out}
    events: list[tuple[str | None, Any]] = [
        ("response.created", {"type": "response.created", "response": {**base, "status": "in_progress"}}),
        ("response.output_item.added", {"type": "response.output_item.added", "output_index": 0, "item": item}),
    ]
    if item["type"] == "message":
        events.append(("response.output_text.delta", {"type": "response.output_text.delta", "item_id": item["id"],
                                                      "output_index": 0, "content_index": 0,
                                                      "delta": model.script.answer}))
    events += [
        ("response.output_item.done", {"type": "response.output_item.done", "output_index": 0, "item": item}),
        ("response.completed", {"type": "response.completed",
                                "response": {**base, "status": "completed", "output": [item], "usage": usage}}),
    ]
    req.stream(events)


def models(model: ScriptedModel, req: Request) -> None:
    """GET /v1/models: the one scripted model."""
    req.reply(200, {"object": "list", "data": [{"id": "scripted", "object": "model", "created": 0,
                                                "owned_by": "scripted"}], "models": []})


ROUTES: dict[tuple[str, str], Handler] = {
    ("POST", "/v1/responses"): responses,
    ("GET", "/v1/models"): models,
}
