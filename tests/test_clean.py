"""clean never loses work without --force; status and wait report every agent state."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from .conftest import Project, write_script


def _state(project: Project, task_id: str) -> dict[str, object]:
    return json.loads(project.ok("status", "--json", task_id).stdout)["tasks"][0]


def test_clean_refuses_dirty_worktree(project: Project) -> None:
    project.ok("spawn", "1")
    wt = project.worktrees / "task-1"
    (wt / "shared.txt").write_text("uncommitted\n")
    (wt / "new.txt").write_text("untracked\n")
    proc = project.agent("clean", "1")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "error: not removing task 1: its worktree has uncommitted or untracked work (shared.txt, new.txt)",
        "hint: merge or save that work first, or pass --force to discard it"]
    assert (wt / "new.txt").read_text() == "untracked\n"
    assert project.git("rev-parse", "--verify", "task-1")
    project.ok("clean", "1", "--force")
    assert not wt.exists()
    assert project.git("branch", "--list", "task-1") == ""


def test_clean_refuses_unmerged_branch(project: Project, committing_agent: Path) -> None:
    project.ok("spawn", "2", "--agent", str(committing_agent))
    project.ok("wait", "2")
    tip = project.git("rev-parse", "task-2")
    proc = project.agent("clean", "2")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == (
        "error: not removing task 2: its branch task-2 has 1 commit(s) not merged into main")
    assert project.git("rev-parse", "task-2") == tip
    assert (project.worktrees / "task-2" / "file-2.txt").exists()
    # --merged does not pick it either
    assert project.ok("clean", "--merged").stdout == "Nothing to clean.\n"
    project.ok("merge", "2")
    assert project.ok("clean", "--merged").stdout == "Removed task 2\n"


def test_clean_refuses_running_agent_and_force_stops_it(project: Project, tmp_path: Path) -> None:
    sleeper = write_script(tmp_path / "sleeper.sh", "echo $$ > \"$GIT_AGENT_WORKTREE/../sleeper.pid\"\nexec sleep 300\n")
    project.ok("spawn", "3", "--agent", str(sleeper))
    assert _state(project, "3")["state"] == "running"
    proc = project.agent("clean", "3")
    assert proc.returncode == 1
    assert "its agent is still running (pid " in proc.stderr
    assert (project.worktrees / "task-3").exists()
    project.ok("clean", "3", "--force")
    assert not (project.worktrees / "task-3").exists()
    pid = int((project.worktrees / "sleeper.pid").read_text())
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the agent survived clean --force")


def test_clean_prunes_worktrees_deleted_by_hand(project: Project) -> None:
    project.ok("spawn", "4")
    import shutil
    shutil.rmtree(project.worktrees / "task-4")
    assert _state(project, "4")["state"] == "worktree missing"
    project.ok("clean", "4")
    assert "task-4" not in project.git("worktree", "list")
    assert project.git("branch", "--list", "task-4") == ""


def test_wait_timeout_and_died_agent(project: Project, tmp_path: Path) -> None:
    sleeper = write_script(tmp_path / "sleeper.sh", "exec sleep 300\n")
    project.ok("spawn", "5", "--agent", str(sleeper))
    proc = project.agent("wait", "5", "--timeout", "0.5")
    assert (proc.returncode, proc.stdout) == (1, "timed out; still running: 5\n")
    pid = int(_state(project, "5")["pid"])  # the supervisor: killing it outright loses the exit record
    os.killpg(pid, signal.SIGKILL)
    for _ in range(100):
        if _state(project, "5")["state"] == "died":
            break
        time.sleep(0.05)
    assert _state(project, "5")["state"] == "died"
    proc = project.agent("wait", "5")
    assert (proc.returncode, proc.stdout) == (1, "task 5: died\n")


def test_agent_environment_and_prompt(project: Project, tmp_path: Path) -> None:
    recorder = write_script(tmp_path / "rec.sh", """
        env | grep '^GIT_AGENT_' | sort > "$GIT_AGENT_WORKTREE/../env-$GIT_AGENT_TASK.txt"
        pwd >> "$GIT_AGENT_WORKTREE/../env-$GIT_AGENT_TASK.txt"
    """)
    project.ok("spawn", "6", "--title", "the title", "--prompt", "Do {this} now", "--agent", str(recorder))
    project.ok("wait", "6")
    wt = project.worktrees / "task-6"
    common = project.path / ".git"
    prompt_file = common / "agents" / "tasks" / "6" / "prompt.md"
    port = int(project.git("config", "agent-task.6.port"))  # the first free block of agent.portRange
    assert (project.worktrees / "env-6.txt").read_text().splitlines() == [
        "GIT_AGENT_BRANCH=task-6", f"GIT_AGENT_INDEX={(port - 20000) // 10 + 1}",
        f"GIT_AGENT_LAUNCH={project.git('config', 'agent-task.6.launch')}", f"GIT_AGENT_PORT={port}",
        f"GIT_AGENT_PROMPT_FILE={prompt_file}", "GIT_AGENT_TASK=6",
        "GIT_AGENT_TITLE=the title", f"GIT_AGENT_WORKTREE={wt}", str(wt)]
    prompt = project.ok("prompt", "6").stdout
    assert prompt == prompt_file.read_text()
    assert prompt.startswith(f"You are working in a git worktree at: {wt}\n")
    assert "Commit your changes to the task-6 branch" in prompt and "Do NOT merge" in prompt
    assert prompt.endswith("Your task: the title\n\nDo {this} now\n")


def test_prompt_template_and_merge_message_are_configurable(project: Project, committing_agent: Path,
                                                            tmp_path: Path) -> None:
    (tmp_path / "tpl.md").write_text("[{id}] {title} on {branch} from {base}: {prompt} {unknown}\n")
    project.git("config", "agent.promptTemplate", str(tmp_path / "tpl.md"))
    project.git("config", "agent.mergeMessage", "agent {id}: {title}")
    project.ok("spawn", "7", "--title", "T", "--prompt", "P", "--agent", str(committing_agent))
    assert project.ok("prompt", "7").stdout == "[7] T on task-7 from main: P {unknown}\n"
    project.ok("wait", "7")
    project.ok("merge", "7")
    assert project.git("log", "-1", "--format=%s") == "agent 7: T"


def test_commands_work_from_a_subdirectory_and_from_a_task_worktree(project: Project,
                                                                  committing_agent: Path) -> None:
    sub = project.path / "sub" / "dir"
    sub.mkdir(parents=True)
    project.ok("spawn", "8", "--prompt", "x", "--agent", str(committing_agent), cwd=sub)
    assert (project.worktrees / "task-8").is_dir()
    wt = project.worktrees / "task-8"
    project.ok("wait", "8", cwd=wt)
    rows = json.loads(project.ok("status", "--json", cwd=wt).stdout)["tasks"]
    assert [r["id"] for r in rows] == ["8"]
    # spawning from inside a task worktree still bases on the main worktree's branch
    project.ok("spawn", "9", cwd=wt)
    assert project.git("rev-parse", "task-9") == project.git("rev-parse", "main")
    project.ok("merge", "8", cwd=sub)
    assert project.git("log", "-1", "--format=%s", "main") == "feat: Task 8 - x"
    assert (project.path / "file-8.txt").exists()
    proc = project.agent("clean", "8", cwd=wt)
    assert proc.returncode == 1 and "you are inside its worktree" in proc.stderr
