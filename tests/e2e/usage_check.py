"""The check every preset's end-to-end suite makes of the usage git-agents records (tasks/usage.py)."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.conftest import Project

from .model_server import Request, ScriptedModel


def assert_usage_recorded(project: Project, task: str, server: ScriptedModel, *, priced: bool,
                          counted: Callable[[Request], bool] = lambda req: True) -> None:
    """The task's recorded tokens equal what the scripted model reported (to the requests the CLI
    `counted`), in status --json, the status table and the agent's log, which stays text; with
    `priced`, the CLI reported a cost too."""
    log = project.ok("logs", task).stdout
    served = server.served(counted)
    row = next(r for r in json.loads(project.ok("status", "--json").stdout)["tasks"] if r["id"] == task)
    assert served[0] > 0, log
    assert (row["tokens_in"], row["tokens_out"]) == tuple(served), log
    assert (row["cost_usd"] is not None) == priced, row
    assert [(r["kind"], r["round"]) for r in row["runs"]] == [("agent", "1")]
    assert f"git-agents: this run used {served[0]} in, {served[1]} out" in log, log
    assert not any(line.startswith('{"type"') for line in log.splitlines()), log
    table = project.ok("status", task).stdout.splitlines()
    assert table[0].split()[5] == "TOKENS" and f"{served[0]}/{served[1]}" in table[1], table
