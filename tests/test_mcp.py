"""git agent mcp: the commands as MCP tools, driven by the MCP SDK's own stdio client."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import Project

pytest.importorskip("mcp")


def _session(project: Project, script: Callable[..., Any], *options: str) -> None:
    """Start `git agent mcp <options>` in the project as an MCP client does, and run `script(call)`."""
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    async def main() -> None:
        params = StdioServerParameters(command="git", args=["agent", "mcp", *options], cwd=str(project.path),
                                       env=dict(os.environ))
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()

            async def call(tool: str, **arguments: Any) -> dict[str, Any]:
                result = await session.call_tool(tool, arguments)
                assert not result.is_error, result
                assert json.loads(result.content[0].text) == result.structured_content
                return dict(result.structured_content)

            tools = await session.list_tools()
            assert [t.name for t in tools.tools] == ["spawn", "status", "wait", "merge", "conflicts", "diff",
                                                      "log", "clean"]
            await script(call)

    asyncio.run(main())


def test_a_lead_agent_spawns_waits_predicts_merges_and_cleans(project: Project, committing_agent: Path) -> None:
    main_before = project.git("rev-parse", "main")

    async def script(call) -> None:  # type: ignore[no-untyped-def]
        spawned = await call("spawn", ids=["1", "2"], prompt="add your file", agent=str(committing_agent))
        assert spawned["exit_code"] == 0
        assert [(t["id"], t["branch"]) for t in spawned["tasks"]] == [("1", "task-1"), ("2", "task-2")]
        waited = await call("wait")
        assert waited["exit_code"] == 0
        assert [(t["id"], t["state"], t["ahead"]) for t in waited["tasks"]] == [("1", "exited 0", 1),
                                                                                ("2", "exited 0", 1)]
        # status is git agent-status --json, with the exit code
        status = await call("status")
        command = json.loads(project.ok("status", "--json").stdout)
        assert status == {"exit_code": 0, **command}
        conflicts = await call("conflicts")
        assert (conflicts["exit_code"], conflicts["pairs"], sorted(conflicts["tasks"])) == (0, [], ["1", "2"])
        diff = await call("diff", id="1", stat=True)
        assert diff["exit_code"] == 0 and "file-1.txt | 1 +" in diff["stdout"]
        predicted = await call("merge", all=True, dry_run=True)
        assert predicted["stdout"] == ("Task 1 would merge cleanly\nTask 2 would merge cleanly\n"
                                       "2 would merge, 0 would not\n")
        assert project.git("rev-parse", "main") == main_before
        merged = await call("merge", all=True)
        assert merged["exit_code"] == 0 and [t["state"] for t in merged["tasks"]] == ["merged", "merged"]
        log = await call("log")
        assert log["exit_code"] == 0 and [e["task"] for e in log["merges"]] == ["2", "1"]
        cleaned = await call("clean", merged=True)
        assert (cleaned["exit_code"], cleaned["stdout"]) == (0, "Removed task 1\nRemoved task 2\n")

    _session(project, script)
    assert project.git("log", "--format=%s", "--first-parent", f"{main_before}..main").splitlines() == [
        "feat: Task 2 - add your file", "feat: Task 1 - add your file"]


def test_a_refusal_comes_back_as_an_exit_code_and_stderr(project: Project) -> None:
    project.ok("spawn", "7", "--prompt", "x")
    project.commit_file("x.txt", "x\n", cwd=project.worktrees / "task-7")

    async def script(call) -> None:  # type: ignore[no-untyped-def]
        refused = await call("clean", ids=["7"])
        assert (refused["exit_code"], refused["stdout"]) == (1, "")
        assert refused["stderr"] == ("error: not removing task 7: its branch task-7 has 1 commit(s) not merged "
                                     "into main\nhint: merge or save that work first, or pass --force to discard it\n")
        unknown = await call("status", ids=["nope"])
        assert unknown == {"exit_code": 128, "stdout": "",
                           "stderr": "fatal: no such task: 'nope'\nhint: `git agent-status` lists the tasks\n"}

    _session(project, script)
    assert (project.worktrees / "task-7" / "x.txt").exists()


def test_ids_and_values_never_become_options(project: Project, tmp_path: Path) -> None:
    project.ok("spawn", "1", "--prompt", "x")
    untracked = project.worktrees / "task-1" / "notes.txt"
    untracked.write_text("the user's untracked work\n")
    pwned = tmp_path / "pwned"
    evil = f"touch {pwned}"

    async def script(call) -> None:  # type: ignore[no-untyped-def]
        cleaned = await call("clean", ids=["--force", "1"], force=False)
        assert (cleaned["exit_code"], cleaned["stdout"]) == (128, "")
        assert cleaned["stderr"] == ("fatal: invalid task id '--force': a task id starts with a letter or digit and "
                                     "holds only letters, digits, '.', '_' and '-'\n"
                                     "hint: use something like 48, fix-login or issue-1234\n")
        spawned = await call("spawn", ids=[f"--agent={evil}", "2"], prompt="x")
        assert spawned["exit_code"] == 128 and spawned["stderr"].startswith(f"fatal: invalid task id '--agent={evil}'")
        assert spawned["tasks"] == []
        merged = await call("merge", ids=[f"--check={evil}", "1"])
        assert merged["exit_code"] == 128 and "invalid task id '--check=" in merged["stderr"]
        predicted = await call("conflicts", ids=[f"--prompt-file={evil}"])
        assert predicted["exit_code"] == 128 and "invalid task id '--prompt-file=" in predicted["stderr"]
        diffed = await call("diff", id="--all")
        assert diffed["exit_code"] == 128 and "invalid task id '--all'" in diffed["stderr"]
        # a prompt or title that looks like an option is text
        spawned = await call("spawn", ids=["3"], prompt="--no-agent", title="--pool")
        assert spawned["exit_code"] == 0, spawned
        assert project.ok("status", "3", "--json").stdout.count('"title": "--pool"') == 1

    _session(project, script)
    assert untracked.read_text() == "the user's untracked work\n"
    assert not pwned.exists()


def test_a_restricted_server_runs_only_presets_and_the_configured_check(project: Project, tmp_path: Path,
                                                                         committing_agent: Path) -> None:
    pwned = tmp_path / "pwned"
    project.git("config", "agent.preset.mine", str(committing_agent))
    project.git("config", "agent.mergeCheck", "test -f file-1.txt")

    async def script(call) -> None:  # type: ignore[no-untyped-def]
        refused = await call("spawn", ids=["1"], prompt="x", agent=f"touch {pwned}")
        assert refused["exit_code"] == 128 and refused["tasks"] == []
        assert refused["stderr"].startswith(f"fatal: this server is restricted: agent 'touch {pwned}' is not a preset\n"
                                            "hint: use one of ")
        assert "mine" in refused["stderr"] and refused["stderr"].endswith(
            ", or add one with git config agent.preset.<name> <command>\n")
        spawned = await call("spawn", ids=["1"], prompt="x", agent="mine")
        assert spawned["exit_code"] == 0, spawned
        assert (await call("wait", ids=["1"]))["exit_code"] == 0
        refused = await call("merge", ids=["1"], check=f"touch {pwned}")
        assert refused == {"exit_code": 128, "stdout": "", "tasks": [], "stderr":
                           "fatal: this server is restricted: it runs no check but agent.mergeCheck\n"
                           "hint: leave check out (agent.mergeCheck runs), or set agent.mergeCheck in the repository\n"}
        merged = await call("merge", ids=["1"], check="test -f file-1.txt")
        assert merged["exit_code"] == 0 and [t["state"] for t in merged["tasks"]] == ["merged"]

    _session(project, script, "--restricted")
    assert not pwned.exists()
    assert project.git("show", "main:file-1.txt") == "work of task 1"


def test_commands_run_by_the_server_are_this_code(tmp_path: Path) -> None:
    import subprocess
    import sys

    import git_agents
    from git_agents.core import selfrun

    code = "import git_agents, sys; print(git_agents.__file__)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=selfrun.env(), capture_output=True,
                          text=True, check=True)
    assert proc.stdout == git_agents.__file__ + "\n"  # not another installation found from the child's cwd
