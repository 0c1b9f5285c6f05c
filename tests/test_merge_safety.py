"""Merging never gets stuck: untracked files in the way, a full disk, a half-made worktree, missing branches."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Project, run, write_script
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


def _mount_tmpfs(where: Path, size: str) -> bool:
    import subprocess

    where.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True).returncode == 0


def test_disk_full_while_updating_the_worktree_then_abort_or_continue(tmp_path: Path) -> None:
    import os
    import subprocess

    import pytest

    # The small disk is a directory of the main worktree; the git directory (objects, index, journal) is not on it.
    project = Project(tmp_path / "project")
    project.path.mkdir()
    mnt = project.path / "data"
    if not _mount_tmpfs(mnt, "256k"):
        pytest.skip("needs `mount -t tmpfs` (root) to simulate a full disk")
    try:
        project.git("init", "-q")
        project.commit_file("README", "readme\n", "initial")
        project.commit_file("data/shared.txt", "one\n", "shared")
        project.ok("spawn", "1", "2", "--no-agent", "--prompt", "work")
        big = os.urandom(600 * 1024)
        for task_id, name in (("1", "data/a.txt"), ("2", "data/sub/big.bin")):
            wt = project.worktrees / f"task-{task_id}"
            (wt / name).parent.mkdir(exist_ok=True)
            (wt / name).write_bytes(big if name.endswith("big.bin") else b"a\n")
            if task_id == "1":
                (wt / "data/shared.txt").write_text(f"changed by {task_id}\n")
            project.git("add", ".", cwd=wt)
            project.git("commit", "-q", "-m", f"task {task_id}", cwd=wt)
        old = project.git("rev-parse", "main")

        full = project.agent("merge", "--all")
        assert full.returncode == 128, full
        assert full.stderr.startswith("fatal: could not update the worktree at ")
        assert full.stderr.endswith("hint: fix what stopped it (a full disk, a file in the way, another git holding "
                                    "a lock), then: git agent-merge --continue\n"
                                    "hint: or undo the run with: git agent-merge --abort\n"), full.stderr
        assert "; it is back as it was\n" in full.stderr, full.stderr
        # the worktree was put back at once: nothing half-written is left
        assert project.git("status", "--porcelain", "--untracked-files=all") == ""
        assert sorted(os.listdir(mnt)) == ["shared.txt"]
        assert project.git("rev-parse", "main") == old

        # --continue while still full fails the same way and leaves nothing either
        again = project.agent("merge", "--continue")
        assert again.returncode == 128 and "could not update the worktree" in again.stderr
        assert project.git("status", "--porcelain", "--untracked-files=all") == ""

        # files at the update's paths that no landing recorded writing (a kill cut git's own write
        # short, or the user saved them since): --abort puts back what is the update's beyond doubt
        # (task 1's complete version of a.txt, which git keeps) and leaves the rest byte for byte
        (mnt / "a.txt").write_text("a\n")
        (mnt / "sub").mkdir()
        (mnt / "sub/big.bin").write_text("")
        (mnt / "shared.txt").write_text("")
        aborted = project.agent("merge", "--abort")
        assert aborted.returncode == 0, aborted
        assert project.git("status", "--porcelain", "--untracked-files=all").splitlines() == [
            "M data/shared.txt", "?? data/sub/big.bin"]
        assert (mnt / "shared.txt").read_text() == "" and (mnt / "sub/big.bin").read_text() == ""
        assert sorted(os.listdir(mnt)) == ["shared.txt", "sub"]
        assert project.git("rev-parse", "main") == old and not journal_path(project).exists()
        project.git("checkout", "--", "data/shared.txt")
        (mnt / "sub/big.bin").unlink()
        (mnt / "sub").rmdir()

        # once there is space, the merge (and a --continue of an interrupted one) works
        project.agent("merge", "--all")
        subprocess.run(["mount", "-o", "remount,size=8m", str(mnt)], check=True)
        done = project.agent("merge", "--continue")
        assert done.returncode == 0, done
        assert project.git("status", "--porcelain", "--untracked-files=all") == ""
        assert (mnt / "sub/big.bin").read_bytes() == big
        assert project.git("rev-list", "--count", "--first-parent", f"{old}..main") == "2"
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_spawn_that_cannot_make_its_worktree_leaves_no_branch(project: Project) -> None:
    project.git("config", "agent.worktreeRoot", "/proc")
    before = project.snapshot()
    proc = project.agent("spawn", "1", "--no-agent", "--prompt", "work")
    assert proc.returncode == 128, proc
    assert proc.stderr.startswith("fatal: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert project.git("branch", "--list", "task-1") == ""
    assert project.snapshot() == before


def test_spawn_failure_keeps_a_branch_that_moved_meanwhile(project: Project) -> None:
    """Only the branch this spawn made, still at its base, is removed."""
    from git_agents.core.errors import AgentError
    from git_agents.core.repo import Repo
    from git_agents.core.worktrees import add_worktree

    repo = Repo.discover(str(project.path))
    base = project.git("rev-parse", "HEAD")
    project.git("branch", "mine")  # exists before: never ours to remove, even if worktree add fails
    try:
        add_worktree(repo, "/proc/wt", "mine", base)
    except AgentError:
        pass
    assert project.git("rev-parse", "mine") == base


def test_merge_skips_a_task_whose_base_branch_is_gone(project: Project) -> None:
    project.git("branch", "feature")
    project.git("switch", "-q", "feature")
    project.ok("spawn", "1", "--no-agent", "--prompt", "work")
    project.git("switch", "-q", "main")
    make_tasks(project, {"2": {"b.txt": "b\n"}})
    wt = project.worktrees / "task-1"
    (wt / "a.txt").write_text("a\n")
    project.git("add", "a.txt", cwd=wt)
    project.git("commit", "-q", "-m", "task 1", cwd=wt)
    project.git("branch", "-D", "feature")
    old = project.git("rev-parse", "main")
    for args in (["--dry-run", "--all"], ["--all"]):
        proc = project.agent("merge", *args)
        assert proc.returncode == 1, proc
        assert proc.stderr == "warning: skipped task 1: its target branch 'feature' is gone\n"
    assert project.git("log", "--first-parent", "--format=%s", f"{old}..main") == "feat: Task 2 - work"


def test_half_made_check_worktree_is_repaired(project: Project) -> None:
    """A killed `git worktree add` of the check worktree leaves an empty commondir; git then fails everywhere."""
    make_tasks(project, {"1": {"a.txt": "a\n"}})
    scratch = project.path / ".git/agents/check-worktree"
    project.git("worktree", "add", "-q", "--detach", str(scratch))
    admin = project.path / ".git/worktrees/check-worktree"
    (admin / "commondir").write_text("")  # as a kill between creating it and writing it leaves it
    assert "commondir" in run_git_c(project, "worktree", "list")
    proc = project.agent("merge", "--all", "--check", "true")
    assert proc.returncode == 0, proc
    assert proc.stderr == ("warning: removed the half-made worktree entry "
                           f"{admin} (left by an interrupted `git worktree add`)\n")
    assert project.git("worktree", "list", "--porcelain").count("worktree ") == 2  # main and task-1
    assert not admin.exists()


def test_half_made_foreign_worktree_is_named(project: Project, tmp_path: Path) -> None:
    make_tasks(project, {"1": {"a.txt": "a\n"}})
    other = tmp_path / "elsewhere"
    project.git("worktree", "add", "-q", "--detach", str(other))
    (other / "mine.txt").write_text("work\n")
    admin = project.path / ".git/worktrees/elsewhere"
    (admin / "commondir").write_text("")
    proc = project.agent("status")
    assert proc.returncode == 128, proc
    assert proc.stderr == (f"fatal: the worktree entry {admin} is half-made (its commondir is empty); "
                           "every git command that lists worktrees fails\n"
                           f"hint: if {other} holds nothing you need, remove the entry: rm -r '{admin}'\n")
    assert (other / "mine.txt").exists()


def run_git_c(project: Project, *args: str) -> str:
    import subprocess

    return subprocess.run(["git", *args], cwd=project.path, capture_output=True, text=True,
                          env={**__import__("os").environ, "LC_ALL": "C"}).stderr


def test_gc_during_a_spawn_cannot_prune_the_port_lease(project: Project, tmp_path: Path) -> None:
    """`git gc --prune=now` right before the lease's ref is written must not lose the lease."""
    import os
    import shutil

    from .conftest import write_script

    real = shutil.which("git")
    wrap = tmp_path / "wrap"
    wrap.mkdir()
    # Real git, with a `git gc --prune=now` run at the worst moment: just before a lease ref is made
    # (by `update-ref --stdin`, whose input creates it).
    write_script(wrap / "git", f"""
        case " $* " in
          *" update-ref --stdin "*)
            input=$(cat)
            case "$input" in
              *"create refs/agents/ports/"*) "{real}" gc --quiet --prune=now; echo gc >> "{wrap}/ran" ;;
            esac
            printf '%s\\n' "$input" | exec "{real}" "$@" ;;
        esac
        exec "{real}" "$@"
    """)
    env = {"PATH": f"{wrap}{os.pathsep}{os.environ['PATH']}"}
    from .conftest import BIN, run

    # tasks 1 and 2 lease their blocks in one transaction (spawn of many ids), task 3 on its own
    proc = run([str(BIN / "git-agent-spawn"), "1", "2", "--no-agent", "--prompt", "work"], project.path, env=env)
    assert proc.returncode == 0, proc
    proc = run([str(BIN / "git-agent-spawn"), "3", "--no-agent", "--prompt", "work"], project.path, env=env)
    assert proc.returncode == 0, proc
    assert (wrap / "ran").read_text() == "gc\ngc\n"
    leases = project.git("for-each-ref", "--format=%(refname) %(objectname)", "refs/agents/ports/").splitlines()
    assert len(leases) == 3
    for line in leases:
        assert project.git("cat-file", "-t", line.split()[1]) == "blob"
    assert project.git("fsck", "--connectivity-only", "--no-dangling") == ""
    ports = {project.git("config", f"agent-task.{t}.port") for t in "123"}
    assert ports == {"20000", "20010", "20020"}


def test_merge_commits_are_signed_as_git_merge_would_sign_them(project: Project, tmp_path: Path) -> None:
    import subprocess

    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "me", "-f", str(key)], check=True)
    signers = tmp_path / "allowed"
    signers.write_text(f"committer@example.com {(tmp_path / 'k.pub').read_text()}")
    make_tasks(project, {"1": {"a.txt": "a\n"}, "2": {"b.txt": "b\n"}})
    for key_, value in (("gpg.format", "ssh"), ("user.signingkey", str(key) + ".pub"), ("commit.gpgsign", "true"),
                        ("gpg.ssh.allowedSignersFile", str(signers))):
        project.git("config", key_, value)
    old = project.git("rev-parse", "main")
    project.ok("merge", "--all")
    merges = project.git("rev-list", "--first-parent", f"{old}..main").split()
    assert len(merges) == 2
    for commit in merges:
        verified = subprocess.run(["git", "verify-commit", commit], cwd=project.path, capture_output=True, text=True)
        assert verified.returncode == 0, verified
        assert 'Good "git" signature for committer@example.com' in verified.stderr
    # --no-gpg-sign's equivalent: commit.gpgsign=false leaves them unsigned, as git merge would
    make_tasks(project, {"3": {"c.txt": "c\n"}})
    project.git("config", "commit.gpgsign", "false")
    project.ok("merge", "3")
    assert project.git("log", "-1", "--format=%G?", "main") == "N"


def test_wait_refuses_a_negative_timeout(project: Project) -> None:
    proc = project.agent("wait", "--timeout", "-1", "--all")
    assert (proc.returncode, proc.stdout) == (129, "")
    assert proc.stderr.startswith("error: --timeout must be 0 or more seconds, not '-1'"), proc.stderr


def test_empty_merge_message_falls_back_to_the_default(project: Project) -> None:
    make_tasks(project, {"1": {"a.txt": "a\n"}})
    project.git("config", "agent.mergeMessage", "")
    proc = project.agent("merge", "1")
    assert proc.returncode == 0, proc
    assert proc.stderr == ("warning: agent.mergeMessage is empty; using the default "
                           "'feat: Task {id} - {title}'\n")
    assert project.git("log", "-1", "--format=%s", "main") == "feat: Task 1 - work"


def test_journal_stuck_on_an_untracked_file_can_be_continued_or_aborted(project: Project) -> None:
    """A journal left by a landing that an untracked file stopped (as older versions left it)."""
    import json

    make_tasks(project, {"1": {"a.txt": "a\n"}, "2": {"new.txt": "task 2\n"}})
    old = project.git("rev-parse", "main")
    project.ok("merge", "--all")
    new = project.git("rev-parse", "main")
    project.git("reset", "-q", "--hard", old)
    journal = {"target": "main", "worktree": str(project.path), "old": old, "new": new, "entries": [],
               "reason": "agent-merge: 2 task(s) into main", "version": 1}
    journal_path(project).write_text(json.dumps(journal))
    (project.path / "new.txt").write_text("mine\n")
    stuck = project.agent("merge", "--continue")
    assert stuck.returncode == 128
    assert stuck.stderr.startswith(f"fatal: could not update the worktree at {project.path}: ")
    assert "; left as they are (not written by this merge): new.txt\n" in stuck.stderr
    assert (project.path / "new.txt").read_text() == "mine\n"
    aborted = project.agent("merge", "--abort")
    assert aborted.returncode == 0, aborted
    assert project.git("rev-parse", "main") == old and not journal_path(project).exists()
    assert project.git("status", "--porcelain") == "?? new.txt"
    assert (project.path / "new.txt").read_text() == "mine\n"


def test_the_users_edit_during_the_check_stops_the_landing_and_is_kept(project: Project, tmp_path: Path) -> None:
    make_tasks(project, {"1": {"shared.txt": "line 1\nline 2\nline 3\nline 4 (task 1)\n"}})
    old = project.git("rev-parse", "main")
    # While the check runs the user saves shared.txt: a prefix of the merged version, then an empty one.
    for mine in ("line 1\nline 2\n", ""):
        (project.path / "shared.txt").write_text("line 1\nline 2\nline 3\n")
        check = write_script(tmp_path / "check.sh", f"printf '{mine}' > '{project.path / 'shared.txt'}'\n")

        proc = project.agent("merge", "1", f"--check={check}")

        assert proc.returncode == 128, proc.stdout + proc.stderr
        assert proc.stderr == (f"fatal: the worktree at {project.path} has local changes to shared.txt "
                               "that the merge would overwrite\n"
                               "hint: commit or stash them (git stash), then merge again\n")
        assert (project.path / "shared.txt").read_text() == mine
        assert project.git("rev-parse", "main") == old
        assert not journal_path(project).exists()
    # once the change is committed (or undone) the task merges
    project.git("checkout", "--", "shared.txt")
    again = project.agent("merge", "1", "--check=true")
    assert again.returncode == 0, again.stdout + again.stderr
    assert (project.path / "shared.txt").read_text() == "line 1\nline 2\nline 3\nline 4 (task 1)\n"


@pytest.mark.parametrize("mine", ["line 1\nline 2\n", "", "line 1\nline 2\nline 3\nline 4 (task 1)\n...and mine\n"],
                         ids=["a-prefix-of-the-merged-version", "empty", "longer"])
def test_the_users_edit_made_while_a_landing_is_interrupted_survives(project: Project, mine: str) -> None:
    """The put-back restores only what a landing recorded writing: not the user's file, whatever it holds."""
    task = {"1": {"shared.txt": "line 1\nline 2\nline 3\nline 4 (task 1)\n", "a.txt": "a\n"}}
    trace = project.path.parent / "trace"
    twin = Project(project.path.parent / "twin")  # the same merge, traced, to find the landing's git call
    run(["git", "clone", "-q", str(project.path), str(twin.path)], project.path.parent, check=True)
    make_tasks(twin, task)
    twin.ok("merge", "1", env={"GIT_AGENTS_TRACE": str(trace)})
    make_tasks(project, task)
    old = project.git("rev-parse", "main")
    calls = [line for line in trace.read_text().splitlines() if line.startswith("trace: git-agents:")]
    landing = next(n for n, line in enumerate(calls, 1) if " git read-tree -m -u " in line)
    killed = project.agent("merge", "1", env={"GIT_AGENTS_TEST_KILL_AFTER": str(landing)})  # journal written
    assert killed.returncode == 137 and journal_path(project).exists()
    (project.path / "shared.txt").write_text(mine)  # the user's edit, before anyone runs --continue

    cont = project.agent("merge", "--continue")

    assert cont.returncode == 128, cont.stdout + cont.stderr
    assert cont.stderr == (
        f"fatal: could not update the worktree at {project.path}: Entry 'shared.txt' not uptodate. Cannot merge.; "
        "left as they are (not written by this merge): shared.txt\n"
        "hint: fix what stopped it (a full disk, a file in the way, another git holding a lock), then: "
        "git agent-merge --continue\nhint: or undo the run with: git agent-merge --abort\n")
    assert (project.path / "shared.txt").read_text() == mine
    assert project.git("rev-parse", "main") == old
    aborted = project.agent("merge", "--abort")
    assert (aborted.returncode, aborted.stderr) == (0, "")
    assert aborted.stdout == f"Merge into 'main' aborted; it is back at {old[:12]}\n"
    assert (project.path / "shared.txt").read_text() == mine
    assert project.git("status", "--porcelain") == "M shared.txt"
    assert project.git("rev-parse", "main") == old and not journal_path(project).exists()


@pytest.mark.parametrize("meanwhile", ["another branch", "the same commit on another branch"])
def test_a_target_worktree_whose_head_moved_during_the_run_is_not_updated(project: Project, meanwhile: str) -> None:
    """The target's worktree switched to another branch (at another commit or at the same one)
    while the run worked (here during its check): the landing reads the worktree's
    HEAD with the target's tip (one rev-parse) and refuses before read-tree touches that worktree;
    main stays where it was. (Switched at the same commit, the old check let read-tree write the
    merge into the other branch's worktree.)"""
    make_tasks(project, {"1": {"a.txt": "a\n"}})
    old = project.git("rev-parse", "main")
    where = f"git -C '{project.path}'"
    command = {"another branch": f"{where} switch -q -c other && {where} commit -q --allow-empty -m x",
               "the same commit on another branch": f"{where} switch -q -c other"}[meanwhile]
    proc = project.agent("merge", "--all", "--check", command)
    assert (proc.returncode, proc.stdout) == (128, "")
    assert proc.stderr == (f"fatal: {project.path} no longer has 'main' checked out (now other)\n"
                           "hint: switch it back to 'main' (git switch main) and run the merge again\n")
    assert project.git("rev-parse", "main") == old
    assert project.git("symbolic-ref", "HEAD") == "refs/heads/other"
    assert project.git("status", "--porcelain") == ""
    assert not (project.path / "a.txt").exists()
    assert not journal_path(project).exists()  # nothing was written: nothing to continue or abort
    project.git("switch", "-q", "main")
    again = project.agent("merge", "--all")
    assert (again.returncode, again.stderr) == (0, "")
    assert (project.path / "a.txt").read_text() == "a\n"


def test_a_commit_made_on_the_target_during_the_run_leaves_no_journal(project: Project) -> None:
    """A commit made on main while the run worked (here during its check): the landing refuses, writes
    nothing and drops its journal, so the next merge simply runs. (The journal used to stay: the next
    merge said "interrupted", and --continue and --abort both refused to touch the moved branch.)"""
    make_tasks(project, {"1": {"a.txt": "a\n"}})
    old = project.git("rev-parse", "main")
    proc = project.agent("merge", "--all", "--check", f"git -C '{project.path}' commit -q --allow-empty -m x")
    moved = project.git("rev-parse", "main")
    assert (proc.returncode, proc.stdout) == (128, "")
    assert proc.stderr == (f"fatal: 'main' moved while merging (now {moved[:12]}, expected {old[:12]})\n"
                           "hint: nothing was merged; run the merge again\n")
    assert project.git("rev-parse", "main~") == old and not journal_path(project).exists()
    assert project.git("status", "--porcelain") == "" and not (project.path / "a.txt").exists()
    again = project.agent("merge", "--all")
    assert (again.returncode, again.stderr) == (0, "")
    assert project.git("rev-parse", "main^1") == moved and (project.path / "a.txt").read_text() == "a\n"
