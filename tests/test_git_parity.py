"""What plain git does and git agent-merge does alike: submodules at another commit, hooks, merge styles.

Each test runs the same steps through plain git on a copy of the repository and compares.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import Project, run


def _commit_in(repo: Path, message: str) -> str:
    run(["git", "commit", "-q", "--allow-empty", "-m", message], repo, check=True)
    return run(["git", "rev-parse", "HEAD"], repo, check=True).stdout.strip()


def test_a_submodule_at_another_commit_does_not_stop_the_merge(project: Project, tmp_path: Path,
                                                                committing_agent: Path) -> None:
    lib = tmp_path / "lib"
    run(["git", "init", "-q", str(lib)], tmp_path, check=True)
    old = _commit_in(lib, "lib 1")
    new = _commit_in(lib, "lib 2")
    run(["git", "checkout", "-q", old], lib, check=True)
    project.git("-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "lib")
    project.git("commit", "-q", "-m", "add lib")
    project.ok("spawn", "1", "--agent", str(committing_agent))
    project.ok("wait", "1")
    # A pull bumped the submodule; `git submodule update` has not run: lib is checked out at `old`.
    project.git("update-index", "--cacheinfo", f"160000,{new},lib")
    project.git("commit", "-q", "-m", "bump lib")
    assert project.git("status", "--porcelain") == "M lib"
    plain = tmp_path / "plain"
    shutil.copytree(project.path, plain, symlinks=True)
    run(["git", "merge", "-q", "--no-ff", "-m", "plain", "task-1"], plain, check=True)

    merged = project.ok("merge", "--all")
    assert merged.stdout.startswith("Merged task 1 (")
    assert project.git("rev-parse", "main^{tree}") == project.git("rev-parse", "HEAD^{tree}", cwd=plain)
    assert (project.path / "file-1.txt").read_text() == "work of task 1\n"
    assert project.git("rev-parse", "HEAD", cwd=project.path / "lib") == old  # left as git merge leaves it
    assert project.git("status", "--porcelain") == "M lib"


def test_a_staged_submodule_change_still_refuses(project: Project, tmp_path: Path, committing_agent: Path) -> None:
    lib = tmp_path / "lib"
    run(["git", "init", "-q", str(lib)], tmp_path, check=True)
    old = _commit_in(lib, "lib 1")
    new = _commit_in(lib, "lib 2")
    project.git("-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "lib")
    project.git("commit", "-q", "-m", "add lib")
    project.ok("spawn", "1", "--agent", str(committing_agent))
    project.ok("wait", "1")
    project.git("update-index", "--cacheinfo", f"160000,{old},lib")  # staged: the merge would mix it in
    assert new
    proc = project.agent("merge", "--all")
    assert proc.returncode == 128
    assert proc.stderr.splitlines()[0] == (
        f"fatal: the worktree at {project.path} has uncommitted changes; merging would mix them in")


HOOK = """\
#!/bin/sh
[ -n "$HOOK_LOG" ] || exit 0  # the agents' own commits
name=$(basename "$0")
args="$*"
[ -n "$1" ] && [ -f "$1" ] && args="<message file>${2:+ $2}"
{
  echo "$name $args pwd=$(pwd)"
  echo "  GIT_DIR=${GIT_DIR-unset} GIT_EDITOR=${GIT_EDITOR-unset} GIT_PREFIX=${GIT_PREFIX-unset}"
  echo "  GIT_REFLOG_ACTION=${GIT_REFLOG_ACTION-unset} GIT_INDEX_FILE is ${GIT_INDEX_FILE:+set}"
  [ -n "$GIT_INDEX_FILE" ] && echo "  index: $(git ls-files | tr '\\n' ' ')"
  [ "$name" = post-merge ] && \\
    echo "  ORIG_HEAD..HEAD: $(git log --first-parent --format=%s ORIG_HEAD..HEAD | tr '\\n' ' ')"
} >> "$HOOK_LOG${name#post-merge}"  # post-merge: to $HOOK_LOG itself, the others to $HOOK_LOG<name>
if [ "$name" = commit-msg ]; then
  grep -q refuse-me "$1" && { echo "commit-msg: no 'refuse-me' in messages" >&2; exit 1; }
  printf '\\n\\nSigned-off-by: The Hook <hook@example.com>\\n' >> "$1"
fi
exit 0
"""


def _install_hooks(repo: Path, where: str) -> None:
    hooks = repo / where
    hooks.mkdir(parents=True, exist_ok=True)
    for name in ("pre-merge-commit", "prepare-commit-msg", "commit-msg", "post-merge"):
        (hooks / name).write_text(HOOK)
        (hooks / name).chmod(0o755)


def _two_tasks(project: Project, committing_agent: Path) -> None:
    """Two finished tasks, spawned after the hooks were installed (the guard (tasks/guard.py) merges
    with the hooks as they were when the tasks were spawned)."""
    for task in ("1", "2"):
        project.ok("spawn", task, "--agent", str(committing_agent))
    project.ok("wait", "1", "2")


def test_merge_runs_git_merges_hooks_as_git_merge_does(project: Project, tmp_path: Path,
                                                       committing_agent: Path) -> None:
    _install_hooks(project.path, "my-hooks")
    project.git("config", "core.hooksPath", "my-hooks")  # relative: to the worktree, as for git
    (project.path / ".git/info/exclude").write_text("my-hooks/\n")
    project.git("config", "agent.mergeMessage", "merge {branch}")
    _two_tasks(project, committing_agent)
    old = project.git("rev-parse", "main")
    plain = tmp_path / "plain"
    shutil.copytree(project.path, plain, symlinks=True)
    for task in ("1", "2"):
        run(["git", "merge", "-q", "--no-ff", "-m", f"merge task-{task}", f"task-{task}"], plain, check=True,
            env={"HOOK_LOG": str(tmp_path / "plain.log")})

    merged = project.agent("merge", "--all", env={"HOOK_LOG": str(tmp_path / "ours.log")})
    assert merged.returncode == 0, merged.stderr
    def log(name: str, top: Path) -> str:
        return "".join((tmp_path / f"{name}{hook}").read_text().replace(str(top), "<top>")
                       for hook in ("pre-merge-commit", "prepare-commit-msg", "commit-msg"))
    # The commit hooks: the same hooks, arguments, environment and index, merge by merge.
    assert log("ours.log", project.path) == log("plain.log", plain)
    assert log("ours.log", project.path).startswith("pre-merge-commit  pwd=<top>\n"
                              "  GIT_DIR=unset GIT_EDITOR=: GIT_PREFIX=\n"
                              "  GIT_REFLOG_ACTION=merge task-1 GIT_INDEX_FILE is set\n"
                              "  index: README file-1.txt shared.txt \n"
                              "pre-merge-commit  pwd=<top>\n")
    assert "prepare-commit-msg <message file> merge pwd=<top>\n" in log("ours.log", project.path)
    # post-merge: once, after the target moved (git merge: once per merge), ORIG_HEAD where it was.
    post_merge = (tmp_path / "ours.log").read_text().replace(str(project.path), "<top>")
    assert post_merge == ("post-merge 0 pwd=<top>\n  GIT_DIR=unset GIT_EDITOR=false GIT_PREFIX=\n"
                       "  GIT_REFLOG_ACTION=unset GIT_INDEX_FILE is \n"
                       "  ORIG_HEAD..HEAD: merge task-2 merge task-1 \n")
    assert (tmp_path / "plain.log").read_text().count("post-merge 0 ") == 2
    assert project.git("rev-parse", "ORIG_HEAD") == old
    # What commit-msg wrote is in the commits, as with git merge; the same trees.
    log = project.git("log", "--first-parent", "--format=%B%x00", "main").split("\0")
    assert log[:2] == [
        "merge task-2\n\nSigned-off-by: The Hook <hook@example.com>\n",
        "\nmerge task-1\n\nSigned-off-by: The Hook <hook@example.com>\n"]
    assert project.git("log", "--first-parent", "--format=%B%x00", "HEAD", cwd=plain).split("\0")[:2] == log[:2]
    assert project.git("rev-parse", "main^{tree}") == project.git("rev-parse", "HEAD^{tree}", cwd=plain)


def test_a_hook_that_refuses_leaves_out_that_task_only(project: Project, tmp_path: Path,
                                                       committing_agent: Path) -> None:
    _install_hooks(project.path, ".git/hooks")
    project.git("config", "agent.mergeMessage", "merge {branch}: {title}")
    _two_tasks(project, committing_agent)
    project.git("config", "agent-task.1.title", "refuse-me")
    env = {"HOOK_LOG": str(tmp_path / "log")}
    proc = project.agent("merge", "--all", env=env)
    assert proc.returncode == 1
    merge2 = project.git("rev-parse", "main")
    assert proc.stdout == (
        "Task 1 not merged: the commit-msg hook refused it (its output is above; skip it with --no-verify, "
        "as with git merge); branch and worktree kept\n"
        f"Merged task 2 ({merge2[:12]})\n"
        "1 merged, 1 not merged\n")
    assert "commit-msg: no 'refuse-me' in messages\n" in proc.stderr
    assert not (project.path / "file-1.txt").exists()
    again = project.agent("merge", "1", "--no-verify", env=env)
    assert again.returncode == 0, again.stderr
    assert project.git("log", "-1", "--format=%B", "main") == "merge task-1: refuse-me"
    assert (project.path / "file-1.txt").exists()


def test_spawn_runs_post_checkout_as_git_worktree_add_does(project: Project, tmp_path: Path) -> None:
    hook = project.path / ".git/hooks/post-checkout"
    hook.write_text('#!/bin/sh\necho "post-checkout $* in $(pwd): $(ls | tr \'\\n\' \' \')" >> "$HOOK_LOG"\n'
                    'echo "hook says hi"\n')
    hook.chmod(0o755)
    head = project.git("rev-parse", "HEAD")
    plain = project.worktrees / "plain"
    run(["git", "worktree", "add", "-q", "-b", "plain", str(plain)], project.path, check=True,
        env={"HOOK_LOG": str(tmp_path / "plain.log")})
    spawned = project.ok("spawn", "1", "--prompt", "x", env={"HOOK_LOG": str(tmp_path / "ours.log")})
    assert spawned.stderr == "hook says hi\n"  # as git does: a hook's output goes to stderr
    ours = (tmp_path / "ours.log").read_text()
    assert ours == f"post-checkout {'0' * 40} {head} 1 in {project.worktrees / 'task-1'}: README shared.txt \n"
    assert ours.replace("task-1", "plain") == (tmp_path / "plain.log").read_text()


def test_spawn_of_many_ids_runs_post_checkout_from_a_relative_hooks_path(project: Project, tmp_path: Path) -> None:
    """A relative core.hooksPath names a directory of each worktree (as for git): the hook each new
    task worktree has runs there, once per task, as `git worktree add` runs it."""
    project.commit_file("my-hooks/post-checkout", '#!/bin/sh\necho "post-checkout $* in $(pwd)" >> "$HOOK_LOG"\n')
    project.git("add", "--chmod=+x", "my-hooks/post-checkout")
    project.git("commit", "-q", "-m", "executable hook")
    (project.path / "my-hooks/post-checkout").chmod(0o755)
    project.git("config", "core.hooksPath", "my-hooks")
    head = project.git("rev-parse", "HEAD")
    run(["git", "worktree", "add", "-q", "-b", "plain", str(project.worktrees / "plain")], project.path, check=True,
        env={"HOOK_LOG": str(tmp_path / "plain.log")})
    project.ok("spawn", "1", "2", "3", "--no-agent", "--prompt", "x", env={"HOOK_LOG": str(tmp_path / "ours.log")})
    ours = sorted((tmp_path / "ours.log").read_text().splitlines())
    assert ours == [f"post-checkout {'0' * 40} {head} 1 in {project.worktrees / f'task-{i}'}" for i in "123"]
    assert ours[0].replace("task-1", "plain") + "\n" == (tmp_path / "plain.log").read_text()


def _style_tasks(project: Project, tmp_path: Path) -> Path:
    """Three finished tasks of two commits each; task 3 conflicts with task 2 (both edit shared.txt's line 1)."""
    agent = tmp_path / "two-commits.sh"
    agent.write_text(
        '#!/bin/sh\nT=$GIT_AGENT_TASK\necho "a $T" > "a-$T.txt"; git add -A; git commit -qm "task $T: first"\n'
        'case $T in 2) sed -i "s/line 1/line one/" shared.txt;; 3) sed -i "s/line 1/line uno/" shared.txt;; esac\n'
        'echo "b $T" > "b-$T.txt"; git add -A; git commit -qm "task $T: second"\n')
    agent.chmod(0o755)
    project.git("config", "agent.mergeMessage", "merge {branch}")
    for task in ("1", "2", "3"):
        project.ok("spawn", task, "--agent", str(agent))
    project.ok("wait", "1", "2", "3")
    plain = tmp_path / "plain"
    shutil.copytree(project.path, plain, symlinks=True)
    shutil.rmtree(plain / ".git/worktrees")  # the branches are free to check out there
    return plain


def _history(project: Project, where: Path) -> list[str]:
    """Tree, parent count, author and subject of each commit on main since the initial one."""
    return project.git("log", "--format=%T %p|%an|%s", "main", "--not", "main~0^{/initial}", cwd=where).split("\n")


def _noted(project: Project) -> list[str]:
    """The subjects of the commits that carry a task's note, and the task each note names."""
    rows = []
    for line in project.git("notes", "--ref=agents", "list").split("\n"):
        commit = line.split()[1]
        task = next(f for f in project.git("notes", "--ref=agents", "show", commit).split("\n")
                    if f.startswith("task: "))
        rows.append(f"{project.git('log', '-1', '--format=%s', commit)} <- {task}")
    return sorted(rows)


def _shape(rows: list[str]) -> list[str]:
    """History rows with the parents reduced to their number (ids differ between the two repositories)."""
    out = []
    for row in rows:
        head, author, subject = row.split("|")
        tree, *parents = head.split()
        out.append(f"{tree} {len(parents)} {author} {subject}")
    return out


def test_squash_style_is_git_merge_squash_and_commit(project: Project, tmp_path: Path) -> None:
    plain = _style_tasks(project, tmp_path)
    for task in ("1", "2", "3"):
        if run(["git", "merge", "-q", "--squash", f"task-{task}"], plain).returncode:
            run(["git", "reset", "-q", "--hard"], plain, check=True)
            continue
        run(["git", "commit", "-q", "-m", f"merge task-{task}"], plain, check=True)

    proc = project.agent("merge", "--all", "--style=squash")
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[-2:] == [
        "Conflict in task 3: shared.txt (not merged; branch and worktree kept)", "2 merged, 1 not merged"]
    ours = _shape(_history(project, project.path))
    assert ours == _shape(_history(project, plain))
    assert [row.split(" ", 2)[1:] for row in ours] == [["1", "A U Thor merge task-2"], ["1", "A U Thor merge task-1"]]
    assert _noted(project) == ["merge task-1 <- task: 1", "merge task-2 <- task: 2"]
    assert project.git("status", "--porcelain") == ""


def test_rebase_style_is_git_rebase_and_fast_forward(project: Project, tmp_path: Path) -> None:
    plain = _style_tasks(project, tmp_path)
    for task in ("1", "2", "3"):
        if run(["git", "rebase", "-q", "main", f"task-{task}"], plain).returncode:
            run(["git", "rebase", "--abort"], plain, check=True)
        else:
            run(["git", "checkout", "-q", "main"], plain, check=True)
            run(["git", "merge", "-q", "--ff-only", f"task-{task}"], plain, check=True)
        run(["git", "checkout", "-q", "main"], plain, check=True)

    project.git("config", "agent.mergeStyle", "rebase")
    proc = project.agent("merge", "--all")
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[-2:] == [
        "Conflict in task 3: shared.txt (not merged; branch and worktree kept)", "2 merged, 1 not merged"]
    ours = _shape(_history(project, project.path))
    assert ours == _shape(_history(project, plain))
    assert [row.split(" ", 1)[1] for row in ours] == [
        "1 A U Thor task 2: second", "1 A U Thor task 2: first", "1 A U Thor task 1: second",
        "1 A U Thor task 1: first"]
    assert _noted(project) == ["task 1: second <- task: 1", "task 2: second <- task: 2"]
    assert project.git("status", "--porcelain") == ""
    # the task branches are untouched (git rebase would have moved them; the merge leaves them as they were)
    assert project.git("rev-list", "--count", "main..task-1") == "2"


def test_merge_style_setting_and_option_are_checked(project: Project) -> None:
    project.git("config", "agent.mergeStyle", "fast")
    proc = project.agent("merge", "--all")
    assert (proc.returncode, proc.stderr) == (
        128, "fatal: unknown merge style 'fast' (agent.mergeStyle)\nhint: use merge, squash or rebase\n")
    proc = project.agent("merge", "--all", "--style=squash", "--interactive")
    assert proc.returncode == 129
    assert "--interactive leaves a real merge to resolve: it needs --style=merge, not squash" in proc.stderr
    proc = project.agent("merge", "--all", "--style=rebase", "--resolve")
    assert proc.returncode == 129
    assert proc.stderr.startswith("error: --resolve commits its resolution as a merge on the task's branch, which "
                                  "--style=rebase would drop: use --style=merge or squash\n")


@pytest.mark.parametrize("style", ["squash", "rebase"])
@pytest.mark.parametrize("moment", [3, 12, 20, 26, 32, 40])
def test_each_style_killed_at_any_moment_then_continue_or_abort(tmp_path: Path, style: str, moment: int) -> None:
    from .test_merge_queue import SHARED_CLASH, SHARED_EDIT, journal_path, make_tasks

    project = Project(tmp_path / "project")
    project.path.mkdir()
    project.git("init", "-q")
    project.commit_file("shared.txt", "line 1\nline 2\nline 3\n", "initial")
    make_tasks(project, {"1": {"a.txt": "a\n", **SHARED_EDIT}, "2": SHARED_CLASH, "3": {"b.txt": "b\n"}})
    project.git("config", "agent.mergeStyle", style)
    old = project.git("rev-parse", "main")
    killed = project.agent("merge", "--all", env={"GIT_AGENTS_TEST_KILL_AFTER": str(moment)})
    assert killed.returncode in (137, 1)
    if journal_path(project).exists():
        project.ok("merge", "--abort" if moment % 2 else "--continue")
    assert project.git("status", "--porcelain") == ""
    assert not journal_path(project).exists()
    if project.git("rev-parse", "main") == old:
        assert project.git("notes", "--ref=agents", "list") == ""
        finished = project.agent("merge", "--all")  # the queue still works afterwards
        assert finished.returncode == 1
    # wholly in: tasks 1 and 3 (task 2 conflicts with 1), each noted once, on its last commit
    assert sorted(project.git("ls-tree", "--name-only", "main").split()) == ["a.txt", "b.txt", "shared.txt"]
    assert project.git("rev-list", "--count", f"{old}..main") == "2"
    assert project.git("notes", "--ref=agents", "list").count("\n") == 1
    assert project.git("rev-list", "--merges", f"{old}..main") == ""


@pytest.mark.parametrize("style", ["squash", "rebase"])
def test_clean_merged_removes_tasks_landed_by_squash_or_rebase_but_not_later_work(project: Project, style: str,
                                                                                 committing_agent: Path) -> None:
    project.ok("spawn", "1", "2", "--agent", str(committing_agent))
    project.ok("wait", "1", "2")
    project.ok("merge", "--all", f"--style={style}")
    project.commit_file("late.txt", "after the merge\n", cwd=project.worktrees / "task-2")
    proc = project.agent("clean", "--merged")
    assert proc.returncode == 1
    assert "error: not removing task 2: its branch task-2 has 2 commit(s) not merged into main" in proc.stderr
    assert not (project.worktrees / "task-1").exists()
    assert project.git("branch", "--list", "task-1") == ""


def test_a_task_files_style_is_how_run_merges(project: Project, tmp_path: Path, committing_agent: Path) -> None:
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(f'agent = "{committing_agent}"\nstyle = "squash"\n'
                     '[[task]]\nid = "1"\nprompt = "x"\n[[task]]\nid = "2"\nprompt = "y"\n')
    old = project.git("rev-parse", "main")
    project.ok("run", str(tasks))
    assert project.git("rev-list", "--count", "--merges", f"{old}..main") == "0"
    assert project.git("rev-list", "--count", f"{old}..main") == "2"
    assert sorted(project.git("ls-tree", "--name-only", "main").split()) == [
        "README", "file-1.txt", "file-2.txt", "shared.txt"]


@pytest.mark.parametrize("style", ["squash", "rebase"])
def test_remote_merge_in_each_style_with_a_batch_check(tmp_path: Path, project: Project, style: str) -> None:
    from .conftest import write_script
    from .test_remote import CHECK, worked_queue

    srv = tmp_path / "srv"
    srv.mkdir()
    run(["git", "clone", "-q", "--bare", str(project.path), str(srv / "remote.git")], tmp_path, check=True)
    agent = write_script(tmp_path / "agent.sh", """
        if [ "$GIT_AGENT_TASK" = 2 ]; then echo broken; else echo fine; fi > "file-$GIT_AGENT_TASK.txt"
        git add . && git commit -q -m "task $GIT_AGENT_TASK"
    """)
    publisher = worked_queue(tmp_path, f"file://{srv / 'remote.git'}", ["1", "2", "3"], agent)
    before = publisher.git("ls-remote", "origin", "refs/heads/main").split()[0]
    merged = publisher.agent("merge", "--all", "--remote", "origin", "--check", CHECK, "--check-batch",
                             f"--style={style}")
    assert merged.returncode == 1, merged.stderr
    main = publisher.git("ls-remote", "origin", "refs/heads/main").split()[0]
    publisher.git("fetch", "-q", "origin")
    assert publisher.git("rev-list", "--count", "--merges", f"{before}..{main}") == "0"
    assert publisher.git("rev-list", "--count", f"{before}..{main}") == "2"
    assert sorted(publisher.git("ls-tree", "--name-only", main).split()) == [
        "README", "file-1.txt", "file-3.txt", "shared.txt"]
    assert merged.stdout.splitlines()[1:3] == ["Check failed for task 2 (not merged; its branch stays on origin):",
                                               "    file-2.txt"]
