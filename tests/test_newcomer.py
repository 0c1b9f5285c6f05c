"""A newcomer's trip-ups (issue 24): each message says what happened and what to do next, and agrees
with what the command then does."""

from __future__ import annotations

from .conftest import Project
from .test_merge_queue import SHARED_CLASH, SHARED_EDIT, make_tasks


def test_a_conflict_in_merge_all_names_the_next_steps(project: Project) -> None:
    make_tasks(project, {"1": SHARED_EDIT, "2": SHARED_CLASH})
    merged = project.agent("merge", "--all")
    first = project.git("rev-parse", "main")
    assert (merged.returncode, merged.stdout, merged.stderr) == (1, (
        f"Merged task 1 ({first[:12]})\n"
        "Conflict in task 2: shared.txt (not merged; branch and worktree kept)\n"
        "1 merged, 1 not merged\n"), (
        "hint: to merge task 2 anyway: git agent-merge 2 --rebase (replayed onto 'main'), --resolve (an agent\n"
        "hint: resolves it) or --interactive (you resolve it); `git agent-conflicts` shows which tasks overlap\n"))


def test_interactive_conflict_markers_name_the_task_branch_and_the_target(project: Project) -> None:
    make_tasks(project, {"2": SHARED_CLASH})
    project.commit_file("shared.txt", "line 1\nline two (main)\nline 3\n")
    assert project.agent("merge", "2", "--interactive").returncode == 1
    assert (project.path / "shared.txt").read_text() == (
        "line 1\n<<<<<<< main\nline two (main)\n=======\nline II (task 2)\n>>>>>>> task-2\nline 3\n")


def test_continue_of_the_last_conflict_reports_the_merge_it_made(project: Project) -> None:
    make_tasks(project, {"1": SHARED_EDIT, "2": SHARED_CLASH})
    assert project.agent("merge", "--all", "--interactive").returncode == 1
    (project.path / "shared.txt").write_text("line 1\nline two and II\nline 3\n")
    project.git("add", "shared.txt")
    cont = project.agent("merge", "--continue")
    assert (cont.returncode, cont.stdout, cont.stderr) == (
        0, f"Merged task 2 ({project.git('rev-parse', 'main')[:12]})\n1 merged, 0 not merged\n", "")


def test_dry_run_predicts_the_refusal_of_a_dirty_target_worktree(project: Project) -> None:
    make_tasks(project, {"40": {"a.txt": "a\n"}, "42": {"b.txt": "b\n"}})
    (project.path / "README").write_text("edited, not committed\n")
    before = project.snapshot()
    dry = project.agent("merge", "--dry-run", "40", "42")
    real = project.agent("merge", "40", "42")
    refusal = (f"fatal: the worktree at {project.path} has uncommitted changes; merging would mix them in\n"
               "hint: commit or stash them first (git stash)\n")
    assert (real.returncode, real.stdout, real.stderr) == (128, "", refusal)
    assert (dry.returncode, dry.stdout, dry.stderr) == (128, "", refusal)
    assert project.snapshot() == before


def test_a_one_line_prompt_is_not_said_twice(project: Project) -> None:
    project.ok("spawn", "40", "--no-agent", "--prompt", "Fix the login redirect")
    prompt = project.ok("prompt", "40").stdout
    assert prompt.endswith("\nYour task: Fix the login redirect\n")
    assert prompt.count("Fix the login redirect") == 1
    project.ok("spawn", "41", "--no-agent", "--title", "login", "--prompt", "Fix the login redirect")
    assert project.ok("prompt", "41").stdout.endswith("\nYour task: login\n\nFix the login redirect\n")
