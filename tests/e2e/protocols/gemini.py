"""The Gemini API wire (generativelanguage v1beta) as the gemini CLI speaks it.

The CLI (GEMINI_API_KEY auth, GOOGLE_GEMINI_BASE_URL pointing here) posts
`/v1beta/models/<model>:streamGenerateContent?alt=sse` for the conversation and
`:generateContent` for its side questions (JSON-schema answers: next speaker, routing, loop
checks), `:countTokens` now and then. A conversation whose last turn carries no
`functionResponse` gets one `run_shell_command` call running the script's command; one that
does gets the final answer. Side questions asking for JSON get a harmless JSON object.
"""

from __future__ import annotations

import json
from typing import Any

from ..model_server import Handler, Request, ScriptedModel


def _model(req: Request) -> str:
    """The model named in the path: /v1beta/models/<model>:<method>."""
    tail = req.path.split("?", 1)[0].rsplit("/", 1)[-1]
    return tail.split(":", 1)[0] or "gemini-2.5-pro"


def _has_tool_result(body: dict[str, Any]) -> bool:
    """Whether the current turn already holds a function response (the shell call's result).

    The turn starts at the last user message that is not a function response, so a resumed
    session (its history holds the earlier turn's result) gets a new tool call for its new prompt.
    """
    contents = [c for c in body.get("contents") or [] if isinstance(c, dict)]
    seen = False
    for content in contents:
        parts = [p for p in content.get("parts") or [] if isinstance(p, dict)]
        if any("functionResponse" in p for p in parts):
            seen = True
        elif content.get("role", "user") == "user" and any(p.get("text") for p in parts):
            seen = False
    return seen


def _side_answer(body: dict[str, Any]) -> str | None:
    """For a side question that wants JSON (generationConfig.responseMimeType), a harmless answer."""
    config = body.get("generationConfig") or body.get("config") or {}
    if config.get("responseMimeType") != "application/json":
        return None
    schema = config.get("responseJsonSchema") or config.get("responseSchema") or {}
    props = schema.get("properties") or {}
    answer: dict[str, Any] = {}
    for name, spec in props.items():
        kind = str((spec or {}).get("type", "string")).lower()
        enum = (spec or {}).get("enum")
        if name == "next_speaker":
            answer[name] = "user"  # the model has finished: never ask it to go on
        elif name == "model_choice":
            answer[name] = enum[0] if enum else "flash"
        elif enum:
            answer[name] = enum[0]
        elif kind == "boolean":
            answer[name] = False
        elif kind in ("number", "integer"):
            answer[name] = (spec or {}).get("minimum", 1)
        elif kind == "array":
            answer[name] = []
        elif kind == "object":
            answer[name] = {}
        else:
            answer[name] = "scripted"
    return json.dumps(answer)


def _candidate(server: ScriptedModel, req: Request, parts: list[dict[str, Any]], model: str) -> dict[str, Any]:
    tokens_in, tokens_out = server.report(req)
    return {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": tokens_in, "candidatesTokenCount": tokens_out,
                              "totalTokenCount": tokens_in + tokens_out}, "modelVersion": model}


def _parts(server: ScriptedModel, body: dict[str, Any]) -> list[dict[str, Any]]:
    side = _side_answer(body)
    if side is not None:
        return [{"text": side}]
    if _has_tool_result(body):
        return [{"text": server.script.answer}]
    return [{"functionCall": {"name": "run_shell_command",
                              "args": {"command": server.script.command,
                                       "description": "Run the scripted command."}}}]


def _stream(server: ScriptedModel, req: Request) -> None:
    req.stream([(None, _candidate(server, req, _parts(server, req.json()), _model(req)))])


def _generate(server: ScriptedModel, req: Request) -> None:
    req.reply(200, _candidate(server, req, _parts(server, req.json()), _model(req)))


def _count_tokens(server: ScriptedModel, req: Request) -> None:
    req.reply(200, {"totalTokens": 10})


def _models(server: ScriptedModel, req: Request) -> None:
    req.reply(200, {"models": [{"name": "models/gemini-2.5-pro", "supportedGenerationMethods": [
        "generateContent", "streamGenerateContent", "countTokens"]}]})


def _dispatch(server: ScriptedModel, req: Request) -> None:
    """POST /v1beta/models/<model>:<method>: one route for every method."""
    method = req.path.split("?", 1)[0].rsplit(":", 1)[-1]
    if method == "streamGenerateContent":
        _stream(server, req)
    elif method == "generateContent":
        _generate(server, req)
    elif method == "countTokens":
        _count_tokens(server, req)
    elif method == "embedContent" or method == "batchEmbedContents":
        req.reply(200, {"embeddings": [{"values": [0.0]}]} if method == "batchEmbedContents"
                  else {"embedding": {"values": [0.0]}})
    else:
        req.reply(404, {"error": {"code": 404, "message": f"scripted model: no method {method}",
                                  "status": "NOT_FOUND"}})


ROUTES: dict[tuple[str, str], Handler] = {
    ("POST", "/v1beta/models/"): _dispatch,
    ("POST", "/v1/models/"): _dispatch,
    ("GET", "/v1beta/models"): _models,
}
