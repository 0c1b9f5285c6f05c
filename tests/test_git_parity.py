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
