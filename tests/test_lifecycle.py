"""The whole life cycle as a user runs it: spawn, status, wait, merge, clean."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Project, write_script

NOTES = "refs/notes/agents"


def test_walkthrough_three_agents(project: Project, committing_agent: Path, tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "50.md").write_text("Write the MixerViewRenderer\n")
    (tmp_path / "tasks" / "51.md").write_text("Write the MixerViewDispatcher\n")

    out = project.ok("spawn", "48", "--title", "free mixer channel on delete",
                     "--prompt", "Free the mixer channel when it is deleted", "--agent", str(committing_agent))
    assert out.stdout.startswith("Spawned task 48 on branch task-48 in ../project-worktrees/task-48 (agent pid ")
    project.ok("spawn", "50", "51", "--prompt-file", str(tmp_path / "tasks" / "{id}.md"),
               "--agent", str(committing_agent))

    wait = project.ok("wait", "--all", "--timeout", "60")
    assert sorted(wait.stdout.splitlines()) == ["task 48: exited 0", "task 50: exited 0", "task 51: exited 0"]

    status = json.loads(project.ok("status", "--json").stdout)
    assert status["version"] == 1
    rows = {t["id"]: t for t in status["tasks"]}
    assert list(rows) == ["48", "50", "51"]
    assert rows["48"]["title"] == "free mixer channel on delete"
    assert rows["50"]["title"] == "Write the MixerViewRenderer"
    for task_id, row in rows.items():
        assert (row["state"], row["exit_code"], row["ahead"], row["files_changed"], row["uncommitted"]) == \
            ("exited 0", 0, 1, 1, False)
        assert row["branch"] == f"task-{task_id}"
        assert row["worktree"] == str(project.worktrees / f"task-{task_id}")

    merge = project.ok("merge", "--all")
    assert merge.stdout.splitlines()[-1] == "3 merged, 0 not merged"
    subjects = project.git("log", "--first-parent", "--format=%s", "main").splitlines()
    assert subjects == ["feat: Task 51 - Write the MixerViewDispatcher", "feat: Task 50 - Write the MixerViewRenderer",
                        "feat: Task 48 - free mixer channel on delete", "initial"]
    for rev in ("main", "main~1", "main~2"):
        assert project.git("rev-list", "--count", "--no-walk", f"{rev}^@") == "2"  # a real merge, --no-ff
    note = project.git("notes", f"--ref={NOTES}", "show", "main~2")
    assert note.splitlines()[:4] == ["git-agents-note: 1", "task: 48", "title: free mixer channel on delete",
                                     "branch: task-48"]
    assert f"agent: {committing_agent}" in note and "exit: 0" in note
    assert sorted(p.name for p in project.path.iterdir()) == [
        ".git", "README", "file-48.txt", "file-50.txt", "file-51.txt", "shared.txt"]

    clean = project.ok("clean", "--merged")
    assert clean.stdout.splitlines() == ["Removed task 48", "Removed task 50", "Removed task 51"]
    assert project.git("worktree", "list", "--porcelain").count("worktree ") == 1
    assert project.git("branch", "--format=%(refname:short)") == "main"
    assert project.git("config", "--get-regexp", "^agent-task\\.", check=False) == ""
    # the durable record survives cleanup
    assert "task: 51" in project.git("log", "-1", "--notes=agents", "main")


def test_conflicting_task_is_reported_and_kept(project: Project, tmp_path: Path) -> None:
    agent = write_script(tmp_path / "edit.sh", """
        case "$GIT_AGENT_TASK" in
          1) sed -i 's/line 2/line two (task 1)/' shared.txt ;;
          2) sed -i 's/line 2/line II (task 2)/' shared.txt ;;
          3) echo other > other.txt ;;
        esac
        git add -A && git commit -q -m "task $GIT_AGENT_TASK"
    """)
    base = project.git("rev-parse", "main")
    project.ok("spawn", "1", "2", "3", "--prompt", "edit", "--agent", str(agent))
    project.ok("wait", "--all", "--timeout", "60")
    tip2 = project.git("rev-parse", "task-2")

    merge = project.agent("merge", "--all")
    assert merge.returncode == 1
    assert "Conflict in task 2: shared.txt (not merged; branch and worktree kept)" in merge.stdout
    assert merge.stdout.splitlines()[-1] == "2 merged, 1 not merged"

    # main == base + task 1 + task 3
    expected = project.git("merge-tree", "--write-tree", "task-1", "task-3")
    assert project.git("rev-parse", "main^{tree}") == expected
    assert project.git("rev-list", "--count", f"{base}..main", "--first-parent") == "2"
    assert project.git("status", "--porcelain") == ""
    assert (project.path / "shared.txt").read_text().splitlines()[1] == "line two (task 1)"
    # task 2 intact
    assert project.git("rev-parse", "task-2") == tip2
    wt2 = project.worktrees / "task-2"
    assert (wt2 / "shared.txt").read_text().splitlines()[1] == "line II (task 2)"
    assert project.git("status", "--porcelain", cwd=wt2) == ""
    row = [t for t in json.loads(project.ok("status", "--json", "2").stdout)["tasks"]][0]
    assert (row["state"], row["conflicts"]) == ("conflict", ["shared.txt"])


def test_merge_into_a_branch_that_is_not_checked_out(project: Project, committing_agent: Path) -> None:
    project.git("branch", "feature")
    main_before = project.git("rev-parse", "main")
    project.ok("spawn", "1", "--base", "feature", "--agent", str(committing_agent))
    project.ok("wait", "1")
    project.ok("merge", "1")
    assert project.git("rev-parse", "main") == main_before
    assert project.git("log", "-1", "--format=%s", "feature") == "feat: Task 1 - Task 1"
    assert project.git("ls-tree", "--name-only", "feature").splitlines() == ["README", "file-1.txt", "shared.txt"]
    assert project.git("reflog", "-1", "--format=%gs", "feature") == "agent-merge: 1 task(s) into feature"


def test_merge_skips_a_task_with_uncommitted_work(project: Project, committing_agent: Path) -> None:
    project.ok("spawn", "1", "2", "--agent", str(committing_agent))
    project.ok("wait", "--all")
    (project.worktrees / "task-2" / "later.txt").write_text("not committed yet\n")
    proc = project.agent("merge", "--all")
    assert proc.returncode == 1
    assert proc.stderr == ("warning: skipped task 2: its worktree has uncommitted or untracked work "
                           "(commit it, or it would be left out)\n")
    assert proc.stdout.splitlines()[-1] == "1 merged, 1 not merged"
    assert not (project.path / "file-2.txt").exists() and (project.path / "file-1.txt").exists()


def test_relative_agent_and_prompt_from_stdin(project: Project) -> None:
    """`--agent ./my-agent.sh` means the script beside the user, even when untracked."""
    write_script(project.path / "my-agent.sh", """
        cp "$GIT_AGENT_PROMPT_FILE" prompt-copy.txt
        git add prompt-copy.txt && git commit -q -m "copy prompt"
    """)
    project.ok("spawn", "5", "--prompt-file", "-", "--agent", "./my-agent.sh", input="Fix the bug\nin detail\n")
    assert project.ok("wait", "5").stdout == "task 5: exited 0\n"
    copied = project.git("show", "task-5:prompt-copy.txt")
    assert copied.endswith("Your task: Fix the bug\n\nFix the bug\nin detail")
    row = json.loads(project.ok("status", "--json", "5").stdout)["tasks"][0]
    assert row["title"] == "Fix the bug"


def test_respawn_after_clean(project: Project, committing_agent: Path) -> None:
    project.ok("spawn", "1", "--agent", str(committing_agent))
    project.ok("wait", "1")
    project.ok("clean", "1", "--force")
    project.ok("spawn", "1", "--prompt", "again")
    row = json.loads(project.ok("status", "--json").stdout)["tasks"][0]
    assert (row["id"], row["state"], row["ahead"], row["title"]) == ("1", "not started", 0, "again")


def test_an_agent_that_exits_0_having_done_nothing_is_told_apart(project: Project, committing_agent: Path,
                                                                 tmp_path: Path) -> None:
    idle = write_script(tmp_path / "idle.sh", 'echo "Done: the change is committed"\n')
    project.ok("spawn", "1", "--agent", str(idle), "--prompt", "p")
    project.ok("spawn", "2", "--agent", str(committing_agent), "--prompt", "p")
    assert project.ok("wait", "2").stdout == "task 2: exited 0\n"
    waited = project.agent("wait", "1")
    assert (waited.returncode, waited.stdout) == (0, "task 1: exited 0, no change\n")
    rows = {t["id"]: t for t in json.loads(project.ok("status", "--json").stdout)["tasks"]}
    assert [(r["state"], r["agent"], r["exit_code"]) for r in rows.values()] == [
        ("exited 0, no change", "exited 0, no change", 0), ("exited 0", "exited", 0)]
    table = project.ok("status").stdout.splitlines()
    assert [line.split()[:5] for line in table if line.startswith("1 ")] == [["1", "exited", "0,", "no", "change"]]

    merged = project.agent("merge", "--all")
    assert merged.returncode == 1
    assert merged.stdout.splitlines()[1:] == ["1 merged, 1 not merged"]
    assert merged.stderr == ("warning: skipped task 1: its agent exited 0 having committed and changed nothing"
                             " (see git agent-logs 1)\n")

    (tmp_path / "tasks.toml").write_text(f'agent = "{idle}"\n[[task]]\nid = "3"\nprompt = "do 3"\n')
    ran = project.agent("run", str(tmp_path / "tasks.toml"))
    assert ran.returncode == 1
    assert ran.stdout[ran.stdout.index("\nReport:\n"):] == (
        "\nReport:\n  3  exited 0, no change; kept task-3 in ../project-worktrees/task-3\n0 merged, 1 not merged\n")
