"""git agent-top: its live model (cost per tick), the Textual app under its own pilot, and a real terminal (tmux)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from git_agents.core.repo import Repo
from git_agents.tui.model import Overview, Row, last_line

from .conftest import ROOT, Project, run, write_script
from .test_tmux import INTERACTIVE, tmux_server, typed  # noqa: F401 - tmux_server is a fixture


def _wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _done(project: Project, *ids: str) -> None:
    project.ok("wait", *ids)


def _rows(project: Project, **kw: object) -> dict[str, Row]:
    return {r.id: r for r in Overview(Repo.discover(str(project.path)), **kw).refresh()}  # type: ignore[arg-type]


@pytest.fixture
def three_tasks(project: Project, tmp_path: Path) -> Project:
    """Task 1 adds a file; tasks 2 and 3 both rewrite shared.txt (a predicted conflict); task 3
    leaves an untracked file; task 4 waits for the file `go` in the test's directory."""
    project.ok("spawn", "1", "--prompt", "adds a file", "--agent",
               'echo one > one.txt && git add one.txt && git commit -q -m one && echo "all done"')
    for task in ("2", "3"):
        project.ok("spawn", task, "--prompt", f"rewrites shared {task}", "--agent",
                   f'echo "task {task}" > shared.txt && git commit -q -am "shared {task}"'
                   + (" && echo scratch > notes.txt" if task == "3" else ""))
    go = tmp_path / "go"
    waiting = write_script(tmp_path / "waiting.sh", f"""
        echo "waiting for go"
        while [ ! -e '{go}' ]; do sleep 0.05; done
    """)
    project.ok("spawn", "4", "--prompt", "waits", "--agent", str(waiting))
    _done(project, "1", "2", "3")
    _wait_for(lambda: "waiting for go" in (project.path / ".git/agents/tasks/4/agent.log").read_text())
    return project


def test_rows_show_state_commits_files_unsaved_work_conflicts_and_log(three_tasks: Project) -> None:
    rows = _rows(three_tasks)
    assert list(rows) == ["1", "2", "3", "4"]
    summary = {i: (r.state, r.ahead, r.files, r.dirty, r.conflicts, r.log_line) for i, r in rows.items()}
    assert summary == {
        "1": ("exited 0", 1, 1, False, [], "all done"),
        "2": ("exited 0", 1, 1, False, ["3"], ""),
        "3": ("exited 0", 1, 1, True, ["2"], ""),
        "4": ("running", 0, 0, False, [], "waiting for go"),
    }
    assert rows["1"].elapsed().endswith("s") and rows["4"].finished == ""
    three_tasks.ok("stop", "4")


def test_elapsed_and_last_line(tmp_path: Path) -> None:
    row = Row("1", "t", "exited 0", "exited", "2026-01-01T10:00:00+00:00", "2026-01-01T10:03:05+00:00",
              1, 1, False)
    assert row.elapsed() == "3m05s"
    row.finished = "2026-01-01T12:07:59+00:00"
    assert row.elapsed() == "2h07m"
    row.started = ""
    assert row.elapsed() == "-"
    log = tmp_path / "log"
    log.write_bytes(b"first\n\x1b[32mgreen \xff line\x1b[0m\r\n\n  \n")
    assert last_line(str(log)) == "green \ufffd line"
    assert last_line(str(tmp_path / "missing")) == ""


def test_a_tick_costs_two_git_calls_when_nothing_changed_and_status_only_where_due(
        project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [str(i) for i in range(1, 31)]
    project.ok("spawn", *ids, "--prompt", "idle")
    trace = tmp_path / "trace"
    monkeypatch.setenv("GIT_AGENTS_TRACE", str(trace))
    now = [1000.0]
    model = Overview(Repo.discover(str(project.path)), clock=lambda: now[0])

    def calls() -> list[str]:
        lines = trace.read_text().splitlines() if trace.exists() else []
        trace.write_text("")
        return [line.split(": git ", 1)[1].split(" (in ")[0].split()[0] for line in lines]

    assert len(model.refresh()) == 30
    first = calls()
    assert first.count("--no-optional-locks") == 30  # the first look: every worktree's git status, once
    for _ in range(3):  # nothing changed: the config and the branch tips, nothing per task
        now[0] += 1
        model.refresh()
        assert calls() == ["config", "for-each-ref"]
    run(["git", "add", "README"], project.worktrees / "task-7", check=True)  # touches task 7's index
    now[0] += 1
    rows = {r.id: r for r in model.refresh()}
    assert calls() == ["config", "for-each-ref", "--no-optional-locks"]
    assert rows["7"].dirty is False  # README was unchanged: nothing staged
    now[0] += 10  # every worktree is due again: no more than status_per_tick (10) a tick
    model.refresh()
    assert calls().count("--no-optional-locks") == 10
    now[0] += 1
    model.refresh()
    assert calls().count("--no-optional-locks") == 10


def test_a_new_commit_is_seen_at_the_next_tick(project: Project) -> None:
    project.ok("spawn", "5", "--prompt", "x")
    model = Overview(Repo.discover(str(project.path)))
    assert [(r.ahead, r.files) for r in model.refresh()] == [(0, 0)]
    project.commit_file("new.txt", "new\n", cwd=project.worktrees / "task-5")
    assert [(r.ahead, r.files, r.dirty) for r in model.refresh()] == [(1, 1, False)]


# -- the app, under Textual's pilot ---------------------------------------------------------------

def _pilot(project: Project, script: Callable[..., object], size: tuple[int, int] = (160, 40)) -> None:
    """Run the app headless in the project and drive it with `script(app, pilot)` (a coroutine)."""
    from git_agents.tui.app import TopApp

    cwd = os.getcwd()
    os.chdir(project.path)
    try:
        app = TopApp(Repo.discover(str(project.path)), interval=0.2)

        async def main() -> None:
            async with app.run_test(size=size) as pilot:
                await script(app, pilot)  # type: ignore[misc]

        asyncio.run(main())
    finally:
        os.chdir(cwd)


async def _until(pilot: object, condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.05)  # type: ignore[attr-defined]


def _screen_text(app: object) -> str:
    from textual.widgets import Static

    return "\n".join(str(w.content) for w in app.screen.query(Static))  # type: ignore[attr-defined]


def test_app_rows_then_diff_view(three_tasks: Project) -> None:
    from textual.widgets import DataTable

    async def script(app, pilot) -> None:  # type: ignore[no-untyped-def]
        await _until(pilot, lambda: len(app.rows) == 4 and app.rows[2].dirty is not None)
        table = app.query_one(DataTable)
        assert [str(table.get_cell_at((i, 0))) for i in range(4)] == ["1", "2", "3", "4"]
        assert [str(table.get_cell_at((i, 1))) for i in range(4)] == ["exited 0", "exited 0", "exited 0", "running"]
        assert str(table.get_cell_at((1, 7))) == "3" and str(table.get_cell_at((2, 5))) == "yes"
        assert str(table.get_cell_at((3, 9))) == "waiting for go"
        await pilot.press("down", "down")  # task 3
        assert app.selected() == "3"
        await pilot.press("d")
        # the screen is pushed before its widgets are mounted: wait for the text itself
        await _until(pilot, lambda: type(app.screen).__name__ == "DiffScreen" and "diff --git" in _screen_text(app))
        text = _screen_text(app)
        assert "diff --git a/shared.txt b/shared.txt" in text and "+task 3" in text and "-line 1" in text
        await pilot.press("escape")
        await _until(pilot, lambda: type(app.screen).__name__ != "DiffScreen")
        await pilot.press("q")

    _pilot(three_tasks, script)
    three_tasks.ok("stop", "4")


def test_app_stop_asks_first_then_stops_the_agent(three_tasks: Project) -> None:
    async def script(app, pilot) -> None:  # type: ignore[no-untyped-def]
        await _until(pilot, lambda: len(app.rows) == 4)
        await pilot.press("down", "down", "down")
        assert app.selected() == "4"
        await pilot.press("k")
        await _until(pilot, lambda: "Stop the agent of task 4? [y/n]" in _screen_text(app))
        await pilot.press("n")  # no: nothing happens
        await pilot.pause(0.5)
        assert app.rows[3].state == "running"
        await pilot.press("k")
        await _until(pilot, lambda: type(app.screen).__name__ == "OutputScreen")
        await pilot.press("y")
        await _until(pilot, lambda: "Stopped task 4" in _screen_text(app))
        await pilot.press("escape")
        await _until(pilot, lambda: app.rows[3].state == "exited 143")
        await pilot.press("q")

    _pilot(three_tasks, script)


def test_app_merge_all_shows_the_prediction_and_merges_on_yes(three_tasks: Project) -> None:
    three_tasks.ok("stop", "4")
    main_before = three_tasks.git("rev-parse", "main")

    async def script(app, pilot) -> None:  # type: ignore[no-untyped-def]
        await _until(pilot, lambda: len(app.rows) == 4)
        await pilot.press("M")
        await _until(pilot, lambda: "Merge every finished task? [y/n]" in _screen_text(app))
        text = _screen_text(app)
        # as git agent-merge --dry-run --all prints it: 3 is skipped (unsaved work), 4 (stopped)
        assert "Task 1 would merge cleanly\nTask 2 would merge cleanly\n2 would merge, 2 would not\n" in text
        assert "warning: skipped task 3: its worktree has uncommitted or untracked work" in text
        assert three_tasks.git("rev-parse", "main") == main_before  # only predicted so far
        await pilot.press("y")
        await _until(pilot, lambda: "2 merged, 2 not merged" in _screen_text(app))
        await pilot.press("escape")
        await _until(pilot, lambda: [r.state for r in app.rows][:2] == ["merged", "merged"])
        await pilot.press("q")

    _pilot(three_tasks, script)
    assert three_tasks.git("log", "--format=%s", f"{main_before}..main", "--first-parent") == \
        "feat: Task 2 - rewrites shared 2\nfeat: Task 1 - adds a file"


def test_app_clean_shows_the_refusal_and_keeps_the_work(three_tasks: Project) -> None:
    three_tasks.ok("stop", "4")

    async def script(app, pilot) -> None:  # type: ignore[no-untyped-def]
        await _until(pilot, lambda: len(app.rows) == 4)
        await pilot.press("down", "down", "c")
        await _until(pilot, lambda: type(app.screen).__name__ == "OutputScreen")
        await pilot.press("y")
        await _until(pilot, lambda: "not removing task 3" in _screen_text(app))
        assert "error: not removing task 3: its worktree has uncommitted or untracked work (notes.txt); its " \
               "branch task-3 has 1 commit(s) not merged into main\n" \
               "hint: merge or save that work first, or pass --force to discard it" in _screen_text(app)
        await pilot.press("escape", "q")

    _pilot(three_tasks, script)
    assert (three_tasks.worktrees / "task-3" / "notes.txt").exists()


def test_app_log_view_follows_the_log(three_tasks: Project, tmp_path: Path) -> None:
    from textual.widgets import Log

    log = three_tasks.path / ".git/agents/tasks/4/agent.log"

    async def script(app, pilot) -> None:  # type: ignore[no-untyped-def]
        await _until(pilot, lambda: len(app.rows) == 4)
        await pilot.press("down", "down", "down", "enter")
        await _until(pilot, lambda: type(app.screen).__name__ == "LogScreen")
        widget = app.screen.query_one(Log)
        await _until(pilot, lambda: "waiting for go" in "\n".join(widget.lines))
        with open(log, "a") as fh:
            fh.write("a line written later\n")
        await _until(pilot, lambda: "a line written later" in "\n".join(widget.lines))
        seen = app.refreshes  # the rows behind the log keep refreshing
        await _until(pilot, lambda: app.refreshes >= seen + 2)
        await pilot.press("escape")
        await _until(pilot, lambda: type(app.screen).__name__ != "LogScreen")
        await pilot.press("q")

    _pilot(three_tasks, script)
    three_tasks.ok("stop", "4")


def test_app_attach_refuses_a_task_without_a_window_as_the_command_does(project: Project) -> None:
    project.ok("spawn", "9", "--prompt", "x")
    command = project.agent("attach", "9")

    async def script(app, pilot) -> None:  # type: ignore[no-untyped-def]
        await _until(pilot, lambda: len(app.rows) == 1)
        await pilot.press("a")
        assert command.returncode == 128
        await _until(pilot, lambda: command.stderr.rstrip("\n") in _screen_text(app))
        await pilot.press("escape", "q")

    _pilot(project, script)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_app_send_types_into_an_interactive_agent(
        project: Project, tmp_path: Path, tmux_server: Callable[..., subprocess.CompletedProcess[str]]) -> None:  # noqa: F811
    script_path = write_script(tmp_path / "interactive.sh", INTERACTIVE)
    project.ok("spawn", "--tmux", "1", "--agent", str(script_path), "--prompt", "talk to me")
    _wait_for(lambda: "agent 1 ready" in (project.path / ".git/agents/tasks/1/agent.log").read_text())

    async def script(app, pilot) -> None:  # type: ignore[no-untyped-def]
        await _until(pilot, lambda: len(app.rows) == 1)
        await pilot.press("s")
        await _until(pilot, lambda: type(app.screen).__name__ == "SendScreen")
        await pilot.press(*"-- commit", "enter")  # a leading dash is text, not an option
        await _until(pilot, lambda: type(app.screen).__name__ == "OutputScreen")
        assert app.screen.query_one("VerticalScroll").border_title == "git agent-send 1 (exit 0)"
        await pilot.press("escape", "q")

    _pilot(project, script)
    _wait_for(lambda: typed(project, "1") == "-- commit\n")
    project.ok("send", "1", "quit 0")
    waited = project.agent("wait", "1")  # "-- commit" is not the agent's "commit": it did nothing
    assert (waited.returncode, waited.stdout) == (0, "task 1: exited 0, no change\n")


# -- start-up and a real terminal -------------------------------------------------------------------

def test_only_top_imports_textual() -> None:
    code = ("import sys, io; sys.stdout = io.StringIO(); from git_agents.cli.dispatch import main, load, build_parser; "
            "[build_parser(v, load(v)) for v in ('status', 'merge', 'top', 'diff')]; "
            "sys.stdout = sys.__stdout__; print(sorted({m.split('.')[0] for m in sys.modules} & {'textual', 'rich'}))")
    proc = run([sys.executable, "-c", code], ROOT, check=True)
    assert proc.stdout == "[]\n"


def test_top_needs_a_terminal(project: Project) -> None:
    proc = project.agent("top")
    assert (proc.returncode, proc.stdout) == (128, "")
    assert proc.stderr == ("fatal: git agent-top needs a terminal\n"
                           "hint: in a log or a pipe, use `git agent-status --watch`\n")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_top_in_a_real_terminal(three_tasks: Project, tmp_path: Path) -> None:
    socket = str(tmp_path / "tmux.sock")
    subprocess.run(["tmux", "-S", socket, "new-session", "-d", "-x", "200", "-y", "40", "-c", str(three_tasks.path),
                    "git agent-top; echo EXIT=$?; sleep 30"], check=True, env=os.environ)

    def screen() -> list[str]:
        return subprocess.run(["tmux", "-S", socket, "capture-pane", "-p"], capture_output=True,
                              text=True, check=True).stdout.splitlines()

    try:
        _wait_for(lambda: any(line.split()[:2] == ["4", "running"] for line in screen()), timeout=60)
        lines = screen()
        # LOG, the last column, may lie past the right edge (the table scrolls sideways)
        assert lines[1].split()[:9] == ["ID", "STATE", "ELAPSED", "AHEAD", "FILES", "DIRTY", "TOKENS", "CONFLICTS",
                                        "TITLE"]
        assert [line.split()[:2] for line in lines[2:6]] == [["1", "exited"], ["2", "exited"], ["3", "exited"],
                                                             ["4", "running"]]
        subprocess.run(["tmux", "-S", socket, "send-keys", "q"], check=True)
        _wait_for(lambda: "EXIT=0" in screen(), timeout=30)
    finally:
        subprocess.run(["tmux", "-S", socket, "kill-server"], capture_output=True, check=False)
        three_tasks.agent("stop", "4")


def test_app_shows_titles_asks_each_question_once_and_n_starts_a_new_task(project: Project) -> None:
    from textual.widgets import DataTable

    project.ok("spawn", "7", "--no-agent", "--title", "free the mixer channel", "--prompt", "x")

    async def script(app, pilot) -> None:  # type: ignore[no-untyped-def]
        await _until(pilot, lambda: len(app.rows) == 1)
        table = app.query_one(DataTable)
        assert [str(c.label) for c in table.columns.values()][-2:] == ["TITLE", "LOG"]
        assert str(table.get_cell_at((0, 8))) == "free the mixer channel"
        await pilot.press("c")
        question = "Remove task 7's worktree and branch (work is never lost: git agent-clean refuses then)?"
        await _until(pilot, lambda: question in _screen_text(app))
        assert _screen_text(app).count(question) == 1, _screen_text(app)
        await pilot.press("n")  # no: nothing happens
        await _until(pilot, lambda: type(app.screen).__name__ != "OutputScreen")
        await pilot.press("n")  # on the table: a new task
        await _until(pilot, lambda: type(app.screen).__name__ == "SpawnScreen")
        await pilot.press(*"fix the typo", "enter")
        await _until(pilot, lambda: "Prepared task 8 on branch task-8" in _screen_text(app))
        await pilot.press("escape")
        await _until(pilot, lambda: [r.id for r in app.rows] == ["7", "8"])
        assert app.rows[1].title == "fix the typo"
        await pilot.press("q")

    _pilot(project, script)
    assert project.git("rev-parse", "--verify", "task-8") == project.git("rev-parse", "main")
