"""Big repositories: sparse task worktrees, submodules without network, disk use, clean --stale."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .conftest import Project, write_script


def files_in(root: Path) -> list[str]:
    """Every file under `root` (relative, sorted), .git left out."""
    found = []
    for top, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        found += [os.path.relpath(os.path.join(top, n), root) for n in names if n != ".git"]
    return sorted(found)


def layout(project: Project) -> None:
    """Three directories, one nested, besides the top-level files."""
    for name in ("src/mixer/mixer.c", "src/mixer/deep/x.h", "src/ui/ui.c", "docs/guide.md"):
        (project.path / name).parent.mkdir(parents=True, exist_ok=True)
        (project.path / name).write_text(f"{name}\n")
    project.git("add", ".")
    project.git("commit", "-q", "-m", "layout")


def test_sparse_worktree_holds_its_cone_merges_and_widens(project: Project, tmp_path: Path) -> None:
    layout(project)
    agent = write_script(tmp_path / "edit.sh", """
        echo "fixed" >> src/mixer/mixer.c
        git commit -q -am "fix the mixer"
    """)
    project.ok("spawn", "1", "--prompt", "x", "--agent", str(agent), "--sparse", "src/mixer/")
    wt = project.worktrees / "task-1"
    assert files_in(wt) == ["README", "shared.txt", "src/mixer/deep/x.h", "src/mixer/mixer.c"]
    project.ok("wait", "1", "--timeout", "60")
    # the files outside the cone are not "deleted": status is clean, merge goes ahead
    row = json.loads(project.ok("status", "--json").stdout)["tasks"][0]
    assert (row["state"], row["ahead"], row["files_changed"], row["uncommitted"]) == ("exited 0", 1, 1, False)
    merged = project.ok("merge", "1")
    assert merged.stdout.startswith("Merged task 1 (")
    assert project.git("show", "main:src/mixer/mixer.c") == "src/mixer/mixer.c\nfixed"
    assert project.git("show", "main:src/ui/ui.c") == "src/ui/ui.c"  # untouched by the sparse worktree
    assert files_in(project.path) == ["README", "docs/guide.md", "shared.txt", "src/mixer/deep/x.h",
                                      "src/mixer/mixer.c", "src/ui/ui.c"]
    # the agent (or the user) widens the checkout with git's own command
    project.git("sparse-checkout", "add", "docs", cwd=wt)
    assert "docs/guide.md" in files_in(wt)
    assert project.git("status", "--porcelain", cwd=wt) == ""
    # the main worktree stays a full checkout
    assert project.git("config", "--bool", "--get", "core.sparseCheckout", check=False) == ""
    project.ok("clean", "1")


def test_agent_sparse_setting_space_separated_and_no_sparse(project: Project) -> None:
    layout(project)
    project.git("config", "agent.sparse", "src/ui docs")
    project.ok("spawn", "2", "--prompt", "x")
    assert files_in(project.worktrees / "task-2") == ["README", "docs/guide.md", "shared.txt", "src/ui/ui.c"]
    project.ok("spawn", "3", "--prompt", "x", "--no-sparse")
    assert len(files_in(project.worktrees / "task-3")) == 6
    refused = project.agent("spawn", "4", "--prompt", "x", "--sparse", "../elsewhere")
    assert refused.returncode == 128
    assert refused.stderr == ("fatal: sparse directory '../elsewhere' is outside the worktree\n"
                              "hint: name directories relative to the top of the repository, e.g. src/mixer\n")


def test_pool_claim_sparse_narrows_the_slot_and_clean_restores_it(project: Project) -> None:
    layout(project)
    project.ok("pool", "create", "1")
    slot = project.worktrees / "pool-1"
    assert len(files_in(slot)) == 6
    claimed = project.ok("pool", "claim", "--task", "7", "--prompt", "x", "--sparse", "docs")
    assert claimed.stdout == f"{slot}\n"
    assert files_in(slot) == ["README", "docs/guide.md", "shared.txt"]
    assert project.git("status", "--porcelain", cwd=slot) == ""
    project.ok("clean", "7")
    assert len(files_in(slot)) == 6  # a free slot is a full checkout again
    # a slot grown for a sparse task is born sparse
    project.ok("spawn", "8", "--pool", "--prompt", "x", "--sparse", "src/ui")
    project.ok("spawn", "9", "--pool", "--prompt", "x", "--sparse", "src/ui")
    assert files_in(slot) == files_in(project.worktrees / "pool-2") == ["README", "shared.txt", "src/ui/ui.c"]


def test_task_file_sparse_global_and_per_task(project: Project, tmp_path: Path) -> None:
    layout(project)
    taskfile = tmp_path / "tasks.toml"
    taskfile.write_text('agent = "true"\nmerge = false\nsparse = ["docs"]\n'
                        '[[task]]\nid = "a"\nprompt = "x"\n'
                        '[[task]]\nid = "b"\nprompt = "x"\nsparse = []\n')
    assert project.agent("run", str(taskfile)).returncode == 1  # `true` commits nothing: both kept
    assert files_in(project.worktrees / "task-a") == ["README", "docs/guide.md", "shared.txt"]
    assert len(files_in(project.worktrees / "task-b")) == 6
