"""git agent-diff: a task's change against where it left its target."""

from __future__ import annotations

from pathlib import Path

from .conftest import Project, write_script


def _spawn_with_commit(project: Project, tmp_path: Path, task: str, name: str, text: str) -> None:
    agent = write_script(tmp_path / f"agent-{task}.sh", f"""
        mkdir -p "$(dirname {name})" && printf '{text}\\n' > {name} && git add {name} && git commit -q -m 'task {task}'
    """)
    project.ok("spawn", task, "--agent", str(agent))
    project.ok("wait", task)


def test_diff_shows_the_change_against_the_fork_point_not_later_target_commits(
        project: Project, tmp_path: Path) -> None:
    _spawn_with_commit(project, tmp_path, "1", "src/a.txt", "from task 1")
    project.commit_file("later.txt", "on main after the fork\n")  # must not show as removed by the task
    proc = project.ok("diff", "1")
    assert "+from task 1" in proc.stdout
    assert "later.txt" not in proc.stdout
    assert project.ok("diff", "--stat", "1").stdout.splitlines() == [
        " src/a.txt | 1 +", " 1 file changed, 1 insertion(+)"]
    assert project.ok("diff", "1", "--", "other/").stdout == ""


def test_diff_all_lists_each_finished_unmerged_task(project: Project, tmp_path: Path) -> None:
    _spawn_with_commit(project, tmp_path, "1", "one.txt", "one")
    _spawn_with_commit(project, tmp_path, "2", "two.txt", "two")
    project.ok("spawn", "3", "--no-agent", "--title", "no commits yet")
    project.ok("merge", "2")
    assert project.ok("diff", "--all").stdout == (
        "task 1: Task 1 (task-1)\n one.txt | 1 +\n 1 file changed, 1 insertion(+)\n")
    # a merged task still shows what it merged
    assert "+two" in project.ok("diff", "2").stdout


def test_diff_refuses_bad_usage_and_unknown_tasks(project: Project) -> None:
    assert project.agent("diff").returncode == 129
    assert project.agent("diff", "--all", "x").returncode == 129
    unknown = project.agent("diff", "77")
    assert unknown.returncode == 128 and unknown.stderr.startswith("fatal: ")
