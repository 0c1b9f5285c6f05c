"""A stateful hypothesis test: spawn, stop, clean, merge, pool claim and release in any order,
with agents that misbehave (ignore SIGTERM, detach HEAD and commit, fork a child that writes
later). After every step no commit reachable before is unreachable and no uncommitted file
has vanished."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from .conftest import Project, write_script
from .test_killpoints import _group_alive, _pids, _reachable, _unsaved

AGENTS = {
    "stubborn": """
        trap '' TERM
        sleep 3
        echo "stubborn $GIT_AGENT_TASK" > "s-$GIT_AGENT_TASK.txt" && git add . && git commit -q -m "stubborn"
    """,
    "detach": """
        git checkout -q --detach
        echo "detached $GIT_AGENT_TASK" > "d-$GIT_AGENT_TASK.txt" && git add . && git commit -q -m "detached"
    """,
    "fork": """
        (sleep 3; echo "late $GIT_AGENT_TASK" > "f-$GIT_AGENT_TASK.txt"; git add .; git commit -q -m late) &
        exit 0
    """,
    "plain": """
        echo "plain $GIT_AGENT_TASK" > "p-$GIT_AGENT_TASK.txt" && git add . && git commit -q -m "plain"
    """,
}

KINDS = ["fork", "stubborn", "detach", "plain"]


class Repository(RuleBasedStateMachine):
    """One repository driven by git agent-* commands."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="ga-stateful-"))
        self.project = Project(self.root / "project")
        self.project.path.mkdir()
        self.project.git("init", "-q")
        self.project.commit_file("shared.txt", "line 1\n", "initial")
        (self.project.path / "notes.txt").write_text("untracked notes\n")
        self.project.ok("pool", "create", "1")
        for name, body in AGENTS.items():
            write_script(self.root / f"{name}.sh", body)
        self.next_id = 1
        self.ids: list[str] = []
        self.slot_claims: list[str] = []
        self.before = _reachable(self.project)
        self.unsaved = _unsaved(self.project)
        self.agents: dict[str, int] = {}  # task -> its agent's process group, before the step

    def _step(self, *command: str) -> None:
        self.before, self.unsaved = _reachable(self.project), _unsaved(self.project)
        self.agents = self._agents()
        proc = self.project.agent(*command, timeout=120)  # type: ignore[arg-type]
        assert "Traceback" not in proc.stderr, (command, proc.stderr)
        assert proc.returncode in (0, 1), (command, proc.returncode, proc.stderr)

    def _agents(self) -> dict[str, int]:
        out = self.project.git("config", "--get-regexp", r"^agent-task\..*\.pid$", check=False)
        return {line.split()[0].split(".")[1]: int(line.split()[1]) for line in out.splitlines()}

    # Hypothesis tries the first elements first: the nastiest agent, removed or stopped at once.
    @initialize(kind=st.sampled_from(KINDS), pooled=st.booleans(), then=st.sampled_from(["clean", "stop", "none"]))
    def first_task(self, kind: str, pooled: bool, then: str) -> None:
        self.spawn(kind, pooled)
        if then == "clean":
            self._step("clean", self.ids[-1])
        elif then == "stop":
            self._step("stop", self.ids[-1], "--timeout", "0.5")

    @rule(kind=st.sampled_from(KINDS), pooled=st.booleans())
    def spawn(self, kind: str, pooled: bool) -> None:
        task = str(self.next_id)
        self.next_id += 1
        self.ids.append(task)
        self._step("spawn", task, "--prompt", "p", "--agent", str(self.root / f"{kind}.sh"),
                   *(["--pool"] if pooled else []))

    @rule(data=st.data())
    def stop(self, data: st.DataObject) -> None:
        if self.ids:
            self._step("stop", data.draw(st.sampled_from(self.ids)), "--timeout", "0.5")

    @rule(data=st.data())
    def clean(self, data: st.DataObject) -> None:
        if self.ids:
            self._step("clean", data.draw(st.sampled_from(self.ids)))

    @rule()
    def clean_merged(self) -> None:
        self._step("clean", "--merged")

    @rule()
    def merge(self) -> None:
        self._step("merge", "--all")

    @rule()
    def claim_task(self) -> None:
        task = str(self.next_id)
        self.next_id += 1
        self.ids.append(task)
        self._step("pool", "claim", "--task", task, "--prompt", "p")

    @rule()
    def release_stale(self) -> None:
        self._step("pool", "release", "--stale")

    @invariant()
    def nothing_lost(self) -> None:
        lost = self.before - _reachable(self.project)
        assert not lost, f"commits became unreachable: {lost}"
        for path, text in self.unsaved.items():
            assert path.is_file(), f"{path} vanished"
            assert path.read_text() == text or path.name.startswith(("s-", "d-", "f-", "p-")), f"{path} changed"
        assert self.project.agent("status").returncode == 0
        # no task was removed while a process of its agent still ran in its worktree
        left = self._agents()
        for task, pid in self.agents.items():
            assert task in left or not _group_alive(pid), f"task {task} removed while its agent still runs"

    def teardown(self) -> None:
        import os
        import shutil
        import signal

        for pid in _pids(self.project):
            if _group_alive(pid):
                os.killpg(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def test_misbehaving_agents_never_lose_work() -> None:
    run_state_machine_as_test(Repository, settings=settings(
        max_examples=3, stateful_step_count=6, deadline=None, derandomize=True,
        suppress_health_check=list(HealthCheck)))
