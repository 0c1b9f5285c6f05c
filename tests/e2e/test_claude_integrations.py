"""The real Claude Code CLI with git-agents as its worktree provider (hooks) and as an MCP server.

Same set-up as test_claude.py (its `model` fixture: the pinned claude on PATH, the scripted
Anthropic model on 127.0.0.1, a hermetic home). `claude --worktree <name> -p` runs our
WorktreeCreate hook, works in the pool slot it returns, and its commit is merged by
`git agent-merge --all`; with `--mcp-config` the scripted model makes one MCP tool call,
`spawn`, and the task exists.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from git_agents.tasks.presets import PRESETS, preset_env

from ..conftest import Project, run
from .model_server import Request, Script, ScriptedModel
from .protocols import anthropic
from .protocols.anthropic import ROUTES
from .test_claude import model  # noqa: F401 - the fixture

WORKTREE_COMMAND = "echo 'from the claude worktree' > wt.txt && git add wt.txt && git commit -q -m 'claude: add wt.txt'"
CLAUDE = ["claude", "-p", "--dangerously-skip-permissions"]
ENV = preset_env(PRESETS["claude"])  # what the engine gives claude (IS_SANDBOX=1 as root)
# MCP tools offered up front, not behind ToolSearch, so the scripted model can call one directly
MCP_ENV = {**ENV, "ENABLE_TOOL_SEARCH": "false"}


@pytest.fixture
def script_worktree(model: ScriptedModel) -> ScriptedModel:  # noqa: F811
    model.script = Script(WORKTREE_COMMAND)
    return model


def test_claude_worktree_comes_from_the_pool_and_merges(project: Project,
                                                        script_worktree: ScriptedModel) -> None:
    project.ok("pool", "create", "1")
    install = run(["git", "agent", "hook", "install", "claude"], project.path)
    assert install.returncode == 0, install.stderr
    proc = run([*CLAUDE, "--worktree", "review-1", "Add wt.txt and commit it."], project.path, timeout=120, env=ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    slot = project.worktrees / "pool-1"
    status = json.loads(project.ok("status", "--json").stdout)["tasks"]
    assert [(t["id"], t["slot"], t["worktree"], t["ahead"]) for t in status] == [
        ("review-1", "pool-1", str(slot), 1)], proc.stdout + proc.stderr
    assert project.git("log", "-1", "--format=%s", "task-review-1") == "claude: add wt.txt"
    merged = project.ok("merge", "--all")
    assert merged.stdout.startswith("Merged task review-1 ("), merged.stdout + merged.stderr
    assert (project.path / "wt.txt").read_text() == "from the claude worktree\n"


_ids = itertools.count(1)
SPAWN_TOOL = "mcp__git-agents__spawn"


def _mcp_messages(server: ScriptedModel, req: Request) -> None:
    """The main loop, when it offers git-agents' spawn tool and has no tool result yet: one call of it."""
    body = req.json()
    names = [t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)]
    if SPAWN_TOOL not in names:  # a side request (title, summary): as test_claude's model answers it
        anthropic.messages(server, req)
        return
    if anthropic._has_tool_result(body):
        _reply(req, body, {"type": "text", "text": "Spawned."})
        return
    _reply(req, body, {"type": "tool_use", "id": f"toolu_mcp_{next(_ids):06d}", "name": SPAWN_TOOL,
                       "input": {"ids": ["from-mcp"], "prompt": "Started by the lead agent over MCP."}})


def _reply(req: Request, body: dict[str, Any], block: dict[str, Any]) -> None:
    stop = "tool_use" if block["type"] == "tool_use" else "end_turn"
    usage = {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    message = {"id": f"msg_mcp_{next(_ids):06d}", "type": "message", "role": "assistant",
               "model": body.get("model") or "claude-scripted", "content": [block], "stop_reason": stop,
               "stop_sequence": None, "usage": usage}
    if not body.get("stream"):
        req.reply(200, message)
        return
    start = dict(block, input={}) if block["type"] == "tool_use" else dict(block, text="")
    delta = ({"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
             if block["type"] == "tool_use" else {"type": "text_delta", "text": block["text"]})
    req.stream([
        ("message_start", {"type": "message_start", "message": dict(message, content=[], stop_reason=None)}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": start}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                           "usage": {"output_tokens": 5}}),
        ("message_stop", {"type": "message_stop"}),
    ])


def test_an_mcp_call_from_claude_spawns_a_task(project: Project, model: ScriptedModel,  # noqa: F811
                                               tmp_path: Path) -> None:
    pytest.importorskip("mcp")
    model.routes = {**ROUTES, ("POST", "/v1/messages"): _mcp_messages}
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"git-agents": {"command": "git", "args": ["agent", "mcp"]}}}))
    # as the README writes it: the prompt before --mcp-config, which takes every word after it as a file
    proc = run([*CLAUDE, "Spawn task from-mcp.", "--mcp-config", str(config)],
               project.path, timeout=120, env=MCP_ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status = json.loads(project.ok("status", "--json").stdout)["tasks"]
    assert [(t["id"], t["branch"], t["state"]) for t in status] == [("from-mcp", "task-from-mcp", "not started")], \
        proc.stdout + proc.stderr
    assert project.ok("prompt", "from-mcp").stdout.rstrip().endswith("Started by the lead agent over MCP.")
    # the tool result went back to the model: the turn after it saw the spawn's JSON
    results = [r.body for r in model.requests if r.path.startswith("/v1/messages") and b"tool_result" in r.body]
    assert any(b"task-from-mcp" in body for body in results)

