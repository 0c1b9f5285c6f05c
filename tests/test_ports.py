"""Port leases killed midway: `git agent-clean` leaves no port block, and no hold of a lease's
object, to a task that does not exist, and the block can be leased again.

A lease (tasks/ports.py) writes its blob, holds it with refs/agents/port-holds/<id>, reads the
leases, makes refs/agents/ports/<port> and drops the hold in one transaction, then records the
port in the task. Spawn is killed (SIGKILL) before each of those git calls, after the last one,
and between the transaction and the record; then the task is cleaned.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .conftest import Project
from .test_killpoints import _new_project, _stop_leftovers

# Each xdist worker its own ports: a lease checks every port of a block free by binding it, and two
# tests checking the same ports at the same moment would each find one in use.
BASE = 41000 + 40 * int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
RANGE = f"{BASE}-{BASE + 9}"  # one block of 10: a block left held by a gone task would leave none free
TWO = f"{BASE}-{BASE + 19}"  # two blocks


def _agent_refs(project: Project) -> str:
    return project.git("for-each-ref", "--format=%(refname)", "refs/agents/ports/", "refs/agents/port-holds/")


def _lease_calls(tmp_path: Path, ids: list[str]) -> list[int]:
    """The git calls (1-based) of spawn's lease: from writing its blob to the transaction."""
    probe = _new_project(tmp_path / "probe")
    probe.git("config", "agent.portRange", RANGE if len(ids) == 1 else TWO)
    trace = tmp_path / "trace"
    probe.ok("spawn", *ids, "--prompt", "p", "--agent", "true", env={"GIT_AGENTS_TRACE": str(trace)})
    _stop_leftovers(probe)
    calls = [line for line in trace.read_text().splitlines() if line.startswith("trace: git-agents:")]
    hold = next(n for n, line in enumerate(calls, 1) if "refs/agents/port-holds/" in line or
                ("update-ref --stdin" in line and n > 1 and "hash-object" in calls[n - 2]))
    transaction = next(n for n, line in enumerate(calls, 1) if n > hold and "update-ref --stdin" in line)
    return list(range(hold - 1, transaction + 2))  # before each call, and after the last


@pytest.mark.parametrize("ids", [["1"], ["1", "2"]], ids=["lease", "lease_all"])
def test_a_lease_killed_at_any_git_call_leaves_nothing_held_once_clean_ran(tmp_path: Path, ids: list[str]) -> None:
    points = [{"GIT_AGENTS_TEST_KILL_AFTER": str(n)} for n in _lease_calls(tmp_path, ids)]
    points.append({"GIT_AGENTS_TEST_KILL_BEFORE_WRITE": "agent-task.1.port"})  # leased, not yet recorded
    port_range = RANGE if len(ids) == 1 else TWO
    for point in points:
        project = _new_project(tmp_path / f"k{len(list(tmp_path.iterdir()))}")
        project.git("config", "agent.portRange", port_range)
        try:
            killed = project.agent("spawn", *ids, "--prompt", "p", "--agent", "true", env=point)
            assert killed.returncode in (137, -9), (point, killed.stdout, killed.stderr)
            cleaned = project.agent("clean", "--all", "--force")
            assert cleaned.returncode == 0, (point, cleaned.stderr)
            assert _agent_refs(project) == "", point  # no lease, no hold: no task exists
            again = [f"{n}{n}" for n in ids]
            project.ok("spawn", *again, "--prompt", "p", "--agent", "true")
            ports = sorted(project.git("config", f"agent-task.{n}.port") for n in again)
            assert ports == [str(BASE), str(BASE + 10)][:len(ids)], point
        finally:
            _stop_leftovers(project)


def test_any_clean_sweeps_the_leases_and_holds_of_tasks_whose_record_is_gone(tmp_path: Path) -> None:
    """A task's record removed by hand after a killed lease: its hold and lease are taken back
    by the next `git agent-clean`, whatever it was asked to remove."""
    project = _new_project(tmp_path / "p")
    project.git("config", "agent.portRange", TWO)
    project.ok("spawn", "1", "--prompt", "p", "--agent", "true")
    killed = project.agent("spawn", "2", "--prompt", "p", "--agent", "true",
                           env={"GIT_AGENTS_TEST_KILL_BEFORE_WRITE": "agent-task.2.port"})
    assert killed.returncode in (137, -9), killed.stderr
    project.git("update-ref", "refs/agents/port-holds/3", project.git("hash-object", "-w", "--stdin",
                                                                      input="task 3\n"))  # a lease killed early
    project.git("config", "--remove-section", "agent-task.2")
    assert _agent_refs(project).split() == ["refs/agents/port-holds/3", f"refs/agents/ports/{BASE}",
                                            f"refs/agents/ports/{BASE + 10}"]
    try:
        cleaned = project.agent("clean", "--merged")
        assert (cleaned.returncode, cleaned.stdout, cleaned.stderr) == (0, "Nothing to clean.\n", "")
        assert _agent_refs(project) == f"refs/agents/ports/{BASE}"  # task 1's, which exists
        project.ok("spawn", "4", "--prompt", "p", "--agent", "true")
        assert project.git("config", "agent-task.4.port") == str(BASE + 10)
    finally:
        _stop_leftovers(project)
