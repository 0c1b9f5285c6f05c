"""The merge queue: in-memory chains equal to `git merge --no-ff`, dry runs, checks, crash recovery."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from git_agents.merging.inmemory import parse_merge_tree

from .conftest import ROOT, Project, run

NOTES = "refs/notes/agents"


def make_tasks(project: Project, edits: dict[str, dict[str, str | None]]) -> None:
    """Spawn tasks without agents and commit each task's edits (None deletes a file) on its branch."""
    project.ok("spawn", *edits, "--no-agent", "--prompt", "work")
    for task_id, files in edits.items():
        wt = project.worktrees / f"task-{task_id}"
        for name, content in files.items():
            if content is None:
                project.git("rm", "-q", name, cwd=wt)
            else:
                (wt / name).parent.mkdir(parents=True, exist_ok=True)
                (wt / name).write_text(content)
                project.git("add", name, cwd=wt)
        if files:
            project.git("commit", "-q", "-m", f"task {task_id}", cwd=wt)


def journal_path(project: Project) -> Path:
    return project.path / ".git" / "agents" / "merge-journal"


def first_parent_history(project: Project, rev: str, cwd: Path | None = None) -> list[tuple[str, str, str, str]]:
    """(tree, first parent's tree, second parent, message) of each first-parent commit."""
    out = project.git("log", "--first-parent", "-z", "--format=%T %P%n%B", rev, cwd=cwd)
    rows = []
    for entry in filter(None, out.split("\0")):
        head, _, message = entry.strip("\n").partition("\n")
        tree, *parents = head.split()
        parent_tree = project.git("rev-parse", f"{parents[0]}^{{tree}}", cwd=cwd) if parents else ""
        rows.append((tree, parent_tree, parents[1] if len(parents) > 1 else "", message.strip()))
    return rows


SHARED_EDIT = {"shared.txt": "line 1\nline two (task 1)\nline 3\n"}
SHARED_CLASH = {"shared.txt": "line 1\nline II (task 2)\nline 3\n"}


def test_history_equals_sequential_merge_no_ff_loop(project: Project, tmp_path: Path) -> None:
    make_tasks(project, {
        "1": {"a.txt": "a\n", **SHARED_EDIT},
        "2": SHARED_CLASH,  # conflicts with 1 once 1 is in
        "3": {"dir/b.txt": "b\n", "README": "readme\nmore\n"},
        "4": {"README": None},  # deletes a file 3 edited: conflicts
        "5": {"c.txt": "c\n"},
    })
    # The reference: a clone running the plain loop a user would type.
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project.path), str(clone)], tmp_path, check=True)
    for task_id in "12345":
        title = "work"
        msg = f"feat: Task {task_id} - {title}"
        proc = run(["git", "merge", "--no-ff", "-q", "-m", msg, f"origin/task-{task_id}"], clone)
        if proc.returncode != 0:
            run(["git", "merge", "--abort"], clone, check=True)

    merge = project.agent("merge", "--all")
    assert merge.returncode == 1
    assert merge.stdout.splitlines()[-1] == "3 merged, 2 not merged"
    ours = first_parent_history(project, "main")
    theirs = first_parent_history(project, "HEAD", cwd=clone)
    assert ours == theirs
    assert len(ours) == 4  # three merges and the initial commit
    assert project.git("status", "--porcelain") == ""
    assert not journal_path(project).exists()


def test_dry_run_predicts_in_order_and_touches_nothing(project: Project) -> None:
    make_tasks(project, {
        "1": SHARED_EDIT,
        "2": {"other.txt": "x\n"},
        "3": SHARED_CLASH,  # clean against main alone; conflicts only because 1 merges first
    })
    before = project.snapshot()
    objects_before = project.git("count-objects")
    dry = project.agent("merge", "--dry-run", "--all")
    assert dry.returncode == 1
    assert dry.stdout == ("Task 1 would merge cleanly\n"
                          "Task 2 would merge cleanly\n"
                          "Task 3 would conflict: shared.txt\n"
                          "    CONFLICT (content): Merge conflict in shared.txt\n"
                          "2 would merge, 1 would not\n")
    assert dry.stderr == ""
    assert project.snapshot() == before
    assert project.git("for-each-ref", NOTES) == ""
    assert objects_before != "" and not journal_path(project).exists()
    # Alone, task 3 would merge: the prediction really depends on the order.
    assert project.agent("merge", "--dry-run", "3").stdout == "Task 3 would merge cleanly\n1 would merge, 0 would not\n"


def test_rename_delete_conflict_names_both_paths(project: Project) -> None:
    make_tasks(project, {"1": {}})
    wt = project.worktrees / "task-1"
    project.git("mv", "shared.txt", "moved.txt", cwd=wt)
    project.git("commit", "-q", "-m", "rename", cwd=wt)
    project.git("rm", "-q", "shared.txt")
    project.git("commit", "-q", "-m", "delete shared")
    dry = project.agent("merge", "--dry-run", "1")
    assert dry.stdout.splitlines() == [
        "Task 1 would conflict: moved.txt, shared.txt",
        "    CONFLICT (rename/delete): shared.txt renamed to moved.txt in "
        f"{project.git('rev-parse', 'task-1')}, but deleted in {project.git('rev-parse', 'main')}.",
        "0 would merge, 1 would not",
    ]


path_text = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), min_size=1, max_size=12)


@given(conflicted=st.lists(path_text, max_size=4, unique=True),
       messages=st.lists(st.tuples(st.sampled_from(["CONFLICT (content)", "Auto-merging", "CONFLICT (rename/delete)"]),
                                   st.lists(path_text, min_size=1, max_size=3), path_text), max_size=4))
def test_parse_merge_tree_round_trip(conflicted: list[str], messages: list[tuple[str, list[str], str]]) -> None:
    tree = "0123456789abcdef0123456789abcdef01234567"
    out = tree + "\0" + "".join(p + "\0" for p in conflicted)
    if conflicted or messages:
        out += "\0" + "".join(f"{len(paths)}\0" + "".join(p + "\0" for p in paths) + f"{kind}\0{msg}\n\0"
                              for kind, paths, msg in messages)
    parsed = parse_merge_tree(out)
    assert parsed.tree == tree
    assert parsed.conflicted == conflicted
    assert parsed.messages == [(k, p, m.rstrip("\n")) for k, p, m in messages]
    expected = list(dict.fromkeys(conflicted + [p for k, ps, _ in messages if k.startswith("CONFLICT") for p in ps]))
    assert parsed.conflict_paths == expected


def test_check_gates_each_merge(project: Project, tmp_path: Path) -> None:
    make_tasks(project, {"1": {"a.txt": "a\n"}, "2": {"bad.txt": "broken\n"}, "3": {"c.txt": "c\n"}})
    log = tmp_path / "checked"
    check = f'ls >> {log}; echo "---" >> {log}; if test -e bad.txt; then echo "test failed: bad.txt"; exit 1; fi'
    merge = project.agent("merge", "--all", "--check", check)
    assert merge.returncode == 1
    assert merge.stdout.splitlines()[1:] == [
        "Check failed for task 2 (not merged; branch and worktree kept):",
        "    test failed: bad.txt",
        f"Merged task 3 ({project.git('rev-parse', 'main')[:12]})",
        "2 merged, 1 not merged",
    ]
    assert project.git("ls-tree", "--name-only", "main").split() == ["README", "a.txt", "c.txt", "shared.txt"]
    # each candidate was checked exactly once, in the scratch worktree holding that candidate
    assert log.read_text().split("---\n") == ["README\na.txt\nshared.txt\n", "README\na.txt\nbad.txt\nshared.txt\n",
                                              "README\na.txt\nc.txt\nshared.txt\n", ""]
    rows = {t["id"]: t for t in json.loads(project.ok("status", "--json").stdout)["tasks"]}
    assert (rows["2"]["state"], rows["2"]["reason"]) == ("check-failed", "test failed: bad.txt")
    assert "check: passed" in project.git("notes", f"--ref={NOTES}", "show", "main").splitlines()
    assert project.git("worktree", "list", "--porcelain").count("worktree ") == 4  # main + 3 tasks, no scratch
    assert not (project.path / ".git" / "agents" / "check-worktree").exists()


def test_check_batch_bisects_only_on_failure(project: Project, tmp_path: Path) -> None:
    make_tasks(project, {str(i): {f"f{i}.txt": f"{i}\n"} for i in range(1, 7)})
    project.git("config", "agent.mergeCheck", f"echo run >> {tmp_path / 'runs'}; test ! -e f4.txt")
    merge = project.agent("merge", "--all", "--check-batch")
    assert merge.returncode == 1
    assert merge.stdout.splitlines()[-1] == "5 merged, 1 not merged"
    assert "f4.txt" not in project.git("ls-tree", "--name-only", "main").split()
    assert project.git("rev-list", "--count", "--first-parent", "main") == "6"
    # whole chain (fails), bisect over 6 candidates (3), the chain without the culprit (passes)
    assert (tmp_path / "runs").read_text().count("run") == 5
    project.ok("spawn", "7", "--no-agent", "--prompt", "w")
    wt = project.worktrees / "task-7"
    project.commit_file("f7.txt", "7\n", cwd=wt)
    (tmp_path / "runs").unlink()
    project.ok("merge", "7", "--check-batch")
    assert (tmp_path / "runs").read_text().count("run") == 1  # passing batch: one run, no bisection


def test_abort_puts_target_back_and_forgets_notes_and_states(project: Project) -> None:
    make_tasks(project, {"1": {"a.txt": "a\n"}, "2": SHARED_CLASH, "3": SHARED_EDIT})
    old = project.git("rev-parse", "main")
    states_before = project.git("config", "--get-regexp", r"^agent-task\.")
    trace = run(["git", "agent-merge", "--all"], project.path, env={"GIT_AGENTS_TRACE": "1"}).stderr
    calls = [line for line in trace.splitlines() if line.startswith("trace: git-agents:")]
    notes_call = next(i for i, line in enumerate(calls) if " git fast-import " in line)
    project.git("reset", "-q", "--hard", old)  # undo that run by hand to start again
    project.git("update-ref", "-d", NOTES)
    for t in "123":
        project.git("config", "--remove-section", f"agent-task.{t}")
    for line in states_before.splitlines():
        key, _, value = line.partition(" ")
        project.git("config", "--add", key, value)

    # die after the target moved, before the notes are written (the task states that follow the
    # notes are written without a git call, so no git call separates notes from states any more)
    killed = project.agent("merge", "--all", env={"GIT_AGENTS_TEST_KILL_AFTER": str(notes_call + 1)})
    assert killed.returncode == 137
    new = project.git("rev-parse", "main")
    assert new != old and journal_path(project).exists()
    refused = project.agent("merge", "--all")
    assert (refused.returncode, refused.stdout) == (128, "")
    assert refused.stderr == ("fatal: an earlier merge into 'main' was interrupted\n"
                              "hint: finish it with: git agent-merge --continue\n"
                              "hint: or undo it with: git agent-merge --abort\n")
    abort = project.ok("merge", "--abort")
    assert abort.stdout == f"Merge into 'main' aborted; it is back at {old[:12]}\n"
    assert project.git("rev-parse", "main") == old
    assert project.git("status", "--porcelain") == ""
    assert project.git("notes", f"--ref={NOTES}", "list") == ""
    assert project.git("config", "--get-regexp", r"^agent-task\.") == states_before
    assert not journal_path(project).exists()
    again = project.agent("merge", "--abort")
    assert (again.returncode, again.stderr) == (128, "fatal: no interrupted merge to abort\n"
                                                     "hint: `git agent-status` shows each task's state\n")


def _complete(project: Project, old: str, tips: dict[str, str], notes_before: str) -> None:
    """The invariants after any interruption and recovery."""
    for task_id, tip in tips.items():
        assert project.git("rev-parse", f"task-{task_id}") == tip
    assert project.git("status", "--porcelain") == ""
    assert not journal_path(project).exists()
    head = project.git("rev-parse", "main")
    merges = project.git("rev-list", "--first-parent", f"{old}..main").split()
    if head == old:
        assert project.git("notes", f"--ref={NOTES}", "list") == notes_before
        return
    # every merged task completely in: its tip reachable, its note whole, its state recorded
    assert len(merges) == 2  # tasks 1 and 3; task 2 conflicts with 1
    rows = {t["id"]: t for t in json.loads(project.ok("status", "--json").stdout)["tasks"]}
    for commit in merges:
        note = project.git("notes", f"--ref={NOTES}", "show", commit).splitlines()
        task_id = note[1].removeprefix("task: ")
        assert note[0] == "git-agents-note: 1" and note[-1] == "check: -" and len(note) == 15
        assert project.git("rev-parse", f"{commit}^2") == tips[task_id]
        assert rows[task_id]["state"] == "merged"
    assert rows["2"]["state"] == "conflict"


# A run of this scenario makes about 30 git calls; the journal exists from about the 17th on.
@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(moment=st.integers(min_value=1, max_value=34), sig=st.sampled_from(["KILL", "INT"]), abort=st.booleans())
def test_killed_at_any_moment_then_continue_or_abort(tmp_path: Path, moment: int, sig: str, abort: bool) -> None:
    root = tmp_path / f"k{moment}-{sig}-{abort}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    project = Project(root / "project")
    project.path.mkdir()
    project.git("init", "-q")
    project.commit_file("shared.txt", "line 1\nline 2\nline 3\n", "initial")
    make_tasks(project, {"1": {"a.txt": "a\n", **SHARED_EDIT}, "2": SHARED_CLASH, "3": {"b.txt": "b\n"}})
    old = project.git("rev-parse", "main")
    tips = {t: project.git("rev-parse", f"task-{t}") for t in "123"}
    killed = project.agent("merge", "--all", env={"GIT_AGENTS_TEST_KILL_AFTER": f"{moment}:{sig}"})
    # 137: git reports its helper died of SIGKILL; 130: interrupted; 1: it finished first (task 2 conflicts)
    assert killed.returncode in (137 if sig == "KILL" else 130, 1)
    if sig == "INT" and killed.returncode == 130:
        assert killed.stderr.endswith("interrupted\n")
    if journal_path(project).exists():
        project.ok("merge", "--abort" if abort else "--continue")
    # No journal: either nothing moved, or the run completed (a Ctrl-C held back until it had, or
    # a kill after it had, while it reported): _complete checks that it did, wholly.
    _complete(project, old, tips, "")
    if abort and killed.returncode != 1 and project.git("rev-parse", "main") == old:
        # the queue still works afterwards
        assert project.agent("merge", "--all").returncode == 1
        _complete(project, old, tips, "")


def test_continue_without_journal_and_usage(project: Project) -> None:
    proc = project.agent("merge", "--continue")
    assert (proc.returncode, proc.stderr) == (128, "fatal: no interrupted merge to continue\n"
                                                   "hint: `git agent-status` shows each task's state\n")
    proc = project.agent("merge", "--continue", "--all")
    assert proc.returncode == 129
    assert proc.stderr == ("error: --continue takes no tasks or other options\n"
                           "usage: git agent-merge [<options>] (--all | <id>...)\n"
                           "   or: git agent-merge --dry-run (--all | <id>...)\n"
                           "   or: git agent-merge (--continue | --abort)\n")


def _interactive_setup(project: Project) -> tuple[str, dict[str, str]]:
    make_tasks(project, {"1": SHARED_EDIT, "2": SHARED_CLASH, "3": {"c.txt": "c\n"}})
    return project.git("rev-parse", "main"), {t: project.git("rev-parse", f"task-{t}") for t in "123"}


def test_interactive_stops_at_conflict_then_continue_commits_and_goes_on(project: Project) -> None:
    old, tips = _interactive_setup(project)
    proc = project.agent("merge", "--all", "--interactive")
    assert proc.returncode == 1
    first = project.git("rev-parse", "main")
    assert proc.stdout.splitlines() == [
        f"Merged task 1 ({first[:12]})",
        "Conflict in task 2: shared.txt",
        f"Resolve the conflict of task 2 in {project.path}, `git add` the files, then run: git agent-merge --continue",
        "(or put 'main' back where it was before this run: git agent-merge --abort)",
        "1 merged, 1 not merged",
    ]
    assert project.git("rev-parse", "main^2") == tips["1"]
    assert project.git("rev-parse", "MERGE_HEAD") == tips["2"]
    assert "<<<<<<<" in (project.path / "shared.txt").read_text()
    refused = project.agent("merge", "3")
    assert (refused.returncode, refused.stderr) == (128, (
        f"fatal: a merge into 'main' is waiting for the conflict of task 2 to be resolved in {project.path}\n"
        "hint: resolve it and `git add` the files, then: git agent-merge --continue\n"
        "hint: or undo the whole run with: git agent-merge --abort\n"))
    early = project.agent("merge", "--continue")
    assert (early.returncode, early.stderr) == (128, (
        "fatal: task 2 still has unresolved conflicts: shared.txt\n"
        "hint: edit them, `git add` them, then run git agent-merge --continue again\n"))

    (project.path / "shared.txt").write_text("line 1\nline two and II\nline 3\n")
    project.git("add", "shared.txt")
    cont = project.ok("merge", "--continue")
    second, third = project.git("rev-parse", "main~1"), project.git("rev-parse", "main")
    assert cont.stdout.splitlines() == [f"Merged task 2 ({second[:12]})", f"Merged task 3 ({third[:12]})",
                                        "2 merged, 0 not merged"]
    assert project.git("log", "--first-parent", "--format=%s", f"{old}..main").splitlines() == [
        "feat: Task 3 - work", "feat: Task 2 - work", "feat: Task 1 - work"]
    assert project.git("rev-parse", "main~1^2", "main^2").split() == [tips["2"], tips["3"]]
    assert project.git("show", "main~1:shared.txt") == "line 1\nline two and II\nline 3"
    notes = json.loads(project.ok("log", "--json").stdout)["merges"]
    assert [(n["task"], n["commit"]) for n in notes] == [("3", third), ("2", second), ("1", first)]
    rows = {t["id"]: t["state"] for t in json.loads(project.ok("status", "--json").stdout)["tasks"]}
    assert rows == {"1": "merged", "2": "merged", "3": "merged"}
    assert project.git("status", "--porcelain") == "" and not journal_path(project).exists()


def test_interactive_abort_restores_the_start(project: Project) -> None:
    old, tips = _interactive_setup(project)
    states_before = project.git("config", "--get-regexp", r"^agent-task\.")
    assert project.agent("merge", "--all", "--interactive").returncode == 1
    abort = project.ok("merge", "--abort")
    assert abort.stdout == f"Merge into 'main' aborted; it is back at {old[:12]}\n"
    assert project.git("rev-parse", "main") == old
    assert project.git("status", "--porcelain") == ""
    assert project.git("rev-parse", "-q", "--verify", "MERGE_HEAD", check=False) == ""
    assert project.git("notes", f"--ref={NOTES}", "list") == ""
    assert project.git("config", "--get-regexp", r"^agent-task\.") == states_before
    assert {t: project.git("rev-parse", f"task-{t}") for t in "123"} == tips
    assert not journal_path(project).exists()


def test_rebase_retries_a_conflicting_task_onto_the_target(project: Project) -> None:
    make_tasks(project, {"1": SHARED_EDIT, "2": SHARED_EDIT, "3": SHARED_CLASH, "4": {"c.txt": "c\n"}})
    # task 2 went on from the same edit as task 1: a merge conflicts, a rebase drops the duplicate and applies
    wt2 = project.worktrees / "task-2"
    project.commit_file("shared.txt", "line 1\nline two (task 1), refined\nline 3\n", cwd=wt2)
    tip3 = project.git("rev-parse", "task-3")
    proc = project.agent("merge", "--all", "--rebase")
    assert proc.returncode == 1
    log = project.git("log", "--first-parent", "--format=%H %s", "-3", "main").splitlines()
    assert [line.split(" ", 1)[1] for line in log] == ["feat: Task 4 - work", "feat: Task 2 - work",
                                                        "feat: Task 1 - work"]
    assert proc.stdout.splitlines() == [
        f"Merged task 1 ({log[2].split()[0][:12]})",
        f"Merged task 2 ({log[1].split()[0][:12]}) after rebasing it",
        "Conflict in task 3: shared.txt (the rebase did not apply cleanly either; "
        "not merged; branch and worktree kept)",
        f"Merged task 4 ({log[0].split()[0][:12]})",
        "3 merged, 1 not merged",
    ]
    assert project.git("show", "main:shared.txt") == "line 1\nline two (task 1), refined\nline 3"
    assert run(["git", "merge-base", "--is-ancestor", "main~2", "task-2"], project.path).returncode == 0  # onto task 1
    assert project.git("rev-list", "--count", "main~2..task-2") == "1"  # the duplicate commit was dropped
    assert project.git("rev-parse", "task-3") == tip3
    wt3 = project.worktrees / "task-3"
    assert project.git("status", "--porcelain", cwd=wt3) == ""
    assert not (wt3 / project.git("rev-parse", "--git-path", "rebase-merge", cwd=wt3)).exists()
    assert project.git("rev-parse", "--abbrev-ref", "HEAD", cwd=wt3) == "task-3"
    rows = {t["id"]: t["state"] for t in json.loads(project.ok("status", "--json").stdout)["tasks"]}
    assert rows == {"1": "merged", "2": "merged", "3": "conflict", "4": "merged"}


def test_parallel_merges_merge_each_task_once(project: Project) -> None:
    import subprocess

    make_tasks(project, {str(i): {f"f{i}.txt": f"{i}\n"} for i in range(1, 5)})
    old = project.git("rev-parse", "main")
    procs = [subprocess.Popen(["git", "agent-merge", "--all"], cwd=project.path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    assert [code for code, _, _ in results] == [0] * 6, results
    outputs = sorted(out.splitlines()[-1] for _, out, _ in results)
    assert outputs == ["4 merged, 0 not merged"] + ["Nothing to merge."] * 5
    assert project.git("log", "--first-parent", "--format=%s", f"{old}..main").splitlines() == [
        f"feat: Task {i} - work" for i in (4, 3, 2, 1)]
    assert len(project.git("notes", f"--ref={NOTES}", "list").splitlines()) == 4
    assert project.git("status", "--porcelain") == "" and not journal_path(project).exists()

    # named explicitly, the losers say the tasks were merged meanwhile
    make_tasks(project, {"5": {"f5.txt": "5\n"}, "6": {"f6.txt": "6\n"}})
    procs = [subprocess.Popen(["git", "agent-merge", "5", "6"], cwd=project.path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = sorted((p.wait(timeout=120), *p.communicate()) for p in procs)
    assert results[0][:2] == (0, f"Merged task 5 ({project.git('rev-parse', 'main~1')[:12]})\n"
                                 f"Merged task 6 ({project.git('rev-parse', 'main')[:12]})\n2 merged, 0 not merged\n")
    for code, out, err in results[1:]:
        assert (code, out) == (1, "0 merged, 2 not merged\n")
        assert err == "warning: skipped task 5: already merged\nwarning: skipped task 6: already merged\n"
    assert project.git("rev-list", "--count", "--first-parent", f"{old}..main") == "6"


def test_add_notes_writes_many_notes_in_one_commit(project: Project) -> None:
    from git_agents.core.repo import Repo
    from git_agents.tasks.notes import add_note, add_notes, read_note

    # 300 distinct commits to annotate (more than git's 256-note threshold for a fan-out tree)
    parent = project.git("rev-parse", "HEAD")
    tree = project.git("rev-parse", "HEAD^{tree}")
    commits = [project.git("commit-tree", tree, "-p", parent, "-m", f"c{i}") for i in range(300)]
    repo = Repo.discover(str(project.path))
    add_note(repo, commits[0], {"task": "old"})
    add_notes(repo, {c: {"task": str(i)} for i, c in enumerate(commits)})
    assert len(project.git("notes", f"--ref={NOTES}", "list").splitlines()) == 300
    assert project.git("rev-list", "--count", NOTES) == "2"  # one commit for all 300
    assert read_note(repo.git, commits[0]) == {"task": "0"}
    assert read_note(repo.git, commits[299]) == {"task": "299"}
    # fanned out as `git notes` would (xx/yyyy...), so git reads them back fast
    assert {len(name) for name in project.git("ls-tree", "--name-only", NOTES).split()} == {2}


def test_add_notes_reads_the_notes_ref_from_its_files_and_a_wrong_guess_loses_no_note(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """The notes ref is read from the ref files (loose, or packed by gc) with no git call; fast-import
    refuses to move the ref unless the new notes commit contains it, so where the files said something
    else (absent, an older commit) the notes are written again on the real tip: nothing is lost."""
    import git_agents.core.git as gateway
    from git_agents.core.repo import Repo
    from git_agents.tasks import notes

    parent = project.git("rev-parse", "HEAD")
    commits = [project.git("commit-tree", "HEAD^{tree}", "-p", parent, "-m", f"c{i}") for i in range(5)]
    repo = Repo.discover(str(project.path))
    calls: list[list[str]] = []
    gateway.add_call_hook(calls.append)
    try:
        notes.add_notes(repo, {commits[0]: {"task": "0"}})  # no notes yet
        first = project.git("rev-parse", NOTES)
        project.git("pack-refs", "--all")
        notes.add_notes(repo, {commits[1]: {"task": "1"}})  # packed
        assert [c[0] for c in calls if c[0] != "config"] == ["var", "fast-import", "fast-import"]
        for i, wrong in ((2, ""), (3, first)):  # the files wrong (as if another ref storage, or moved back)
            monkeypatch.setattr(notes, "_notes_tip", lambda repo, wrong=wrong: wrong)
            calls.clear()
            notes.add_notes(repo, {commits[i]: {"task": str(i)}})
            assert [c[0] for c in calls] == ["fast-import", "rev-parse", "fast-import"]
    finally:
        gateway.CALL_HOOKS.remove(calls.append)
    assert [notes.read_note(repo.git, c) for c in commits[:4]] == [{"task": str(i)} for i in range(4)]
    assert project.git("rev-list", "--count", NOTES) == "4"


@pytest.mark.parametrize("recovery", ["--continue", "--abort"])
def test_killed_between_worktree_and_ref_update(project: Project, recovery: str) -> None:
    make_tasks(project, {"1": {"a.txt": "a\n"}, "2": {"b.txt": "b\n"}})
    old = project.git("rev-parse", "main")
    trace = project.path.parent / "trace"
    assert project.agent("merge", "--all", env={"GIT_AGENTS_TRACE": str(trace)}).returncode == 0
    lines = trace.read_text().splitlines()
    moment = next(i for i, line in enumerate(lines, 1) if " git update-ref -m agent-merge:" in line)
    assert " git read-tree -m -u " in lines[moment - 2]
    # start again from the same state, and die between read-tree and update-ref
    new_tree = project.git("rev-parse", "main^{tree}")
    project.git("reset", "-q", "--hard", old)
    project.git("update-ref", "-d", NOTES)
    for t in "12":
        project.git("config", "--unset", f"agent-task.{t}.state")
        project.git("config", "--unset", f"agent-task.{t}.mergeCommit")
        project.git("config", "--unset", f"agent-task.{t}.mergedAt")
    killed = project.agent("merge", "--all", env={"GIT_AGENTS_TEST_KILL_AFTER": str(moment)})
    assert killed.returncode == 137
    assert project.git("rev-parse", "main") == old
    assert project.git("status", "--porcelain") != ""  # the index moved, the branch did not
    project.ok("merge", recovery)
    assert project.git("status", "--porcelain") == ""
    if recovery == "--abort":
        assert project.git("rev-parse", "main") == old
        assert sorted(p.name for p in project.path.iterdir()) == [".git", "README", "shared.txt"]
    else:
        assert project.git("rev-parse", "main^{tree}") == new_tree
        assert len(project.git("notes", f"--ref={NOTES}", "list").splitlines()) == 2


def test_merge_all_runs_exactly_these_git_calls_and_imports_no_fix(project: Project, tmp_path: Path) -> None:
    """One more git process on `merge --all`'s path fails here (issue 22, goal 5): one worktree listing
    for the run, the integrity check's reflog walk and rev-list, one `git var -l` for the merge commits'
    and notes' idents, the target and its worktree's HEAD in one rev-parse, the notes ref read from its
    files. And it imports nothing that only a fix (--rebase, --resolve, --interactive), a spawn (presets)
    or a changed config's warning (difflib) needs."""
    make_tasks(project, {"1": {"a.txt": "a\n"}, "2": {"b.txt": "b\n"}, "3": {"c.txt": "c\n"}, "4": {"d.txt": "d\n"}})
    trace = tmp_path / "trace"
    code = ("import sys; from git_agents.cli.dispatch import main; code = main('merge', ['--all']); "
            "print(sorted(m for m in sys.modules if m.startswith(('git_agents.', 'difflib'))), code)")
    proc = run([sys.executable, "-c", code], project.path, env={"GIT_AGENTS_TRACE": str(trace),
                                                                "PYTHONPATH": str(ROOT)})
    modules = proc.stdout.splitlines()[-1]
    assert modules.endswith(" 0") and "'difflib'" not in modules
    for name in ("lifecycle", "tasks.presets", "merging.resolver", "merging.interactive", "merging.rebase"):
        assert f"'git_agents.{name}" not in modules
    calls = [line.split(": git ", 1)[1].split(" (in ")[0] for line in trace.read_text().splitlines()]
    words = [" ".join(c.split(" ")[:2]) for c in calls]
    # `git status` in each task's worktree (no agent ran: no seals) and in the target's (in a thread,
    # beside the chain's first calls)
    assert words.count("--no-optional-locks status") == 5
    assert [w for w in words if w != "--no-optional-locks status"] == [
        "version", "rev-parse --path-format=absolute", "config -z", "worktree list",
        "for-each-ref --format=%(objectname)", "log -g", "rev-list --parents", "rev-parse refs/heads/main^{tree}",
        "var -l", *["merge-tree --write-tree"] * 4, "diff-tree -r", "hash-object -w",
        "--literal-pathspecs --no-optional-locks", "rev-parse HEAD", "read-tree -m", "update-ref -m",
        "fast-import --quiet"]
