"""What plain git does and git agent-merge does alike: submodules at another commit, hooks, merge styles.

Each test runs the same steps through plain git on a copy of the repository and compares.
"""

from __future__ import annotations

import shutil
from pathlib import Path

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
    project.git("config", "agent.mergeMessage", "merge {branch}")
    for task in ("1", "2"):
        project.ok("spawn", task, "--agent", str(committing_agent))
    project.ok("wait", "1", "2")


def test_merge_runs_git_merges_hooks_as_git_merge_does(project: Project, tmp_path: Path,
                                                       committing_agent: Path) -> None:
    _two_tasks(project, committing_agent)
    _install_hooks(project.path, "my-hooks")
    project.git("config", "core.hooksPath", "my-hooks")  # relative: to the worktree, as for git
    (project.path / ".git/info/exclude").write_text("my-hooks/\n")
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
    _two_tasks(project, committing_agent)
    _install_hooks(project.path, ".git/hooks")
    project.git("config", "agent-task.1.title", "refuse-me")
    project.git("config", "agent.mergeMessage", "merge {branch}: {title}")
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
