"""The worktree pool: atomic claims under a race, releases that never lose work, spawn --pool."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import ROOT, Project


def pool_json(project: Project) -> dict[str, dict[str, object]]:
    """`git agent-pool list --json`, slots by name."""
    data = json.loads(project.ok("pool", "list", "--json").stdout)
    assert data["version"] == 1
    return {s["slot"]: s for s in data["slots"]}


def claim_refs(project: Project) -> list[str]:
    return project.git("for-each-ref", "--format=%(refname)", "refs/agents/pool/").splitlines()


def start_together(project: Project, count: int, *args: str, verb: str = "pool") -> list[subprocess.Popen[str]]:
    """Start `count` `git agent-<verb>` processes that all begin at the same moment (a FIFO barrier).

    `{n}` in an argument becomes the process's number.
    """
    fifo = project.path.parent / "barrier"
    os.mkfifo(fifo)
    procs = [subprocess.Popen(["sh", "-c", f'read _ < "$0"; exec git agent-{verb} "$@"', str(fifo),
                               *(a.replace("{n}", str(n)) for a in args)],
                              cwd=project.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL) for n in range(count)]
    time.sleep(0.2)  # let every shell reach the barrier (one that arrives late still runs)
    with open(fifo, "w"):
        pass  # opening and closing the write end releases every reader at once
    return procs


def outcomes(procs: list[subprocess.Popen[str]]) -> list[tuple[int, str, str]]:
    results = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        results.append((p.returncode, out, err))
    return results


def slot_paths(project: Project, count: int) -> list[str]:
    return [str(project.worktrees / f"pool-{n}") for n in range(1, count + 1)]


def assert_free_at(project: Project, slot: Path, commit: str) -> None:
    """The slot is free, detached at `commit`, with nothing modified, untracked or ignored."""
    assert pool_json(project)[slot.name]["state"] == "free"
    assert project.git("rev-parse", "HEAD", cwd=slot) == commit
    assert project.git("symbolic-ref", "-q", "HEAD", cwd=slot, check=False) == ""
    assert project.git("status", "--porcelain", "--ignored", cwd=slot) == ""


def test_sixteen_racing_claimers_get_eight_distinct_slots(project: Project) -> None:
    project.ok("pool", "create", "8")
    results = outcomes(start_together(project, 16, "claim"))

    won = [out for code, out, _ in results if code == 0]
    lost = [(code, out, err) for code, out, err in results if code != 0]
    assert sorted(won) == sorted(p + "\n" for p in slot_paths(project, 8))
    assert len(lost) == 8
    for code, out, err in lost:
        assert (code, out) == (1, "")
        assert err == ("error: pool exhausted: all 8 slot(s) are claimed\n"
                       "hint: wait with --wait, free slots with `git agent-pool release`, "
                       "or add some with `git agent-pool create <n>`\n")
    assert len(claim_refs(project)) == 8
    assert {s["state"] for s in pool_json(project).values()} == {"claimed"}


def test_waiting_claimers_get_the_released_slots(project: Project) -> None:
    project.ok("pool", "create", "8")
    procs = start_together(project, 16, "claim", "--wait", "120")
    deadline = time.monotonic() + 120
    while sum(p.poll() is not None for p in procs) < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    first = [p for p in procs if p.poll() is not None]
    assert len(first) == 8
    first_paths = []
    for p in first:
        out, err = p.communicate()
        assert (p.returncode, err) == (0, "")
        first_paths.append(out.strip())
    assert sorted(first_paths) == sorted(slot_paths(project, 8))
    time.sleep(0.5)
    assert all(p.poll() is None for p in procs if p not in first)  # still waiting: nothing is free

    for path in first_paths:
        assert project.ok("pool", "release", path).stdout == f"Released {Path(path).name}\n"
    assert project.ok("pool", "release", "-q", "--stale").stdout == ""
    rest = outcomes([p for p in procs if p not in first])
    assert [(code, err) for code, _, err in rest] == [(0, "")] * 8
    assert sorted(out.strip() for _, out, _ in rest) == sorted(slot_paths(project, 8))
    assert len(claim_refs(project)) == 8


def test_claim_of_a_full_pool_fails_at_once_and_wait_gives_up(project: Project) -> None:
    project.ok("pool", "create", "1")
    project.ok("pool", "claim")
    full = project.agent("pool", "claim", "--wait", "0.3")
    assert (full.returncode, full.stdout) == (1, "")
    assert full.stderr.startswith("error: pool exhausted: all 1 slot(s) are claimed\n")
    project.ok("pool", "destroy", "--force")
    empty = project.agent("pool", "claim")
    assert empty.returncode == 1 and empty.stderr.startswith("error: pool exhausted: the pool is empty\n")


@pytest.mark.parametrize("kind", ["modified", "untracked", "commit"])
def test_release_refuses_unsaved_work_and_force_discards_it(project: Project, kind: str) -> None:
    project.ok("pool", "create", "1")
    slot = Path(project.ok("pool", "claim").stdout.strip())
    base = project.git("rev-parse", "main")
    if kind == "modified":
        (slot / "README").write_text("changed\n")
        held = "uncommitted or untracked work (README)"
    elif kind == "untracked":
        (slot / "notes.txt").write_text("mine\n")
        held = "uncommitted or untracked work (notes.txt)"
    else:
        project.commit_file("new.txt", "new\n", cwd=slot)
        held = "1 commit(s) that no branch contains"
    head = project.git("rev-parse", "HEAD", cwd=slot)
    before = project.snapshot()

    refused = project.agent("pool", "release", str(slot))
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == (f"error: not releasing pool-1: it holds {held}\n"
                              f"hint: commit it to a branch or stash it in {slot}, or pass --force to discard it\n")
    assert project.snapshot() == before
    assert project.git("rev-parse", "HEAD", cwd=slot) == head
    assert project.git("status", "--porcelain", cwd=slot) == {"modified": "M README", "untracked": "?? notes.txt",
                                                             "commit": ""}[kind]
    assert pool_json(project)["pool-1"]["state"] == "claimed"

    assert project.ok("pool", "release", "--force", "pool-1").stdout == "Released pool-1\n"
    assert_free_at(project, slot, base)
    assert claim_refs(project) == []


def test_release_keeps_branches_and_drops_ignored_files(project: Project) -> None:
    project.commit_file(".gitignore", "build/\n")
    project.ok("pool", "create", "1")
    slot = Path(project.ok("pool", "claim").stdout.strip())
    project.git("switch", "-q", "-c", "saved", cwd=slot)
    saved = project.commit_file("work.txt", "work\n", cwd=slot)
    (slot / "build").mkdir()
    (slot / "build" / "out.o").write_text("object\n")
    project.commit_file("more.txt", "main moved on\n")  # the pool's base moved meanwhile

    assert project.ok("pool", "release", "pool-1").stdout == "Released pool-1\n"
    assert_free_at(project, slot, project.git("rev-parse", "main"))
    assert project.git("rev-parse", "saved") == saved


def test_claim_task_registers_the_task_as_spawn_does(project: Project) -> None:
    project.ok("pool", "create", "2")
    claimed = project.ok("pool", "claim", "--task", "5", "--prompt", "Fix the mixer\nin detail")
    slot = project.worktrees / "pool-1"
    assert claimed.stdout == f"{slot}\n"
    project.ok("spawn", "6", "--no-agent", "--prompt", "Fix the mixer\nin detail")

    def keys(task_id: str) -> dict[str, str]:
        lines = project.git("config", "--get-regexp", f"^agent-task\\.{task_id}\\.").splitlines()
        return dict(line.split(" ", 1)[0].rsplit(".", 1)[1:] + [line.split(" ", 1)[1]] for line in lines)

    five, six = keys("5"), keys("6")
    assert set(five) == set(six) | {"slot"}
    assert (five["slot"], five["worktree"], five["branch"]) == ("pool-1", str(slot), "task-5")
    assert five["title"] == six["title"] == "Fix the mixer"
    assert five["basecommit"] == six["basecommit"] == project.git("rev-parse", "main")
    assert project.git("symbolic-ref", "--short", "HEAD", cwd=slot) == "task-5"
    prompt = project.ok("prompt", "5").stdout
    assert f"You are working in a git worktree at: {slot}" in prompt and "in detail" in prompt
    row = pool_json(project)["pool-1"]
    assert (row["state"], row["task"]) == ("claimed", "5")

    # a slot behind the base is brought up to it
    later = project.commit_file("later.txt", "later\n")
    assert project.ok("pool", "claim", "--task", "7").stdout == f"{project.worktrees / 'pool-2'}\n"
    assert project.git("rev-parse", "task-7", cwd=project.worktrees / "pool-2") == later
    assert (project.worktrees / "pool-2" / "later.txt").read_text() == "later\n"
    assert project.git("status", "--porcelain", cwd=project.worktrees / "pool-2") == ""
    assert project.ok("prompt", "7").stdout.count("task-7") >= 1
    project.ok("clean", "7")

    # a task id already taken is refused before any slot is claimed
    again = project.agent("pool", "claim", "--task", "5")
    assert again.returncode == 128 and again.stderr.startswith("fatal: task '5' already exists\n")
    assert pool_json(project)["pool-2"]["state"] == "free"
    # a slot that a task holds is released by cleaning the task
    refused = project.agent("pool", "release", "pool-1")
    assert refused.returncode == 1
    assert refused.stderr == ("error: pool slot pool-1 holds task 5\n"
                              "hint: remove the task with `git agent-clean 5`; that releases the slot\n")


def test_spawn_pool_and_clean_round_trip(project: Project, committing_agent: Path) -> None:
    project.ok("pool", "create", "2")
    spawned = project.ok("spawn", "48", "--pool", "--prompt", "add a file", "--agent", str(committing_agent))
    assert spawned.stdout.startswith("Spawned task 48 on branch task-48 in ../project-worktrees/pool-1 (agent pid ")
    pid = int(spawned.stdout.rsplit(" ", 1)[1].rstrip(")\n"))
    slot = project.worktrees / "pool-1"
    project.ok("wait", "48", "--timeout", "60")
    status = json.loads(project.ok("status", "--json").stdout)["tasks"][0]
    assert (status["slot"], status["worktree"], status["state"], status["ahead"]) == ("pool-1", str(slot),
                                                                                      "exited 0", 1)
    row = pool_json(project)["pool-1"]
    assert (row["state"], row["task"], row["pid"], row["alive"]) == ("claimed", "48", pid, False)

    refused = project.agent("clean", "48")  # not merged yet: the slot stays claimed, its branch kept
    assert refused.returncode == 1 and pool_json(project)["pool-1"]["state"] == "claimed"
    project.ok("merge", "48")
    assert project.ok("clean", "48").stdout == "Removed task 48\n"
    assert_free_at(project, slot, project.git("rev-parse", "main"))
    assert project.git("branch", "--format=%(refname:short)") == "main"
    assert claim_refs(project) == []
    assert project.git("config", "--get-regexp", "^agent-task\\.", check=False) == ""

    # the slot is reused by the next task
    project.ok("spawn", "49", "--pool", "--no-agent")
    assert project.git("symbolic-ref", "--short", "HEAD", cwd=slot) == "task-49"
    project.git("checkout", "-q", "--detach", cwd=slot)
    lost = project.commit_file("detached.txt", "on no branch\n", cwd=slot)
    (slot / "scratch.txt").write_text("unsaved\n")
    refused = project.agent("clean", "49")
    assert refused.returncode == 1
    assert refused.stderr == ("error: not removing task 49: its worktree has uncommitted or untracked work "
                              "(scratch.txt); its slot pool-1 has 1 commit(s) that no branch contains\n"
                              "hint: merge or save that work first, or pass --force to discard it\n")
    assert (slot / "scratch.txt").exists() and project.git("rev-parse", "HEAD", cwd=slot) == lost
    project.ok("clean", "--force", "49")
    assert_free_at(project, slot, project.git("rev-parse", "main"))


def test_spawn_pool_grows_the_pool_up_to_pool_max(project: Project) -> None:
    spawned = project.ok("spawn", "1", "--pool-max", "1", "--no-agent")
    assert spawned.stdout == "Prepared task 1 on branch task-1 in ../project-worktrees/pool-1\n"
    before = project.snapshot()
    full = project.agent("spawn", "2", "--pool-max", "1", "--no-agent")
    assert full.returncode == 1 and full.stderr.startswith("error: pool exhausted: all 1 slot(s) are claimed\n")
    assert project.snapshot() == before
    project.git("config", "agent.pool", "true")
    project.ok("spawn", "3", "--no-agent")
    assert sorted(pool_json(project)) == ["pool-1", "pool-2"]
    assert project.git("symbolic-ref", "--short", "HEAD", cwd=project.worktrees / "pool-2") == "task-3"
    project.ok("spawn", "4", "--no-pool", "--no-agent")
    assert (project.worktrees / "task-4").is_dir()


def test_racing_spawns_grow_the_pool_to_pool_max_and_no_further(project: Project) -> None:
    results = outcomes(start_together(project, 6, "t{n}", "--pool-max", "4", "--no-agent", verb="spawn"))
    assert sorted(code for code, _, _ in results) == [0, 0, 0, 0, 1, 1]
    for code, out, err in results:
        if code == 1:
            assert (out, err.splitlines()[0]) == ("", "error: pool exhausted: all 4 slot(s) are claimed")
    rows = pool_json(project)
    assert sorted(rows) == ["pool-1", "pool-2", "pool-3", "pool-4"]
    tasks = json.loads(project.ok("status", "--json").stdout)["tasks"]
    assert sorted(t["slot"] for t in tasks) == sorted(rows)  # one task per slot, none shared
    for t in tasks:
        assert rows[t["slot"]]["task"] == t["id"]
        assert project.git("symbolic-ref", "--short", "HEAD", cwd=Path(t["worktree"])) == f"task-{t['id']}"


def test_racing_clone_spawns_each_take_a_slot_or_grow_the_pool(project: Project) -> None:
    """Eight spawns --pool --isolation=clone at once on a pool of four: four clones are made from
    the slots (which leave the pool), four from slots the pool grew; every clone is whole and
    clean on its own branch, and nothing is left behind: no slot, claim, worktree or half-made clone."""
    project.ok("pool", "create", "4")
    results = outcomes(start_together(project, 8, "c{n}", "--pool", "--isolation=clone", "--no-agent",
                                      verb="spawn"))
    assert [code for code, _, _ in results] == [0] * 8, results
    base = project.git("rev-parse", "main")
    for n in range(8):
        clone = project.worktrees / f"task-c{n}"
        assert (clone / ".git").is_dir() and (clone / "README").read_text() == "readme\n"
        assert project.git("symbolic-ref", "HEAD", cwd=clone) == f"refs/heads/task-c{n}"
        assert project.git("status", "--porcelain", "--ignored", cwd=clone) == ""
        assert project.git("rev-parse", f"task-c{n}") == base
    assert sorted(p.name for p in project.worktrees.iterdir()) == sorted(f"task-c{n}" for n in range(8))
    assert pool_json(project) == {} and claim_refs(project) == []
    assert project.git("worktree", "list", "--porcelain").count("worktree ") == 1


def test_claim_blob_round_trip_and_damaged_claims() -> None:
    from git_agents.pool.slots import Claim

    held = Claim("pool-3", "abc", task="48", pid="123", pid_start="456", claimed_at="2026-01-01T00:00:00+00:00",
                 host="box", commit="f" * 40)
    back = Claim.parse("pool-3", "abc", held.payload())
    assert back == held and back.nonce == held.nonce and len(held.nonce) == 16
    assert '"version": 1' in held.payload()
    for text in ("", "not json", '{"version": 2, "task": "x"}', "[1, 2]"):
        assert Claim.parse("pool-1", "def", text) == Claim("pool-1", "def", nonce="")


def test_killed_claimer_is_stale_and_release_stale_frees_it(project: Project) -> None:
    project.ok("pool", "create", "3")
    helpers = []
    for _ in range(2):  # each claims through git, then lives on as the claim's owner
        helper = subprocess.Popen(["sh", "-c", "git agent-pool claim && exec sleep 600"], cwd=project.path,
                                  stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        assert helper.stdout is not None
        helpers.append((helper, Path(helper.stdout.readline().strip())))
    mine = Path(project.ok("pool", "claim", "--pid", str(os.getpid())).stdout.strip())
    (helpers[1][1] / "unsaved.txt").write_text("keep me\n")
    rows = pool_json(project)
    for helper, path in helpers:
        assert (rows[path.name]["state"], rows[path.name]["pid"], rows[path.name]["alive"]) == \
            ("claimed", helper.pid, True)

    for helper, _ in helpers:
        helper.send_signal(signal.SIGKILL)
        helper.wait()
    rows = pool_json(project)
    assert [(rows[p.name]["state"], rows[p.name]["alive"]) for _, p in helpers] == [("stale", False)] * 2
    assert (rows[mine.name]["state"], rows[mine.name]["alive"]) == ("claimed", True)
    assert "(ended)" in project.ok("pool", "list").stdout

    freed = project.agent("pool", "release", "--stale")
    assert freed.returncode == 1
    assert freed.stdout == f"Released {helpers[0][1].name}\n"
    assert freed.stderr == (f"error: not releasing {helpers[1][1].name}: it holds uncommitted or untracked work "
                            "(unsaved.txt)\n")
    rows = pool_json(project)
    assert [rows[p.name]["state"] for _, p in helpers] + [rows[mine.name]["state"]] == ["free", "stale", "claimed"]
    assert (helpers[1][1] / "unsaved.txt").read_text() == "keep me\n"


def test_create_tops_up_and_destroy_spares_claimed_slots(project: Project) -> None:
    assert project.ok("pool", "create", "2").stdout == "Created pool-1, pool-2 in ../project-worktrees\n"
    slot = Path(project.ok("pool", "claim").stdout.strip())
    (slot / "mine.txt").write_text("in use\n")
    assert project.ok("pool", "create", "3").stdout == "Created pool-3 in ../project-worktrees\n"
    assert project.ok("pool", "create", "3").stdout == "The pool already has slots pool-1 ... pool-3\n"
    assert (slot / "mine.txt").read_text() == "in use\n"

    destroyed = project.agent("pool", "destroy")
    assert destroyed.returncode == 1
    assert destroyed.stdout == "Removed pool-2\nRemoved pool-3\n"
    assert destroyed.stderr == ("error: not removing pool-1: it is claimed\n"
                                "hint: release the slots first, or pass --force to remove them anyway\n")
    assert sorted(pool_json(project)) == ["pool-1"] and (slot / "mine.txt").exists()
    assert project.ok("pool", "destroy", "--force", "-v").stdout == f"Removed pool-1 ({slot})\n"
    assert pool_json(project) == {} and claim_refs(project) == [] and not slot.exists()
    assert project.git("worktree", "list", "--porcelain").count("worktree ") == 1


def test_create_with_base_keeps_free_slots_at_that_branch(project: Project) -> None:
    project.git("branch", "dev")
    project.commit_file("main-only.txt", "x\n")
    project.git("checkout", "-q", "dev")
    dev = project.commit_file("dev.txt", "dev\n")
    project.git("checkout", "-q", "main")
    project.ok("pool", "create", "1", "--base", "dev")
    slot = project.worktrees / "pool-1"
    assert project.git("rev-parse", "HEAD", cwd=slot) == dev
    assert json.loads(project.ok("pool", "list", "--json").stdout)["base"] == "dev"
    project.ok("pool", "claim")
    project.ok("pool", "release", str(slot))
    assert_free_at(project, slot, dev)


def test_usage_errors(project: Project) -> None:
    for args in (["release"], ["release", "--stale", "pool-1"], ["claim", "--title", "x"], ["create", "0"]):
        proc = project.agent("pool", *args)
        assert proc.returncode == 129, (args, proc.stderr)
    bad = project.agent("pool", "release", str(project.path))
    assert bad.returncode == 128
    assert bad.stderr.startswith(f"fatal: '{project.path}' is not a pool slot\n")


def test_claim_task_makes_the_slot_ready_and_clean_wipes_it(project: Project) -> None:
    project.commit_file(".gitignore", ".env\n")
    (project.path / ".env").write_text("SECRET=1\n")
    project.git("config", "agent.copy", ".env")
    project.git("config", "agent.setup", "echo set up > .env.setup-ran && cat .env >> .env.setup-ran")
    project.commit_file(".gitignore", ".env\n.env.setup-ran\n")
    project.ok("pool", "create", "1")
    slot = Path(project.ok("pool", "claim", "--task", "9").stdout.strip())
    assert (slot / ".env").read_text() == "SECRET=1\n"
    assert (slot / ".env.setup-ran").read_text() == "set up\nSECRET=1\n"
    assert project.git("config", "agent-task.9.port").isdigit()

    assert project.ok("clean", "9").stdout == "Removed task 9\n"
    assert not (slot / ".env").exists() and not (slot / ".env.setup-ran").exists()
    assert_free_at(project, slot, project.git("rev-parse", "main"))


def test_a_record_without_created_is_incomplete_and_clean_releases_its_slot(project: Project) -> None:
    """Issue 10 item 6: an older git-agents killed between two keys left `worktree` but no `slot`
    (and no `created`); status shows the record as incomplete and clean frees the pool slot
    instead of deleting it."""
    project.ok("pool", "create", "1")
    project.ok("pool", "claim", "--task", "5")
    slot = project.worktrees / "pool-1"
    for key in ("slot", "created", "promptHash"):
        project.git("config", "--unset", f"agent-task.5.{key}")
    status = json.loads(project.ok("status", "--json").stdout)["tasks"][0]
    assert (status["id"], status["state"], status["slot"]) == ("5", "incomplete", "")
    assert project.ok("status").stdout.splitlines()[1].split()[:2] == ["5", "incomplete"]
    assert project.ok("clean", "5").stdout == "Removed task 5\n"
    assert_free_at(project, slot, project.git("rev-parse", "main"))
    assert pool_json(project)["pool-1"]["state"] == "free"


def _git_calls(project: Project, tmp_path: Path, verb: str, *args: str) -> list[str]:
    """The git commands (`config -z --list`, ...) that one `git agent-<verb>` runs, in order (from its trace)."""
    trace = tmp_path / f"trace-{verb}-{args[0]}"
    project.ok(verb, *args, env={"GIT_AGENTS_TRACE": str(trace)})
    return [line.split(": git ", 1)[1].split(" (in ")[0] for line in trace.read_text().splitlines()]


def _words(calls: list[str], count: int = 2) -> list[str]:
    return [" ".join(call.split(" ")[:count]) for call in calls]


def test_claim_task_and_spawn_run_exactly_these_git_calls(project: Project, tmp_path: Path) -> None:
    """One more git process on these paths fails here (benchmarks/git_calls.py counts the same):
    the repository, the configuration (read once: agent.isolation first), the base (one
    rev-parse), the slots and the new branch (one for-each-ref; the slots' worktrees are read from
    their files), the blobs, the claim with the branch and the lease's hold, HEAD, the port
    lease. No `git version`: the first command of
    the test cached it (core/git.py)."""
    project.ok("pool", "create", "1")
    claim = _git_calls(project, tmp_path, "pool", "claim", "--task", "1", "--prompt", "do it")
    assert _words(claim) == [
        "rev-parse --path-format=absolute", "config -z", "rev-parse HEAD^{commit}",
        "for-each-ref --format=%(objectname)",
        "hash-object -w",  # the claim's blob and the port lease's
        "update-ref -m",  # the claim, the task's branch and the lease's hold: one transaction
        "symbolic-ref -m",  # HEAD on the branch
        "for-each-ref --format=%(objectname)", "update-ref --stdin",  # the port lease
    ]
    assert claim[3].endswith("refs/agents/pool/ refs/heads/task-1")
    assert claim[4] == "hash-object -w --no-filters --stdin-paths"
    assert claim[5].endswith(" --stdin") and claim[7].endswith("refs/agents/ports/ refs/agents/port-holds/1")
    spawn = _git_calls(project, tmp_path, "spawn", "2", "--prompt", "do it", "--agent", "true")
    assert _words(spawn) == [
        "rev-parse --path-format=absolute", "config -z", "rev-parse HEAD^{commit}",
        "show-ref --verify", "show-ref --verify", "worktree add", "reset --hard",
        "for-each-ref --format=%(objectname)", "hash-object -w", "update-ref refs/agents/port-holds/2",
        "update-ref --stdin", "var GIT_AUTHOR_IDENT", "var GIT_COMMITTER_IDENT",
    ]


def test_claim_task_imports_nothing_that_starts_or_watches_agents(project: Project) -> None:
    """`pool claim --task` starts no agent: the modules that launch, guard and seal one are not
    imported (its time is nearly all Python's start and imports; issue 22, goal 6)."""
    project.ok("pool", "create", "1")
    code = ("import sys; from git_agents.cli.dispatch import main; "
            "code = main('pool', ['claim', '--task', '1', '--prompt', 'do it']); "
            "print(sorted(m for m in sys.modules if m.startswith('git_agents.tasks.')), code)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=project.path, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    path, modules = proc.stdout.split("\n", 1)
    assert path == str(project.worktrees / "pool-1")
    assert modules == ("['git_agents.tasks.ids', 'git_agents.tasks.isolation', 'git_agents.tasks.ports', "
                       "'git_agents.tasks.prepare', 'git_agents.tasks.prompt', 'git_agents.tasks.selection', "
                       "'git_agents.tasks.store'] 0\n")


def test_slots_read_from_files_are_the_slots_git_lists(project: Project) -> None:
    """A claim reads the slots' worktrees from their files (no `git worktree list`): the same
    slots, paths, detached heads and states as git's listing, for free, claimed (on a branch),
    missing (directory gone), locked and unlocked slots."""
    from git_agents.core.repo import Repo
    from git_agents.core.worktrees import linked_worktrees, list_worktrees

    project.ok("pool", "create", "4")
    project.ok("pool", "claim", "--task", "1", "--prompt", "do it")
    project.git("worktree", "unlock", str(project.worktrees / "pool-3"))  # git-agents locks its own
    project.git("worktree", "unlock", str(project.worktrees / "pool-4"))
    subprocess.run(["rm", "-rf", str(project.worktrees / "pool-4")], check=True)
    repo = Repo.discover(str(project.path))
    from_git = [w for w in list_worktrees(repo) if w.path != str(project.path)]
    from_files = linked_worktrees(repo)
    assert [(w.path, w.branch, w.locked, w.prunable) for w in from_files] == \
        [(w.path, w.branch, w.locked, w.prunable) for w in from_git]
    assert [w.head for w in from_files] == [w.head if not w.branch else "" for w in from_git]
    assert [(w.branch, w.locked, w.prunable) for w in from_files] == \
        [("task-1", True, False), ("", True, False), ("", False, False), ("", False, True)]
    assert [s["state"] for s in pool_json(project).values()] == ["claimed", "free", "free", "missing"]
    assert project.ok("pool", "claim").stdout == f"{project.worktrees / 'pool-2'}\n"


def test_a_slot_reset_between_listing_and_claiming_is_claimed_at_its_real_head(project: Project) -> None:
    """The claim records the slot's HEAD as it is once the claim is won (read from the slot's files),
    not as the listing saw it: here the slot moves to a newer base just before the claim is made,
    as when another claimer took it and released it meanwhile."""
    from git_agents.core import git as gateway
    from git_agents.core.repo import Repo
    from git_agents.pool import slots as pool

    project.ok("pool", "create", "1")
    slot = project.worktrees / "pool-1"
    newer = project.commit_file("later.txt", "later\n")
    moved: list[str] = []

    def reset_first(argv: list[str]) -> None:
        if argv[:3] == ["update-ref", "-m", "git-agents: claim pool-1"] and not moved:
            subprocess.run(["git", "checkout", "-q", "--detach", newer], cwd=slot, check=True)
            moved.append(newer)

    repo = Repo.discover(str(project.path))
    gateway.add_call_hook(reset_first)
    try:
        held = pool.claim(repo, task="", owner=(os.getpid(), ""))
    finally:
        gateway.CALL_HOOKS.remove(reset_first)
    assert moved and held.commit == newer
    assert json.loads(project.git("cat-file", "-p", "refs/agents/pool/pool-1"))["commit"] == newer
    project.ok("pool", "release", "pool-1")


def test_eight_racing_task_claims_on_four_slots_leave_nothing_of_the_losers(project: Project) -> None:
    """Each claim of a task makes its claim, branch and port lease's hold in one transaction: the
    four winners hold distinct slots on their own branches with distinct port blocks; the four
    losers leave no branch, no hold, no lease and no task."""
    project.ok("pool", "create", "4")
    results = outcomes(start_together(project, 8, "claim", "--task", "t{n}", "--prompt", "p"))
    won = {out.strip(): n for n, (code, out, _) in enumerate(results) if code == 0}
    assert sorted(won) == slot_paths(project, 4)
    for code, out, err in results:
        if code != 0:
            assert (code, out, err.splitlines()[0]) == (1, "", "error: pool exhausted: all 4 slot(s) are claimed")
    refs = project.git("for-each-ref", "--format=%(refname)").split()
    assert sorted(r for r in refs if r.startswith("refs/heads/task-")) == sorted(f"refs/heads/task-t{n}"
                                                                                 for n in won.values())
    assert not [r for r in refs if r.startswith("refs/agents/port-holds/")]
    assert len([r for r in refs if r.startswith("refs/agents/ports/")]) == 4
    tasks = json.loads(project.ok("status", "--json").stdout)["tasks"]
    assert sorted(t["id"] for t in tasks) == sorted(f"t{n}" for n in won.values())
    assert len({project.git("config", f"agent-task.{t['id']}.port") for t in tasks}) == 4
    rows = pool_json(project)
    for path, n in won.items():
        assert rows[Path(path).name]["task"] == f"t{n}"
        assert project.git("symbolic-ref", "--short", "HEAD", cwd=Path(path)) == f"task-t{n}"


def test_a_branch_made_between_listing_and_claiming_is_refused_and_nothing_is_claimed(project: Project) -> None:
    """The branch is created with the claim only if it does not exist: one made by someone else
    after the slots were listed fails the whole transaction (no claim, no hold) with the same
    refusal as a branch seen by the listing."""
    from git_agents.core import git as gateway
    from git_agents.core.errors import AgentError
    from git_agents.core.repo import Repo
    from git_agents.pool import slots as pool

    project.ok("pool", "create", "1")
    main = project.git("rev-parse", "main")

    def branch_first(argv: list[str]) -> None:
        if argv[:1] == ["update-ref"] and argv[-1] == "--stdin":
            project.git("branch", "task-9", main)

    repo = Repo.discover(str(project.path))
    gateway.add_call_hook(branch_first)
    try:
        with pytest.raises(AgentError) as refused:
            pool.claim(repo, task="9", owner=pool.TASK_OWNER, base_commit=main, branch="task-9", make_branch=True,
                       hold=("refs/agents/port-holds/9", "task 9\n"))
    finally:
        gateway.CALL_HOOKS.remove(branch_first)
    assert refused.value.message == "a branch named 'task-9' already exists"
    assert project.git("for-each-ref", "--format=%(refname)", "refs/agents/").split() == []
    assert pool_json(project)["pool-1"]["state"] == "free"


def test_a_hold_swept_before_the_claims_lease_is_made_again(project: Project,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A claim makes its port lease's hold before the task is recorded; a clean's sweep that read
    the tasks in between takes it back. The lease then makes it again instead of failing."""
    from git_agents.cli.dispatch import main
    from git_agents.core import git as gateway

    project.ok("pool", "create", "1")
    swept: list[str] = []

    def sweep_first(argv: list[str]) -> None:
        if argv == ["update-ref", "--stdin"] and not swept:  # the lease's transaction
            swept.append(project.git("rev-parse", "refs/agents/port-holds/1"))
            project.git("update-ref", "-d", "refs/agents/port-holds/1")

    monkeypatch.chdir(project.path)
    gateway.add_call_hook(sweep_first)
    try:
        assert main("pool", ["claim", "--task", "1", "--prompt", "p"]) == 0
    finally:
        gateway.CALL_HOOKS.remove(sweep_first)
    assert swept
    assert project.git("config", "agent-task.1.port") == "20000"
    assert project.git("for-each-ref", "--format=%(refname)", "refs/agents/ports/", "refs/agents/port-holds/") == \
        "refs/agents/ports/20000"
