"""`git agent mcp`: the commands as MCP tools over stdio, for a lead agent that drives git-agents.

Built on the official MCP Python SDK (PyPI `mcp`, 2.x: `MCPServer`), an optional dependency
imported only here. Each tool runs the matching command (`python -m git_agents <verb>`, in the
directory the server was started in: the same code, options and refusals as on the command
line) and returns its exit code with the command's own `--json` object where it has one
(status, conflicts, log), else its output; tools that change tasks (spawn, wait, merge) add
the tasks' `git agent-status --json` entries afterwards, so the caller sees the outcome typed.

Ids are ids: they go after `--` and every value is attached to its option (`--prompt=…`), so no
argument a client sends can become an option (`clean(ids=["--force", "1"])` is a task named
"--force", refused as such). `spawn.agent` and `merge.check` are shell commands by design;
`git agent mcp --restricted` allows only presets (built-in or `agent.preset.<name>`) and the
configured agent.mergeCheck there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


def _run(verb: str, *args: str, cwd: str) -> subprocess.CompletedProcess[str]:
    from git_agents.core import selfrun

    return subprocess.run(selfrun.argv(verb, *args), cwd=cwd, capture_output=True, text=True, errors="replace",
                          stdin=subprocess.DEVNULL, env=selfrun.env(GIT_PAGER="cat", PAGER="cat", NO_COLOR="1"))


def _json(verb: str, *args: str, cwd: str) -> dict[str, Any]:
    """A command's --json object, with its exit code (and stderr when it failed)."""
    proc = _run(verb, "--json", *args, cwd=cwd)
    result: dict[str, Any] = {"exit_code": proc.returncode}
    try:
        result.update(json.loads(proc.stdout))
    except ValueError:
        result["stdout"] = proc.stdout
    if proc.stderr:
        result["stderr"] = proc.stderr
    return result


def _text(proc: subprocess.CompletedProcess[str], **extra: Any) -> dict[str, Any]:
    return {"exit_code": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr, **extra}


def _tasks(ids: list[str], cwd: str) -> list[dict[str, Any]]:
    """git agent-status --json entries of these tasks (those that still exist)."""
    status = _json("status", cwd=cwd)
    wanted = set(ids)
    return [t for t in status.get("tasks", []) if not wanted or t["id"] in wanted]


def _refused(message: str, hint: str) -> dict[str, Any]:
    return {"exit_code": 128, "stdout": "", "stderr": f"fatal: {message}\nhint: {hint}\n"}


def _restriction(cwd: str, agent: str | None = None, check: str | None = None) -> dict[str, Any] | None:
    """Why a restricted server refuses this agent or check (as a tool result), or None when it allows them:
    only a preset's name as the agent, and no check but the configured agent.mergeCheck."""
    from git_agents.core.repo import Repo
    from git_agents.tasks.presets import presets

    repo = Repo.discover(cwd)
    if agent and agent.strip().lower() not in presets(repo):
        return _refused(f"this server is restricted: agent '{agent}' is not a preset",
                        f"use one of {', '.join(sorted(presets(repo)))}, or add one with "
                        "git config agent.preset.<name> <command>")
    configured = repo.setting("agent.mergeCheck")
    if check and check != configured:
        return _refused("this server is restricted: it runs no check but agent.mergeCheck",
                        "leave check out (agent.mergeCheck runs), or set agent.mergeCheck in the repository")
    return None


def build_server(cwd: str, restricted: bool = False) -> Any:
    """The MCP server with one tool per command; `restricted`: only presets as agents, only the
    configured merge check."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("git-agents", instructions=(
        "Run coding agents in parallel on this git repository: each task gets its own worktree and "
        "branch; spawn tasks, watch their status, wait for them, predict and merge their branches, "
        "clean up. Each tool returns the command's exit code and its JSON (as `git agent-<verb> --json`)."))

    @server.tool(description="Create tasks (worktree + branch) and start their agents (git agent-spawn). "
                             "Returns the exit code and the new tasks' status entries.")
    def spawn(ids: list[str], prompt: str, agent: str | None = None, title: str | None = None,
              base: str | None = None, pool: bool = False) -> dict[str, Any]:
        if restricted and (refusal := _restriction(cwd, agent=agent)):
            return {**refusal, "tasks": []}
        args = [f"--prompt={prompt}"]
        args += [f"--agent={agent}"] if agent else ["--no-agent"] if agent == "" else []
        args += [f"--title={title}"] if title else []
        args += [f"--base={base}"] if base else []
        args += ["--pool"] if pool else []
        proc = _run("spawn", *args, "--", *ids, cwd=cwd)
        return _text(proc, tasks=_tasks(ids, cwd))

    @server.tool(description="Every task (or the ids given): state, commits ahead, files changed, unsaved work "
                             "(git agent-status --json).")
    def status(ids: list[str] | None = None) -> dict[str, Any]:
        return _json("status", "--", *(ids or []), cwd=cwd)

    @server.tool(description="Wait until the agents of the ids given (default: all) have exited (git agent-wait). "
                             "Exit code 1 when some failed; returns their status entries.")
    def wait(ids: list[str] | None = None, timeout: float | None = None) -> dict[str, Any]:
        args = [f"--timeout={timeout}"] if timeout is not None else []
        args += ["--", *ids] if ids else ["--all"]
        proc = _run("wait", *args, cwd=cwd)
        return _text(proc, tasks=_tasks(ids or [], cwd))

    @server.tool(description="Merge finished tasks into their target branch (git agent-merge); all=true for every "
                             "finished task; dry_run=true only predicts. Returns the report and the tasks' status.")
    def merge(ids: list[str] | None = None, all: bool = False, dry_run: bool = False,  # noqa: A002 - the option
              check: str | None = None) -> dict[str, Any]:
        if restricted and (refusal := _restriction(cwd, check=check)):
            return {**refusal, "tasks": []}
        args = ["--dry-run"] if dry_run else []
        args += [f"--check={check}"] if check else []
        args += ["--all"] if all else ["--", *(ids or [])]
        proc = _run("merge", *args, cwd=cwd)
        return _text(proc, tasks=_tasks([] if all else list(ids or []), cwd))

    @server.tool(description="Which unmerged tasks change the same files and which pairs would conflict "
                             "(git agent-conflicts --json).")
    def conflicts(ids: list[str] | None = None) -> dict[str, Any]:
        return _json("conflicts", "--", *(ids or []), cwd=cwd)

    @server.tool(description="A task's change against where it left its target (git agent-diff); stat=true "
                             "for a diffstat.")
    def diff(id: str, stat: bool = False) -> dict[str, Any]:  # noqa: A002 - a task id
        proc = _run("diff", *(["--stat"] if stat else []), "--", id, cwd=cwd)
        return _text(proc)

    @server.tool(description="The merged tasks, from the notes on their merge commits (git agent-log --json).")
    def log() -> dict[str, Any]:
        return _json("log", cwd=cwd)

    @server.tool(description="Remove tasks' worktrees and branches (git agent-clean); merged=true for every "
                             "merged task. Refuses (exit 1, the reason in stderr) to lose work unless force=true.")
    def clean(ids: list[str] | None = None, merged: bool = False, force: bool = False) -> dict[str, Any]:
        args = ["--force"] if force else []
        args += ["--merged"] if merged else ["--", *(ids or [])]
        return _text(_run("clean", *args, cwd=cwd))

    return server


def main(argv: list[str]) -> int:
    """`git agent mcp [--restricted]`: serve over stdio until the client closes it."""
    if argv not in ([], ["--restricted"]):
        sys.stderr.write("usage: git agent mcp [--restricted]\n")
        return 129
    try:
        import mcp  # noqa: F401
    except ImportError:
        sys.stderr.write("fatal: git agent mcp needs the MCP Python SDK\n"
                         "hint: install it: pip install 'git-agents[mcp]' (or pip install 'mcp>=2.0')\n")
        return 128
    from git_agents.core.errors import AgentError
    from git_agents.core.repo import Repo

    try:
        repo = Repo.discover()
    except AgentError as error:
        from git_agents.cli.dispatch import report

        report(error)
        return error.code
    build_server(repo.toplevel, restricted=bool(argv)).run("stdio")
    return 0
