"""Merging never gets stuck: untracked files in the way, a full disk, a half-made worktree, missing branches."""

from __future__ import annotations

from pathlib import Path

from .conftest import Project
from .test_merge_queue import NOTES, journal_path, make_tasks


def test_untracked_file_in_the_way_leaves_out_only_that_task(project: Project) -> None:
    make_tasks(project, {"1": {"a.txt": "a\n"}, "2": {"new.txt": "task 2\n", "sub/x.txt": "x\n"},
                         "3": {"b.txt": "b\n"}, "4": {"d/e.txt": "e\n"}})
    (project.path / "new.txt").write_text("my own untracked work\n")
    (project.path / "d").write_text("an untracked file where task 4 makes a directory\n")
    old = project.git("rev-parse", "main")

    dry = project.agent("merge", "--dry-run", "--all")
    assert (dry.returncode, dry.stdout) == (1, (
        "Task 1 would merge cleanly\n"
        "Task 2 would not merge: untracked working tree file would be overwritten by merge: new.txt\n"
        "Task 3 would merge cleanly\n"
        "Task 4 would not merge: untracked working tree file would be overwritten by merge: d\n"
        "2 would merge, 2 would not\n"))
    assert project.git("rev-parse", "main") == old

    proc = project.agent("merge", "--all")
    assert proc.returncode == 1, proc
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("Merged task 1 (") and lines[2].startswith("Merged task 3 (")
    assert lines[1] == ("Task 2 not merged: untracked working tree file would be overwritten by merge: new.txt "
                        "(move or remove it, then merge again; branch and worktree kept)")
    assert lines[3] == ("Task 4 not merged: untracked working tree file would be overwritten by merge: d "
                        "(move or remove it, then merge again; branch and worktree kept)")
    assert lines[4:] == ["2 merged, 2 not merged"]
    assert project.git("log", "--first-parent", "--format=%s", f"{old}..main").splitlines() == [
        "feat: Task 3 - work", "feat: Task 1 - work"]
    assert (project.path / "new.txt").read_text() == "my own untracked work\n"
    assert project.git("status", "--porcelain") == "?? d\n?? new.txt".strip()
    assert not journal_path(project).exists()
    assert len(project.git("notes", f"--ref={NOTES}", "list").splitlines()) == 2

    # once the file is moved away the task merges
    (project.path / "new.txt").unlink()
    again = project.agent("merge", "2")
    assert again.returncode == 0, again
    assert (project.path / "new.txt").read_text() == "task 2\n"


def test_untracked_file_with_a_newline_in_its_name(project: Project) -> None:
    make_tasks(project, {"1": {"odd\nname.txt": "task\n"}})
    (project.path / "odd\nname.txt").write_text("mine\n")
    proc = project.agent("merge", "--all")
    assert proc.returncode == 1
    assert "would be overwritten by merge: odd\nname.txt (move" in proc.stdout
    assert (project.path / "odd\nname.txt").read_text() == "mine\n"
