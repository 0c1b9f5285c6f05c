"""Big repositories: sparse task worktrees, submodules without network, disk use, clean --stale."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from .conftest import Project, run, write_script


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


def make_lib(tmp_path: Path) -> Path:
    lib = tmp_path / "lib"
    lib.mkdir()
    run(["git", "init", "-q"], lib, check=True)
    (lib / "lib.txt").write_text("lib\n")
    run(["git", "add", "."], lib, check=True)
    run(["git", "commit", "-q", "-m", "lib"], lib, check=True)
    return lib


UNREACHABLE = "git://git-agents-test.invalid/lib.git"


def test_uninitialised_unreachable_submodule_is_left_alone(project: Project, tmp_path: Path) -> None:
    lib = make_lib(tmp_path)
    sha = run(["git", "rev-parse", "HEAD"], lib, check=True).stdout.strip()
    (project.path / ".gitmodules").write_text(f'[submodule "lib"]\n\tpath = lib\n\turl = {UNREACHABLE}\n')
    project.git("update-index", "--add", "--cacheinfo", f"160000,{sha},lib")
    project.git("add", ".gitmodules")
    project.git("commit", "-q", "-m", "an old submodule nobody initialises")
    spawned = project.ok("spawn", "1", "--prompt", "x", "--agent", "true")
    assert spawned.stderr == ""
    assert os.listdir(project.worktrees / "task-1" / "lib") == []
    project.ok("wait", "1", "--timeout", "60")
    assert "warning" not in (project.path / ".git/agents/tasks/1/agent.log").read_text()


def test_initialised_submodule_is_cloned_from_the_main_worktree_without_network(
        project: Project, tmp_path: Path) -> None:
    lib = make_lib(tmp_path)
    project.git("-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "lib")
    project.git("commit", "-q", "-m", "add lib")
    # the URL now names a host that does not exist: only a local clone can succeed
    project.git("config", "--file", ".gitmodules", "submodule.lib.url", UNREACHABLE)
    project.git("commit", "-q", "-am", "lib moved")
    project.git("submodule", "sync", "-q")
    run(["rm", "-rf", str(lib)], tmp_path, check=True)
    project.ok("spawn", "1", "--prompt", "x")
    sub = project.worktrees / "task-1" / "lib"
    assert (sub / "lib.txt").read_text() == "lib\n"
    assert project.git("remote", "get-url", "origin", cwd=sub) == UNREACHABLE
    assert project.git("status", "--porcelain", cwd=project.worktrees / "task-1") == ""


def test_a_submodule_that_fails_is_a_warning_unless_required(project: Project, tmp_path: Path) -> None:
    lib = make_lib(tmp_path)
    project.git("-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "lib")
    project.git("commit", "-q", "-m", "add lib")
    # the branch records a submodule commit the main worktree's copy does not have
    project.git("update-index", "--cacheinfo", f"160000,{'1' * 40},lib")
    project.git("commit", "-q", "-m", "point lib at a missing commit")
    spawned = project.ok("spawn", "1", "--prompt", "x", "--agent", "true")
    assert spawned.stdout.startswith("Spawned task 1 ")
    project.ok("wait", "1", "--timeout", "60")
    log = (project.path / ".git/agents/tasks/1/agent.log").read_text()
    assert log.startswith("git-agents: warning: submodule initialisation failed: lib (left uninitialised; "
                          "agent.submodules = required would fail the task)\n")
    project.git("config", "agent.submodules", "required")
    failed = project.agent("spawn", "2", "--prompt", "x", "--agent", "true")
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: task 2: submodule initialisation failed: lib; the agent was not started\n")

    # a pool claim makes its port lease's hold with the claim; a setup that fails before the
    # lease drops it again (the slot and the branch are kept for the task, as the hint says)
    project.ok("pool", "create", "1")
    claimed = project.agent("pool", "claim", "--task", "3", "--prompt", "x")
    assert claimed.returncode == 1
    assert claimed.stderr.startswith("error: task 3: submodule initialisation failed: lib")
    refs = project.git("for-each-ref", "--format=%(refname)", "refs/agents/", "refs/heads/task-3").split()
    assert "refs/heads/task-3" in refs and "refs/agents/pool/pool-1" in refs
    assert "refs/agents/port-holds/3" not in refs


def age(root: Path, days: float) -> None:
    """Make everything in a worktree (and its index) look untouched for `days` days."""
    then = time.time() - days * 86400
    gitdir = Path((root / ".git").read_text().split(": ", 1)[1].strip())
    for top, dirs, names in os.walk(root):
        for name in names + dirs:
            os.utime(os.path.join(top, name), (then, then), follow_symlinks=False)
    os.utime(root, (then, then))
    os.utime(gitdir / "index", (then, then))


def test_status_shows_worktree_sizes_only_when_asked(project: Project) -> None:
    layout(project)
    (project.path / "big.bin").write_bytes(b"x" * 200_000)
    project.git("add", ".")
    project.git("commit", "-q", "-m", "big")
    project.ok("spawn", "full", "--prompt", "x")
    project.ok("spawn", "thin", "--prompt", "x", "--sparse", "docs")
    (project.worktrees / "task-thin" / "docs" / "more.bin").write_bytes(b"y" * 100_000)
    rows = {r["id"]: r for r in json.loads(project.ok("status", "--json").stdout)["tasks"]}
    assert rows["full"]["disk_bytes"] >= 200_000 + 6 * 4  # big.bin and six small files
    assert 300_000 <= rows["thin"]["disk_bytes"] < rows["full"]["disk_bytes"] + 100_000
    plain = project.ok("status").stdout
    assert "SIZE" not in plain.splitlines()[0]
    verbose = project.ok("status", "-v").stdout.splitlines()
    assert verbose[0].split()[10] == "SIZE"
    sizes = [line.split()[11] for line in verbose[1:]]  # (the state is two words: "not started")
    assert all(re.fullmatch(r"[1-9][0-9]*K", size) for size in sizes), sizes


def test_clean_stale_never_removes_unmerged_or_uncommitted_work(project: Project) -> None:
    for task in ("merged", "idle", "unmerged", "dirty", "held", "fresh"):
        project.ok("spawn", task, "--prompt", "x")
    wt = {t: project.worktrees / f"task-{t}" for t in ("merged", "idle", "unmerged", "dirty", "held", "fresh")}
    project.commit_file("m.txt", "m\n", cwd=wt["merged"])
    project.ok("merge", "merged")
    unmerged = project.commit_file("u.txt", "u\n", cwd=wt["unmerged"])
    held = project.commit_file("h.txt", "h\n", cwd=wt["held"])
    project.git("branch", "keep", held)  # another branch holds task held's commit
    (wt["dirty"] / "notes.txt").write_text("unsaved\n")
    for task in ("idle", "unmerged", "dirty", "held"):
        age(wt[task], 10)
    before = project.snapshot()

    dry = project.agent("clean", "--stale", "--dry-run")
    assert (dry.returncode, dry.stdout) == (1, "Would remove task held\nWould remove task idle\n"
                                               "Would remove task merged\n")
    assert dry.stderr == ("error: not removing task dirty: its worktree has uncommitted or untracked work "
                          "(notes.txt)\nhint: merge or save that work first, or pass --force to discard it\n")
    assert project.snapshot() == before
    assert project.agent("clean", "--stale=30", "-n").stdout == "Would remove task merged\n"

    cleaned = project.agent("clean", "--stale")
    assert (cleaned.returncode, cleaned.stdout) == (1, "Removed task held\nRemoved task idle\nRemoved task merged\n")
    left = json.loads(project.ok("status", "--json").stdout)["tasks"]
    assert [t["id"] for t in left] == ["dirty", "fresh", "unmerged"]
    assert (wt["dirty"] / "notes.txt").read_text() == "unsaved\n"
    assert project.git("rev-parse", "task-unmerged") == unmerged
    assert project.git("rev-parse", "keep") == held and not wt["held"].exists()


def test_pool_shrink_removes_free_slots_from_the_top(project: Project) -> None:
    project.ok("pool", "create", "4")
    claimed = Path(project.ok("pool", "claim").stdout.strip())  # pool-1
    assert project.ok("pool", "shrink", "2").stdout == "Removed pool-4\nRemoved pool-3\n"
    assert project.ok("pool", "shrink", "2").stdout == "The pool already has 2 slot(s)\n"
    assert project.ok("pool", "shrink", "0").stdout == ("Removed pool-2\n"
                                                        "The pool keeps 1 slot(s): the others are claimed\n")
    assert claimed.is_dir() and project.git("worktree", "list", "--porcelain").count("worktree ") == 2


def test_merge_skips_a_task_edited_after_its_agent_exited(project: Project, committing_agent: Path) -> None:
    layout(project)
    project.ok("spawn", "1", "2", "--prompt", "x", "--agent", str(committing_agent), "--sparse", "docs")
    project.ok("wait", "--all", "--timeout", "60")
    (project.worktrees / "task-1" / "docs" / "guide.md").write_text("edited after the agent exited\n")
    merged = project.agent("merge", "--all")
    assert merged.returncode == 1
    assert "Merged task 2 (" in merged.stdout
    assert project.git("log", "-1", "--format=%s", "main") == "feat: Task 2 - x"
    assert "file-1.txt" not in project.git("ls-tree", "--name-only", "main")
    assert (project.worktrees / "task-1" / "docs" / "guide.md").read_text() == "edited after the agent exited\n"


def test_submodule_recurse_with_submodules_registered_but_not_cloned(project: Project, tmp_path: Path) -> None:
    """Issue 24: with submodule.recurse=true and a submodule registered (initialised, URL
    unreachable) but not cloned, spawn failed in its checkout, one failing id stopped the whole
    call, and the branch and worktree were left behind unseen by status. Plain `git worktree add`
    works: so does spawn now, and an id that fails (here task 2, whose branch cannot be made
    beside an existing task-2/x) leaves nothing and does not stop the others."""
    lib = make_lib(tmp_path)
    project.git("-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "lib")
    project.git("commit", "-q", "-m", "add lib")
    clone = Project(tmp_path / "clone")
    run(["git", "clone", "-q", str(project.path), str(clone.path)], tmp_path, check=True)
    clone.git("config", "submodule.recurse", "true")
    clone.git("config", "submodule.lib.url", UNREACHABLE)  # registered, never cloned: no .git/modules/lib
    clone.git("branch", "task-2/x")
    plain = run(["git", "worktree", "add", "-q", "-b", "plain", str(tmp_path / "plain")], clone.path)
    assert plain.returncode == 0, plain.stderr
    before = clone.snapshot()

    proc = clone.agent("spawn", "1", "2", "3", "--prompt", "x", "--no-agent")
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.splitlines() == [f"Prepared task {n} on branch task-{n} in ../clone-worktrees/task-{n}"
                                        for n in (1, 3)]
    assert proc.stderr.startswith("error: task 2: cannot lock ref 'refs/heads/task-2': "), proc.stderr
    assert "Traceback" not in proc.stderr
    for n in (1, 3):
        assert files_in(clone.worktrees / f"task-{n}") == [".gitmodules", "README", "shared.txt"]
        assert os.listdir(clone.worktrees / f"task-{n}" / "lib") == []
        assert clone.git("status", "--porcelain", cwd=clone.worktrees / f"task-{n}") == ""
    assert not (clone.worktrees / "task-2").exists()
    assert clone.git("branch", "--list", "task-2") == ""
    status = json.loads(clone.ok("status", "--json").stdout)
    assert [t["id"] for t in status["tasks"]] == ["1", "3"], status
    clone.ok("clean", "1", "3")
    assert clone.snapshot() == before
    clone.ok("spawn", "4", "--pool", "--prompt", "x", "--no-agent")  # a pool slot: made, switched, released
    assert os.listdir(clone.worktrees / "pool-1" / "lib") == []
    clone.ok("clean", "4")
    assert clone.git("status", "--porcelain", cwd=clone.worktrees / "pool-1") == ""
