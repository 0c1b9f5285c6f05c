"""git agent-merge --resolve: scripted resolver agents merge the target into a conflicting task, then it merges."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import Project, write_script

# Tasks 1 and 2 change line 2 of shared.txt, tasks 3 and 4 line 1 of other.txt; 5 and 6 add files.
# When started as a resolver (a merge is in progress) the same script keeps both sides.
AGENT = """
    if git rev-parse -q --verify MERGE_HEAD >/dev/null; then
      echo "resolving with prompt $GIT_AGENT_PROMPT_FILE"
      for f in $(git diff --name-only --diff-filter=U); do
        sed -i '/^<<<<<<< /d;/^=======$/d;/^>>>>>>> /d' "$f"
        git add "$f"
      done
      git commit -q --no-edit
      exit 0
    fi
    case "$GIT_AGENT_TASK" in
      1|2) sed -i "s/^line 2$/line 2 (task $GIT_AGENT_TASK)/" shared.txt ;;
      3|4) sed -i "s/^other 1$/other 1 (task $GIT_AGENT_TASK)/" other.txt ;;
      *) echo "work $GIT_AGENT_TASK" > "file-$GIT_AGENT_TASK.txt" ;;
    esac
    git add -A && git commit -q -m "task $GIT_AGENT_TASK"
"""


def _six_tasks(project: Project, tmp_path: Path) -> Path:
    project.commit_file("other.txt", "other 1\nother 2\n")
    agent = write_script(tmp_path / "agent.sh", AGENT)
    for n in range(1, 7):
        project.ok("spawn", str(n), "--title", f"task number {n}", "--prompt", f"do {n}", "--agent", str(agent))
    project.ok("wait", "--all")
    return agent


def test_resolve_merges_all_six_tasks_keeping_both_sides(project: Project, tmp_path: Path) -> None:
    _six_tasks(project, tmp_path)  # the resolver keeps the task's side first (it is HEAD there)
    base = project.git("rev-parse", "main")

    proc = project.agent("merge", "--all", "--resolve")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    merges = project.git("log", "--first-parent", "--format=%H", f"{base}..main").split()[::-1]
    short = [m[:12] for m in merges]
    agent = str(tmp_path / "agent.sh")
    assert proc.stdout == (
        f"Merged task 1 ({short[0]})\n"
        f"Merged task 2 ({short[1]}) after its conflict was resolved by {agent}\n"
        f"Merged task 3 ({short[2]})\n"
        f"Merged task 4 ({short[3]}) after its conflict was resolved by {agent}\n"
        f"Merged task 5 ({short[4]})\n"
        f"Merged task 6 ({short[5]})\n"
        "6 merged, 0 not merged\n")
    assert (project.path / "shared.txt").read_text() == "line 1\nline 2 (task 2)\nline 2 (task 1)\nline 3\n"
    assert (project.path / "other.txt").read_text() == "other 1 (task 4)\nother 1 (task 3)\nother 2\n"
    # the resolved task branch holds the merge of main into it, and the merge into main is that branch
    wt2 = project.worktrees / "task-2"
    assert project.git("rev-parse", "task-2^2") == project.git("rev-parse", f"{merges[1]}^1")
    assert project.git("rev-parse", f"{merges[1]}^2") == project.git("rev-parse", "task-2")
    assert project.git("status", "--porcelain", cwd=wt2) == ""
    note2 = project.git("notes", "--ref=agents", "show", merges[1])
    assert f"resolved-by: {agent}\n" in note2 + "\n" and "resolve-attempts: 1" in note2
    assert "task: 2" in note2 and "exit: 0" in note2
    assert "resolved-by" not in project.git("notes", "--ref=agents", "show", merges[0])
    # the resolver's prompt named the file, git's CONFLICT line, the earlier task and the rule
    prompt = (project.path / ".git/agents/tasks/2/resolve-1/prompt.md").read_text()
    assert "    CONFLICT (content): Merge conflict in shared.txt\n" in prompt
    assert "Conflicting files:\n    shared.txt\n" in prompt
    assert "    task 1: task number 1 (shared.txt)\n" in prompt
    assert "Keep both intents" in prompt and "do not touch any other file" in prompt
    assert "resolving with prompt" in (project.path / ".git/agents/tasks/2/resolve-1/agent.log").read_text()


def test_dry_run_says_which_tasks_would_need_a_resolver(project: Project, tmp_path: Path) -> None:
    _six_tasks(project, tmp_path)
    before = project.snapshot()

    proc = project.agent("merge", "--all", "--dry-run", "--resolve=claude")

    assert proc.returncode == 1
    assert "Task 2 would conflict: shared.txt\n    CONFLICT (content): Merge conflict in shared.txt\n" \
           "    it would need a resolver: " in proc.stdout
    assert "Task 4 would conflict: other.txt\n" in proc.stdout
    assert proc.stdout.count("it would need a resolver") == 2
    assert project.snapshot() == before


BAD_RESOLVERS = {
    "markers": ("""
        git add -A && git commit -q --no-edit && echo "committed with the markers in"
    """, "the resolver failed: conflict markers left in shared.txt"),
    "exit 1": ("""
        echo "I give up on this one"
        exit 1
    """, "the resolver failed: the resolver exited 1"),
    "unrelated": ("""
        sed -i '/^<<<<<<< /d;/^=======$/d;/^>>>>>>> /d' shared.txt
        echo "something else" >> README
        git add -A && git commit -q --no-edit && echo "resolved, and README too"
    """, "the resolver failed: it changed files that did not conflict: README"),
    "uncommitted": ("""
        sed -i '/^<<<<<<< /d;/^=======$/d;/^>>>>>>> /d' shared.txt
        git add shared.txt && git commit -q --no-edit && echo scratch > notes.txt
    """, "the resolver failed: it left uncommitted work: notes.txt"),
}


@pytest.mark.parametrize("kind", list(BAD_RESOLVERS))
def test_a_bad_resolution_is_refused_and_the_branch_left_as_it_was(project: Project, tmp_path: Path,
                                                                   kind: str) -> None:
    _six_tasks(project, tmp_path)
    body, why = BAD_RESOLVERS[kind]
    resolver = write_script(tmp_path / "resolver.sh", body)
    wt2 = project.worktrees / "task-2"
    tip, status = project.git("rev-parse", "task-2"), project.git("status", "--porcelain", "--ignored", cwd=wt2)

    proc = project.agent("merge", "--all", f"--resolve={resolver}")

    assert proc.returncode == 1
    assert project.git("rev-parse", "task-2") == tip
    assert project.git("status", "--porcelain", "--ignored", cwd=wt2) == status
    assert not (wt2 / project.git("rev-parse", "--git-path", "MERGE_HEAD", cwd=wt2)).exists()
    last = {"markers": "committed with the markers in", "exit 1": "I give up on this one",
            "unrelated": "resolved, and README too", "uncommitted": ""}[kind]
    expected = f"Conflict in task 2: shared.txt ({why}; not merged; branch and worktree kept)\n"
    if last:
        expected += "    the resolver's log ends:\n"
        assert f"    | {last}\nMerged task 3 (" in proc.stdout, proc.stdout
    assert expected in proc.stdout, proc.stdout
    # task 4 was resolved by the same bad resolver too and refused likewise; the others merged
    assert proc.stdout.endswith("4 merged, 2 not merged\n")
    status2 = project.agent("status", "2").stdout
    assert "conflict" in status2


def test_a_recorded_resolution_is_reused_by_rerere_without_an_agent(project: Project, tmp_path: Path) -> None:
    _six_tasks(project, tmp_path)
    project.ok("merge", "1", "2", "--resolve")  # records the resolution of shared.txt in the rr-cache
    # The same conflict again: main back before those merges, task 7 makes task 2's change,
    # and main gets task 1's change by hand.
    project.git("reset", "-q", "--hard", "main~2")
    project.ok("spawn", "7", "--prompt", "x", "--agent",
               "sed -i 's/^line 2$/line 2 (task 2)/' shared.txt && git commit -qam seven")
    project.ok("wait", "7")
    project.commit_file("shared.txt", "line 1\nline 2 (task 1)\nline 3\n")
    never = write_script(tmp_path / "never.sh", "echo 'should not run'; exit 1\n")

    proc = project.agent("merge", "7", f"--resolve={never}")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0].endswith("after its conflict was resolved by rerere")
    assert (project.path / "shared.txt").read_text() == "line 1\nline 2 (task 2)\nline 2 (task 1)\nline 3\n"
    assert not (project.path / ".git/agents/tasks/7/resolve-1").exists()


def test_a_file_named_like_a_merge_tree_count_is_not_allowed_to_change(project: Project, tmp_path: Path) -> None:
    # merge-tree -z writes "1" (the number of paths of a message) and "Auto-merging" among its fields:
    # they are not the conflicting files, and a top-level file named `1` must not change unnoticed.
    project.commit_file("1", "one\n")
    _six_tasks(project, tmp_path)
    resolver = write_script(tmp_path / "resolver.sh", """
        sed -i '/^<<<<<<< /d;/^=======$/d;/^>>>>>>> /d' shared.txt
        echo "rewritten" > 1
        git add -A && git commit -q --no-edit
    """)

    proc = project.agent("merge", "1", "2", f"--resolve={resolver}")

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Conflict in task 2: shared.txt (the resolver failed: it changed files that did not conflict: 1; " \
           "not merged; branch and worktree kept)\n" in proc.stdout, proc.stdout
    assert (project.path / "1").read_text() == "one\n"
    assert project.git("show", "main:1") == "one"


def test_markers_of_the_size_the_attributes_set_are_found(project: Project, tmp_path: Path) -> None:
    project.commit_file(".gitattributes", "shared.txt conflict-marker-size=32\n")
    _six_tasks(project, tmp_path)
    resolver = write_script(tmp_path / "resolver.sh", """
        grep -q '^<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<< ' shared.txt || exit 3
        git add -A && git commit -q --no-edit
    """)

    proc = project.agent("merge", "1", "2", f"--resolve={resolver}")

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Conflict in task 2: shared.txt (the resolver failed: conflict markers left in shared.txt; " \
           "not merged; branch and worktree kept)\n" in proc.stdout, proc.stdout
    assert "<<<<" not in (project.path / "shared.txt").read_text()
    assert "<<<<" not in project.git("show", "main:shared.txt")


def test_a_refused_resolution_is_not_replayed_by_rerere(project: Project, tmp_path: Path) -> None:
    _six_tasks(project, tmp_path)
    ours = write_script(tmp_path / "ours.sh", """
        git checkout --ours shared.txt && git add shared.txt && git commit -q --no-edit
        exit 1
    """)
    refused = project.agent("merge", "1", "2", f"--resolve={ours}")
    assert refused.returncode == 1 and "the resolver failed: the resolver exited 1" in refused.stdout
    good = write_script(tmp_path / "good.sh", """
        sed -i '/^<<<<<<< /d;/^=======$/d;/^>>>>>>> /d' shared.txt
        git add shared.txt && git commit -q --no-edit && echo "good resolver ran"
    """)

    proc = project.agent("merge", "2", f"--resolve={good}")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0].endswith(f"after its conflict was resolved by {good}"), proc.stdout
    assert (project.path / "shared.txt").read_text() == "line 1\nline 2 (task 2)\nline 2 (task 1)\nline 3\n"
    # the accepted resolution is the one rerere keeps: the same conflict again needs no resolver
    project.git("reset", "-q", "--hard", "main~2")
    project.ok("spawn", "7", "--prompt", "x", "--agent",
               "sed -i 's/^line 2$/line 2 (task 2)/' shared.txt && git commit -qam seven")
    project.ok("wait", "7")
    project.commit_file("shared.txt", "line 1\nline 2 (task 1)\nline 3\n")
    again = project.agent("merge", "7", f"--resolve={ours}")
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.splitlines()[0].endswith("after its conflict was resolved by rerere")
    assert (project.path / "shared.txt").read_text() == "line 1\nline 2 (task 2)\nline 2 (task 1)\nline 3\n"


def test_the_user_commits_on_main_while_the_last_tasks_resolver_fails(project: Project, tmp_path: Path) -> None:
    _six_tasks(project, tmp_path)
    resolver = write_script(tmp_path / "resolver.sh", f"""
        cd '{project.path}' && echo "mine" > mine.txt && git add mine.txt && git commit -q -m "the user's commit"
        exit 1
    """)

    proc = project.agent("merge", "1", "2", f"--resolve={resolver}")

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr == ""
    assert "Conflict in task 2: shared.txt (the resolver failed: the resolver exited 1; " in proc.stdout
    assert project.git("log", "-1", "--format=%s", "main") == "the user's commit"
    assert "conflict" in project.agent("status", "2").stdout
    assert not (project.path / ".git/agents/merge-journal").exists()
    for verb in ("--continue", "--abort"):
        assert project.agent("merge", verb).stderr.startswith("fatal: no interrupted merge to ")
    again = project.agent("merge", "--all")
    assert again.returncode == 1 and "Conflict in task 2: shared.txt" in again.stdout, again.stdout + again.stderr
    assert "Merged task 3 (" in again.stdout


def _wait_for(path: Path) -> None:
    import time

    for _ in range(1200):  # a generous bound on a loaded machine; nothing is asserted about time
        if path.exists():
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def _gone(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"


def _start_merge(project: Project, *args: str) -> subprocess.Popen[str]:
    import os

    return subprocess.Popen(["git-agent-merge", *args], cwd=project.path, env=dict(os.environ), text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


# Commits the conflicted file, markers and all, once told to (the file `go`), and says so.
MARKERS_WHEN_TOLD = """
    echo $$ > '{dir}/resolver.pid'
    touch '{dir}/started'
    while [ ! -e '{dir}/go' ]; do sleep 0.05; done
    git add -A && git commit -q --no-edit && touch '{dir}/committed'
    sleep 600
"""


def _merge_with_a_markers_resolver(project: Project, tmp_path: Path,
                                   *tasks: str) -> tuple[str, subprocess.Popen[str]]:
    """Six tasks; `merge <tasks> --resolve` with MARKERS_WHEN_TOLD, once its resolver runs: (task-2's tip, it)."""
    _six_tasks(project, tmp_path)
    tip = project.git("rev-parse", "task-2")
    resolver = write_script(tmp_path / "resolver.sh", MARKERS_WHEN_TOLD.format(dir=tmp_path))
    merge = _start_merge(project, *tasks, f"--resolve={resolver}")
    _wait_for(tmp_path / "started")
    return tip, merge


@pytest.mark.parametrize("recovery", ["--continue", "--abort"])
def test_resolve_and_its_resolver_killed_can_be_continued_or_aborted(project: Project, tmp_path: Path,
                                                                     recovery: str) -> None:
    import os
    import signal

    tip, merge = _merge_with_a_markers_resolver(project, tmp_path, "1", "2", "3")
    (tmp_path / "go").touch()
    _wait_for(tmp_path / "committed")
    os.kill(merge.pid, signal.SIGKILL)  # as at a reboot: the merge and its resolver
    os.killpg(os.getpgid(int((tmp_path / "resolver.pid").read_text())), signal.SIGKILL)
    merge.communicate()
    main = project.git("rev-parse", "main")

    refused = project.agent("merge", "--all")
    assert (refused.returncode, refused.stdout) == (128, ""), refused.stdout + refused.stderr
    assert refused.stderr == (
        "fatal: a merge --resolve was interrupted while a resolver worked on the conflict of task 2 in "
        f"{project.worktrees / 'task-2'}\n"
        "hint: check its result (kept only if it is a proper resolution): git agent-merge --continue\n"
        "hint: or put the task branch back: git agent-merge --abort\n")

    proc = project.agent("merge", recovery)

    if recovery == "--abort":
        assert (proc.returncode, proc.stdout) == (
            0, f"Resolution of task 2 abandoned; 'task-2' is back at {tip[:12]}\n"), proc.stdout + proc.stderr
    else:
        assert (proc.returncode, proc.stdout) == (1, (
            "The resolution of task 2 was refused: conflict markers left in shared.txt; "
            f"'task-2' is back at {tip[:12]}\nNot reached (merge them again): 3\n")), proc.stdout + proc.stderr
    assert project.git("rev-parse", "task-2") == tip
    assert project.git("status", "--porcelain", cwd=project.worktrees / "task-2") == ""
    assert project.git("rev-parse", "main") == main
    again = project.agent("merge", "--all")
    assert again.returncode == 1, again.stdout + again.stderr
    assert "Conflict in task 2: shared.txt" in again.stdout and "Merged task 3 (" in again.stdout
    assert "<<<<" not in project.git("show", "main:shared.txt")
    assert project.agent("merge", "--continue").stderr.startswith("fatal: no interrupted merge")


@pytest.mark.parametrize("sig", ["HUP", "TERM"])
def test_a_hangup_stops_the_resolver_and_its_result_is_never_merged(project: Project, tmp_path: Path,
                                                                   sig: str) -> None:
    import os
    import signal

    tip, merge = _merge_with_a_markers_resolver(project, tmp_path, "1", "2")
    os.kill(merge.pid, getattr(signal, f"SIG{sig}"))  # the terminal closed
    _, err = merge.communicate(timeout=600)  # a bound against a hang, not a timing assertion
    (tmp_path / "go").touch()  # a resolver still running would now commit the markers
    pid = int((tmp_path / "resolver.pid").read_text())
    committed = tmp_path / "committed"
    for _ in range(1200):
        if _gone(pid) or committed.exists():
            break
        __import__("time").sleep(0.05)
    stray = not committed.exists()
    if not stray:  # (today's code) kill what is left of it
        os.kill(pid, signal.SIGKILL)

    assert (merge.returncode, err) == (130, "interrupted\n")
    assert stray, "the resolver went on and committed its unchecked result"
    assert project.git("rev-parse", "task-2") == tip
    assert project.git("status", "--porcelain", cwd=project.worktrees / "task-2") == ""
    again = project.agent("merge", "--all")
    assert again.returncode == 1, again.stdout + again.stderr
    assert "Conflict in task 2: shared.txt" in again.stdout
    assert "<<<<" not in project.git("show", "main:shared.txt")
