"""OpenAI Chat Completions as the scripted model speaks it (opencode, aider through litellm).

`POST /v1/chat/completions`:
- a conversation that offers a shell tool (`bash`, `shell`, ...) and holds no `tool` message
  yet gets one `tool_calls` entry running the script's command; one that holds a tool result
  gets the final answer (opencode's loop);
- a request offering no tools gets the answer as its text: that is how a client that edits from
  the reply text (aider's edit formats) is scripted, so the answer may be an edit; `{task}` in it
  is filled with the task id named in the prompt ("on branch task-<id>"), since one server
  answers every parallel agent. Side requests are told apart from the prompt they carry: a
  commit-message request (aider) gets a one-line message, a title request (opencode) a title.
Replies stream as server-sent `chat.completion.chunk`s when the request asks (`"stream": true`),
else come whole. `GET /v1/models` lists one model; any other GET under /v1 gets an empty object.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from typing import Any

from ..model_server import Handler, Request, ScriptedModel

_ids = itertools.count(1)
SHELL_TOOLS = ("bash", "shell", "run_shell_command", "shell_command", "exec_command")
MODEL = "scripted"
_TASK = re.compile(r"on branch task-([\w.-]*[\w-])")  # "on branch task-48." ends a sentence


def _text(content: Any) -> str:
    """A message's content as text (a string, or a list of parts with text)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _has_tool_result(body: dict[str, Any]) -> bool:
    return any(isinstance(m, dict) and m.get("role") == "tool" for m in body.get("messages") or [])


def _shell_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The offered shell tool's function schema, if any."""
    functions = {}
    for tool in body.get("tools") or []:
        fn = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(fn, dict) and fn.get("name"):
            functions[fn["name"]] = fn
    return next((functions[n] for n in SHELL_TOOLS if n in functions), None)


def _arguments(fn: dict[str, Any], command: str) -> dict[str, Any]:
    """The shell tool's arguments: the command (as a string, or argv for an array parameter)."""
    props = (fn.get("parameters") or {}).get("properties") or {}
    key = next((k for k in ("command", "cmd") if k in props), "command")
    args: dict[str, Any] = {key: ["bash", "-lc", command] if props.get(key, {}).get("type") == "array" else command}
    if "description" in props:
        args["description"] = "Run the scripted command"
    return args


def _side_answer(body: dict[str, Any]) -> str | None:
    """The reply to a side request that is not the agent's turn, else None."""
    system = "\n".join(_text(m.get("content")) for m in body.get("messages") or []
                       if isinstance(m, dict) and m.get("role") == "system").lower()
    if "commit message" in system:
        return "Add the scripted change"
    if "title" in system and ("generate" in system or "generator" in system):
        return "Scripted task"
    return None


def _fill(answer: str, body: dict[str, Any]) -> str:
    prompt = "\n".join(_text(m.get("content")) for m in body.get("messages") or [] if isinstance(m, dict))
    found = _TASK.search(prompt)
    return answer.replace("{task}", found.group(1)) if found else answer


def _usage(model: ScriptedModel, req: Request) -> dict[str, int]:
    tokens_in, tokens_out = model.report(req)
    return {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out}


def completions(model: ScriptedModel, req: Request) -> None:
    body = req.json()
    n = next(_ids)
    name = body.get("model") or MODEL
    fn = _shell_tool(body)
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if fn and not _has_tool_result(body):
        call = {"id": f"call_scripted_{n:06d}", "type": "function",
                "function": {"name": fn["name"], "arguments": json.dumps(_arguments(fn, model.script.command))}}
        message["tool_calls"] = [call]
        finish = "tool_calls"
    else:
        side = None if body.get("tools") else _side_answer(body)
        message["content"] = side if side is not None else _fill(model.script.answer, body)
        finish = "stop"
    head = {"id": f"chatcmpl-scripted-{n:06d}", "created": int(time.time()), "model": name,
            "system_fingerprint": "scripted"}
    if not body.get("stream"):
        req.reply(200, dict(head, object="chat.completion", usage=_usage(model, req),
                            choices=[{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}]))
        return

    def chunk(delta: dict[str, Any], reason: str | None = None) -> tuple[None, dict[str, Any]]:
        return None, dict(head, object="chat.completion.chunk",
                          choices=[{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}])

    events = [chunk({"role": "assistant", "content": ""})]
    if "tool_calls" in message:
        call = message["tool_calls"][0]
        events.append(chunk({"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                             "function": {"name": call["function"]["name"], "arguments": ""}}]}))
        events.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": call["function"]["arguments"]}}]}))
    else:
        text = message["content"]
        half = len(text) // 2  # two deltas: the client must join them
        events += [chunk({"content": text[:half]}), chunk({"content": text[half:]})]
    events.append(chunk({}, finish))
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append((None, dict(head, object="chat.completion.chunk", choices=[], usage=_usage(model, req))))
    events.append((None, "[DONE]"))
    req.stream(events)


def models(model: ScriptedModel, req: Request) -> None:
    req.reply(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "scripted"}]})


def other_get(model: ScriptedModel, req: Request) -> None:
    req.reply(200, {})


ROUTES: dict[tuple[str, str], Handler] = {
    ("POST", "/v1/chat/completions"): completions,
    ("POST", "/chat/completions"): completions,
    ("GET", "/v1/models"): models,
    ("GET", "/models"): models,
    ("GET", "/v1"): other_get,
}
