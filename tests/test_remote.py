"""Scale-out through a shared remote: queue, workers on several clones, merge --remote.

The remote is a bare repository served by a real `git daemon` on 127.0.0.1 (git:// protocol,
receive-pack enabled), and for the core case also a plain file:// URL. Each "machine" is a
separate clone; workers are real `git-agent-worker` processes; agents are shell scripts that
record every run in a shared file, so "exactly once" is counted, not assumed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import Project, run, write_script


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def bare(project: Project, tmp_path: Path) -> Path:
    """A bare copy of `project` (branch main) under tmp_path/srv."""
    srv = tmp_path / "srv"
    srv.mkdir()
    run(["git", "clone", "-q", "--bare", str(project.path), str(srv / "remote.git")], tmp_path, check=True)
    return srv / "remote.git"


@pytest.fixture
def daemon_url(bare: Path):
    """git:// URL of `bare`, served by git daemon on loopback for the test's duration."""
    port = _free_port()
    proc = subprocess.Popen(["git", "daemon", "--reuseaddr", f"--base-path={bare.parent}", "--export-all",
                             "--enable=receive-pack", "--listen=127.0.0.1", f"--port={port}", "--informative-errors",
                             str(bare.parent)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"git://127.0.0.1:{port}/{bare.name}"
    deadline = time.monotonic() + 10
    while run(["git", "ls-remote", url], bare.parent).returncode != 0:
        assert time.monotonic() < deadline, "git daemon did not start"
        time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(params=["daemon", "file"])
def remote_url(request: pytest.FixtureRequest, bare: Path) -> str:
    """The core cases run over git:// and over file://."""
    if request.param == "file":
        return f"file://{bare}"
    return request.getfixturevalue("daemon_url")


def clone(tmp_path: Path, url: str, name: str, *, trust: bool = True, verify: bool | None = False) -> Project:
    """A clone ("a machine") of the remote, with origin pointing at it.

    With `trust` its workers run the agent commands the queued tasks name (the tests' scripts).
    With `verify` False it trusts unsigned results (agent.verifyResults=false, the explicit choice:
    the tests' workers have no signing keys); None leaves the default (verify).
    """
    run(["git", "clone", "-q", url, str(tmp_path / name)], tmp_path, check=True)
    if trust:
        run(["git", "config", "agent.trustQueueCommands", "true"], tmp_path / name, check=True)
    if verify is not None:
        run(["git", "config", "agent.verifyResults", str(verify).lower()], tmp_path / name, check=True)
    return Project(tmp_path / name)


def sleeping_agent(tmp_path: Path, record: Path, sleep: str) -> Path:
    """An agent that records its run (task, worker clone), sleeps, and commits file-<task>.txt."""
    return write_script(tmp_path / "agent.sh", f"""
        echo "$GIT_AGENT_TASK $(basename "$(git rev-parse --git-common-dir | xargs dirname)")" >> {record}
        sleep {sleep}
        echo "work of task $GIT_AGENT_TASK" > "file-$GIT_AGENT_TASK.txt"
        git add "file-$GIT_AGENT_TASK.txt"
        git commit -q -m "task $GIT_AGENT_TASK: add file-$GIT_AGENT_TASK.txt"
    """)


def taskfile(path: Path, ids: list[str], agent: Path | str) -> Path:
    """A TOML task file with one task per id, all run by `agent`."""
    body = [f'agent = "{agent}"', 'base = "main"', ""]
    for task_id in ids:
        body += ["[[task]]", f'id = "{task_id}"', f'title = "Task number {task_id}"',
                 f'prompt = "Write file-{task_id}.txt"', ""]
    path.write_text("\n".join(body))
    return path


def start_worker(where: Project, *args: str) -> subprocess.Popen[str]:
    """A `git-agent-worker` process (started directly, so its pid is the worker's own)."""
    return subprocess.Popen(["git-agent-worker", *args], cwd=where.path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    """Wait for a worker, require exit 0, return its output."""
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def wait_until(condition: Callable[[], bool], worker: subprocess.Popen[str], timeout: float = 30) -> None:
    """Poll `condition` while the worker lives (its agent is doing something the test waits for)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert worker.poll() is None, f"the worker exited early:\n{worker.communicate()[0]}"
        assert time.monotonic() < deadline, "timed out waiting for the agent"
        time.sleep(0.05)


def remote_refs(where: Project, prefix: str) -> dict[str, str]:
    """The remote's refs under `prefix` (ls-remote: what the server holds now)."""
    out = where.git("ls-remote", "origin", f"{prefix}*")
    return {line.split("\t")[1]: line.split("\t")[0] for line in out.splitlines()}


@pytest.mark.parametrize("count", [pytest.param(9, id="9-tasks"),
                                   pytest.param(30, id="30-tasks", marks=pytest.mark.slow)])
def test_three_workers_run_every_task_once_and_merge_all(tmp_path: Path, remote_url: str, count: int) -> None:
    if count == 30 and remote_url.startswith("file:"):
        pytest.skip("the 30-task run is over git:// only")
    ids = [str(i) for i in range(1, count + 1)]
    record = tmp_path / "record.txt"
    agent = sleeping_agent(tmp_path, record, '"0.$(( $(date +%N | sed "s/^0*//;s/^$/0/") % 3 + 1 ))"')
    publisher = clone(tmp_path, remote_url, "publisher")
    pushed = publisher.ok("queue", "push", str(taskfile(tmp_path / "tasks.toml", ids, agent)))
    assert pushed.stdout == f"Queued {count} task(s) on origin: {', '.join(ids)}\n"

    machines = [clone(tmp_path, remote_url, f"machine{n}") for n in (1, 2, 3)]
    workers = [start_worker(m, "--once", "--poll", "0.2", "--lease", "30", "--name", m.path.name) for m in machines]
    outputs = [finish(w) for w in workers]

    runs = record.read_text().splitlines()
    assert sorted(line.split()[0] for line in runs) == sorted(ids), runs  # every task exactly once
    assert {line.split()[1] for line in runs} == {"machine1", "machine2", "machine3"}, outputs
    assert remote_refs(publisher, "refs/agents/claims/") == {}
    assert set(remote_refs(publisher, "refs/agents/results/")) == {f"refs/agents/results/{i}" for i in ids}

    merged = publisher.agent("merge", "--all", "--remote", "origin")
    assert merged.returncode == 0, merged.stderr
    assert merged.stdout.splitlines()[-1] == f"{count} merged, 0 not merged"
    main = publisher.git("ls-remote", "origin", "refs/heads/main").split()[0]
    assert publisher.git("rev-parse", "main") == main  # the local main was fast-forwarded too
    files = publisher.git("ls-tree", "--name-only", main).splitlines()
    assert sorted(f for f in files if f.startswith("file-")) == sorted(f"file-{i}.txt" for i in ids)
    subjects = publisher.git("log", "--first-parent", "--format=%s", f"-{count}", main).splitlines()
    assert sorted(subjects) == sorted(f"feat: Task {i} - Task number {i}" for i in ids)
    assert set(remote_refs(publisher, "refs/agents/merged/")) == {f"refs/agents/merged/{i}" for i in ids}

    # The notes travelled: a fresh clone that fetches refs/notes/agents sees who ran each task.
    viewer = clone(tmp_path, remote_url, "viewer")
    viewer.git("fetch", "-q", "origin", "refs/notes/agents:refs/notes/agents")
    note = viewer.git("notes", "--ref=agents", "show", main)
    assert "task: " in note and "worker: machine" in note and "exit: 0" in note

    listed = json.loads(viewer.ok("queue", "list", "--json").stdout)["tasks"]
    assert [(t["id"], t["state"]) for t in listed] == [(i, "merged") for i in ids]
    again = publisher.ok("merge", "--all", "--remote", "origin")
    assert again.stdout == "Nothing to merge.\n"


def test_a_killed_worker_is_taken_over_and_its_partial_work_not_merged(tmp_path: Path, daemon_url: str) -> None:
    record = tmp_path / "record.txt"
    first_run = tmp_path / "first-run"
    agent = write_script(tmp_path / "agent.sh", f"""
        echo "$GIT_AGENT_TASK $PWD" >> {record}
        if [ ! -e {first_run} ]; then
            touch {first_run}
            echo partial > "file-$GIT_AGENT_TASK.txt"; git add .; git commit -q -m "partial work"
            sleep 60
        fi
        echo "complete" > "file-$GIT_AGENT_TASK.txt"; git add .; git commit -q -m "complete work"
    """)
    publisher = clone(tmp_path, daemon_url, "publisher")
    publisher.ok("queue", "push", str(taskfile(tmp_path / "tasks.toml", ["7"], agent)))
    doomed, rescuer = clone(tmp_path, daemon_url, "doomed"), clone(tmp_path, daemon_url, "rescuer")

    worker = start_worker(doomed, "--lease", "1.5", "--poll", "0.2", "--name", "doomed")
    wait_until(lambda: doomed.git("log", "-1", "--format=%s", "task-7", check=False) == "partial work", worker)
    worker.kill()
    worker.wait()
    os.killpg(int(doomed.git("config", "agent-task.7.pid")), signal.SIGKILL)  # its orphaned agent, too
    claim = json.loads(publisher.ok("queue", "list", "--json").stdout)["tasks"][0]
    assert (claim["state"], claim["worker"]) == ("claimed", "doomed")

    out = finish(start_worker(rescuer, "--once", "--lease", "1.5", "--poll", "0.2", "--name", "rescuer"))
    assert "took over task 7 from doomed" in out
    assert len(record.read_text().splitlines()) == 2
    listed = json.loads(publisher.ok("queue", "list", "--json").stdout)["tasks"][0]
    assert (listed["state"], listed["worker"], listed["exit"]) == ("done", "rescuer", 0)

    publisher.ok("merge", "--all", "--remote", "origin")
    main = publisher.git("ls-remote", "origin", "refs/heads/main").split()[0]
    assert publisher.git("show", f"{main}:file-7.txt") == "complete"
    assert publisher.git("log", "--format=%s", main, "--grep=partial") == ""
    assert remote_refs(publisher, "refs/agents/claims/") == {}
    # The dead worker's partial branch stays in its own clone, unpublished.
    assert doomed.git("log", "-1", "--format=%s", "task-7") == "partial work"


def test_ten_workers_race_for_one_task_exactly_one_runs_it(tmp_path: Path, daemon_url: str) -> None:
    record = tmp_path / "record.txt"
    # The agent outlives the lease: only heartbeats keep the other nine from taking it over. (A 6 s lease:
    # ten workers at once on a loaded 2-core machine have taken 3 s between two heartbeats.)
    agent = sleeping_agent(tmp_path, record, "7")
    publisher = clone(tmp_path, daemon_url, "publisher")
    publisher.ok("queue", "push", str(taskfile(tmp_path / "tasks.toml", ["solo"], agent)))
    machines = [clone(tmp_path, daemon_url, f"m{n}") for n in range(10)]
    workers = [start_worker(m, "--once", "--lease", "6", "--poll", "0.3", "--name", m.path.name) for m in machines]
    outputs = [finish(w) for w in workers]
    assert len(record.read_text().splitlines()) == 1, record.read_text()
    assert sum("claimed task solo" in out for out in outputs) == 1, outputs
    assert not any("took over" in out for out in outputs), outputs
    assert remote_refs(publisher, "refs/agents/claims/") == {}


def test_queue_push_refuses_ids_already_queued(tmp_path: Path, daemon_url: str, committing_agent: Path) -> None:
    publisher = clone(tmp_path, daemon_url, "publisher")
    publisher.ok("queue", "push", str(taskfile(tmp_path / "a.toml", ["1", "2"], committing_agent)))
    before = remote_refs(publisher, "refs/agents/")
    again = publisher.agent("queue", "push", str(taskfile(tmp_path / "b.toml", ["2", "3"], committing_agent)))
    assert again.returncode == 128
    assert again.stderr == ("fatal: task id(s) already on origin: 2; nothing was published\n"
                            "hint: a task is published once: give new tasks new ids"
                            " (git agent-queue list shows them)\n")
    assert remote_refs(publisher, "refs/agents/") == before
    spec = json.loads(publisher.git("cat-file", "blob", f"{before['refs/agents/queue/1']}:spec.json"))
    assert spec == {"version": 1, "id": "1", "title": "Task number 1", "agent": str(committing_agent),
                    "base": "main", "published": spec["published"]}
    assert publisher.git("cat-file", "blob", f"{before['refs/agents/queue/1']}:prompt.md") == "Write file-1.txt"


def test_queue_list_shows_an_empty_then_a_queued_queue(tmp_path: Path, daemon_url: str, committing_agent: Path) -> None:
    publisher = clone(tmp_path, daemon_url, "publisher")
    assert publisher.ok("queue", "list").stdout == "The queue on origin is empty.\n"
    publisher.ok("queue", "push", str(taskfile(tmp_path / "a.toml", ["1", "2"], committing_agent)))
    lines = publisher.ok("queue", "list").stdout.splitlines()
    assert lines == ["ID  STATE   DETAIL  TITLE",
                     "1   queued          Task number 1",
                     "2   queued          Task number 2"]


def test_concurrent_remote_merges_merge_each_task_once(tmp_path: Path, daemon_url: str,
                                                       committing_agent: Path) -> None:
    ids = [str(i) for i in range(1, 7)]
    publisher = clone(tmp_path, daemon_url, "publisher")
    publisher.ok("queue", "push", str(taskfile(tmp_path / "a.toml", ids, committing_agent)))
    machine = clone(tmp_path, daemon_url, "machine")
    finish(start_worker(machine, "--once", "--jobs", "3", "--poll", "0.1", "--lease", "30"))
    mergers = [clone(tmp_path, daemon_url, f"merger{n}") for n in range(3)]
    procs = [subprocess.Popen(["git", "agent-merge", "--all", "--remote", "origin"], cwd=m.path, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for m in mergers]
    results = [p.communicate(timeout=60) + (p.returncode,) for p in procs]
    assert all(code == 0 for _, _, code in results), results
    # (Two mergers may both print "Merged": merges made within the same second are the same commits,
    # so the slower one's push finds the remote already where it wanted it. The history tells.)
    publisher.git("fetch", "-q", "origin")
    main = publisher.git("rev-parse", "origin/main")
    subjects = publisher.git("log", "--first-parent", "--format=%s", main).splitlines()
    assert sorted(subjects[:-1]) == sorted(f"feat: Task {i} - Task number {i}" for i in ids)
    assert subjects[-1] == "initial"


def test_sigterm_finishes_the_task_in_hand_and_takes_no_more(tmp_path: Path, daemon_url: str) -> None:
    record, go = tmp_path / "record.txt", tmp_path / "go"
    agent = write_script(tmp_path / "agent.sh", f"""
        echo "$GIT_AGENT_TASK" >> {record}
        while [ ! -e {go} ]; do sleep 0.05; done
        echo done > "file-$GIT_AGENT_TASK.txt"; git add .; git commit -q -m "task $GIT_AGENT_TASK"
    """)
    publisher = clone(tmp_path, daemon_url, "publisher")
    publisher.ok("queue", "push", str(taskfile(tmp_path / "tasks.toml", ["1", "2"], agent)))
    machine = clone(tmp_path, daemon_url, "machine")
    worker = start_worker(machine, "--poll", "0.1", "--lease", "30", "--name", "w")
    wait_until(record.exists, worker)
    worker.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    go.touch()
    out = finish(worker)
    assert "SIGTERM: taking no new tasks, finishing 1 in hand" in out
    ran = record.read_text().split()
    assert len(ran) == 1  # it took whichever task it drew, and no other
    states = {t["id"]: t["state"] for t in json.loads(publisher.ok("queue", "list", "--json").stdout)["tasks"]}
    assert states == {"1": "queued", "2": "queued", ran[0]: "done"}
    assert remote_refs(publisher, "refs/agents/claims/") == {}


def test_a_second_signal_hands_the_task_back(tmp_path: Path, daemon_url: str) -> None:
    record = tmp_path / "record.txt"
    agent = write_script(tmp_path / "agent.sh", f"""
        echo "$$" >> {record}
        sleep 60
    """)
    publisher = clone(tmp_path, daemon_url, "publisher")
    publisher.ok("queue", "push", str(taskfile(tmp_path / "tasks.toml", ["1"], agent)))
    machine = clone(tmp_path, daemon_url, "machine")
    worker = start_worker(machine, "--poll", "0.1", "--lease", "30", "--name", "w")
    wait_until(record.exists, worker)
    worker.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    worker.send_signal(signal.SIGTERM)
    out, _ = worker.communicate(timeout=30)
    assert worker.returncode == 130, out
    assert "handed task 1 back to the queue" in out
    states = [(t["id"], t["state"]) for t in json.loads(publisher.ok("queue", "list", "--json").stdout)["tasks"]]
    assert states == [("1", "queued")]
    agent_pid = int(record.read_text().split()[0])
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{agent_pid}") and "Z" not in open(f"/proc/{agent_pid}/stat").read().split()[2]:
        assert time.monotonic() < deadline, "the agent was not stopped"
        time.sleep(0.05)


def test_merge_remote_leaves_out_failed_and_conflicting_tasks(tmp_path: Path, daemon_url: str) -> None:
    agent = write_script(tmp_path / "agent.sh", """
        case "$GIT_AGENT_TASK" in
            bad) echo "something broke"; exit 3 ;;
            a|b) echo "version $GIT_AGENT_TASK" > shared.txt ;;
            *) echo ok > "file-$GIT_AGENT_TASK.txt" ;;
        esac
        git add . && git commit -q -m "task $GIT_AGENT_TASK"
    """)
    publisher = clone(tmp_path, daemon_url, "publisher")
    publisher.ok("queue", "push", str(taskfile(tmp_path / "tasks.toml", ["a", "b", "bad", "good"], agent)))
    machine = clone(tmp_path, daemon_url, "machine")
    worker = start_worker(machine, "--once", "--jobs", "2", "--poll", "0.1", "--lease", "30")
    out, _ = worker.communicate(timeout=60)
    assert worker.returncode == 1, out  # one of its tasks failed
    listed = {t["id"]: t for t in json.loads(publisher.ok("queue", "list", "--json").stdout)["tasks"]}
    assert (listed["bad"]["state"], listed["bad"]["exit"]) == ("failed", 3)
    result = remote_refs(publisher, "refs/agents/results/")["refs/agents/results/bad"]
    publisher.git("fetch", "-q", "origin", "refs/agents/results/bad")
    assert "something broke" in json.loads(publisher.git("log", "-1", "--format=%b", result))["log_tail"]

    merged = publisher.agent("merge", "--all", "--remote", "origin")
    assert merged.returncode == 1
    assert merged.stderr == "warning: skipped task bad: its agent exited 3\n"
    lines = merged.stdout.splitlines()
    assert [line.split(" (")[0] for line in lines[:3]] == ["Merged task a", "Conflict in task b: shared.txt",
                                                           "Merged task good"]
    assert lines[1] == "Conflict in task b: shared.txt (not merged; its branch stays on origin)"
    assert lines[-1] == "2 merged, 2 not merged"
    main = publisher.git("ls-remote", "origin", "refs/heads/main").split()[0]
    assert publisher.git("show", f"{main}:shared.txt") == "version a"
    assert set(remote_refs(publisher, "refs/agents/merged/")) == {"refs/agents/merged/a", "refs/agents/merged/good"}
    assert "refs/heads/task-b" in remote_refs(publisher, "refs/heads/task-")


def test_usage_and_configuration_errors(tmp_path: Path, daemon_url: str, committing_agent: Path) -> None:
    publisher = clone(tmp_path, daemon_url, "publisher")
    bad_base = tmp_path / "bad.toml"
    bad_base.write_text(f'agent = "{committing_agent}"\nbase = "nope"\n[[task]]\nid = "1"\nprompt = "x"\n')
    refused = publisher.agent("queue", "push", str(bad_base))
    assert (refused.returncode, refused.stderr) == (
        128, "fatal: base branch 'nope' does not exist on origin; nothing was published\n"
             "hint: push it first: git push origin nope\n")
    wrong = publisher.agent("worker", "--remote", "upstream", "--once")
    assert (wrong.returncode, wrong.stderr) == (128, "fatal: 'upstream' is not a configured remote\nhint: pass --remote"
                                                     " <name-or-url>, or set agent.remote (git remote -v lists them)\n")
    zero = publisher.agent("worker", "--jobs", "0")
    assert (zero.returncode, zero.stderr) == (129, "error: --jobs must be a positive number\nusage: git agent-worker"
                                                   " [--remote <remote>] [--jobs <n>] [--agent <command>]"
                                                   " [--isolation <mode>] [--lease <seconds>] [--once]\n")
    rebase = publisher.agent("merge", "--all", "--remote", "origin", "--rebase")
    assert (rebase.returncode, rebase.stderr.splitlines()[0]) == (
        129, "error: --remote cannot be combined with --interactive, --rebase or --resolve")
    assert remote_refs(publisher, "refs/agents/") == {}


def test_a_worker_without_an_agent_hands_the_task_back(tmp_path: Path, daemon_url: str) -> None:
    publisher = clone(tmp_path, daemon_url, "publisher")
    publisher.ok("queue", "push", str(taskfile(tmp_path / "tasks.toml", ["1"], "")))
    machine = clone(tmp_path, daemon_url, "machine")
    worker = start_worker(machine, "--once", "--poll", "0.1", "--lease", "30")
    out, _ = worker.communicate(timeout=60)
    assert worker.returncode == 1, out
    assert ("task 1: cannot start: neither the task file nor this worker names an agent command"
            " (pass --agent or set agent.command)") in out
    states = [(t["id"], t["state"]) for t in json.loads(publisher.ok("queue", "list", "--json").stdout)["tasks"]]
    assert states == [("1", "queued")]
    assert remote_refs(publisher, "refs/agents/claims/") == {}
    assert machine.git("for-each-ref", "refs/heads/task-*") == ""


def test_a_failing_setup_is_published_as_a_failed_result(tmp_path: Path, daemon_url: str,
                                                         committing_agent: Path) -> None:
    publisher = clone(tmp_path, daemon_url, "publisher")
    publisher.ok("queue", "push", str(taskfile(tmp_path / "tasks.toml", ["1"], committing_agent)))
    machine = clone(tmp_path, daemon_url, "machine")
    machine.git("config", "agent.setup", "echo cannot install; exit 4")
    worker = start_worker(machine, "--once", "--poll", "0.1", "--lease", "30")
    out, _ = worker.communicate(timeout=60)
    assert worker.returncode == 1, out
    assert "task 1: setup failed (exit 4): echo cannot install; exit 4" in out
    listed = json.loads(publisher.ok("queue", "list", "--json").stdout)["tasks"][0]
    assert (listed["state"], listed["exit"]) == ("failed", 125)
    publisher.git("fetch", "-q", "origin", "refs/agents/results/1")
    tail = json.loads(publisher.git("log", "-1", "--format=%b", "FETCH_HEAD"))["log_tail"]
    assert tail == ("git-agents: setup: echo cannot install; exit 4\ncannot install\n"
                    "git-agents: setup failed (exit 4); the agent was not started\n")
    assert not (tmp_path / "machine-worktrees" / "task-1").exists()  # published, so cleaned up here


STALE_VIEW_CLAIM = """
import subprocess, sys
from git_agents.remote.queue import RemoteQueue
from git_agents.remote.worker import Worker
from git_agents.core.repo import Repo

repo = Repo.discover()
queue = RemoteQueue(repo)
queue.fetch()
stale = queue.tasks()["1"]  # queued and unclaimed, as far as this worker knows
subprocess.run(["git-agent-worker", "--once", "--poll", "0.1", "--lease", "30"], cwd=sys.argv[1], check=True,
               stdout=subprocess.DEVNULL)
worker = Worker(repo, queue, jobs=1, agent_command=None, lease=30, poll=0.1, once=True, name="late")
print(worker._claim(stale), sorted(worker.held))
"""


def test_a_worker_with_a_stale_view_does_not_rerun_a_finished_task(tmp_path: Path, daemon_url: str) -> None:
    record = tmp_path / "record.txt"
    agent = sleeping_agent(tmp_path, record, "0")
    publisher = clone(tmp_path, daemon_url, "publisher")
    publisher.ok("queue", "push", str(taskfile(tmp_path / "tasks.toml", ["1"], agent)))
    late, quick = clone(tmp_path, daemon_url, "late"), clone(tmp_path, daemon_url, "quick")
    # `late` reads the queue, then `quick` runs the task to the end (which deletes its claim),
    # then `late` claims it from its stale view: the claim succeeds, so it must see the result.
    proc = run([sys.executable, "-c", STALE_VIEW_CLAIM, str(quick.path)], late.path,
               env={"PYTHONPATH": str(Path(__file__).resolve().parent.parent)}, check=True)
    assert proc.stdout == "False []\n"
    assert record.read_text().split() == ["1", "quick"]
    assert remote_refs(publisher, "refs/agents/claims/") == {}


def worked_queue(tmp_path: Path, url: str, ids: list[str], agent: Path) -> Project:
    """Publish one task per id, let a worker on another clone run them all; the publisher's clone."""
    publisher = clone(tmp_path, url, "publisher")
    publisher.ok("queue", "push", str(taskfile(tmp_path / "tasks.toml", ids, agent)))
    worker = start_worker(clone(tmp_path, url, "machine"), "--once", "--jobs", "2", "--poll", "0.1", "--lease", "30")
    worker.communicate(timeout=60)
    return publisher


CHECK = "! grep -l broken file-*.txt"  # fails on a tree holding a broken file, and names it


@pytest.mark.parametrize("batch", [[], ["--check-batch"]], ids=["each", "batch"])
def test_merge_remote_leaves_out_a_task_whose_result_fails_the_check(tmp_path: Path, bare: Path,
                                                                     batch: list[str]) -> None:
    agent = write_script(tmp_path / "agent.sh", """
        if [ "$GIT_AGENT_TASK" = 2 ]; then echo broken; else echo fine; fi > "file-$GIT_AGENT_TASK.txt"
        git add . && git commit -q -m "task $GIT_AGENT_TASK"
    """)
    publisher = worked_queue(tmp_path, f"file://{bare}", ["1", "2", "3"], agent)
    before = publisher.git("ls-remote", "origin", "refs/heads/main").split()[0]

    merged = publisher.agent("merge", "--all", "--remote", "origin", "--check", CHECK, *batch)
    assert merged.returncode == 1, merged.stderr
    assert merged.stderr == ""
    main = publisher.git("ls-remote", "origin", "refs/heads/main").split()[0]
    assert merged.stdout == (f"Merged task 1 ({publisher.git('rev-parse', main + '^')[:12]})\n"
                             "Check failed for task 2 (not merged; its branch stays on origin):\n"
                             "    file-2.txt\n"
                             f"Merged task 3 ({main[:12]})\n"
                             f"Pushed main to origin ({before[:12]}..{main[:12]})\n"
                             "2 merged, 1 not merged\n")
    assert publisher.git("ls-tree", "--name-only", main).splitlines() == ["README", "file-1.txt", "file-3.txt",
                                                                          "shared.txt"]
    assert publisher.git("rev-parse", "main") == main
    assert set(remote_refs(publisher, "refs/agents/merged/")) == {"refs/agents/merged/1", "refs/agents/merged/3"}
    assert publisher.git("worktree", "list", "--porcelain").count("worktree ") == 1  # the scratch one is gone
    publisher.git("fetch", "-q", "origin", "refs/notes/agents:refs/notes/agents")
    assert "check: passed" in publisher.git("notes", "--ref=agents", "show", main)

    viewer = clone(tmp_path, f"file://{bare}", "viewer")
    listed = {t["id"]: t for t in json.loads(viewer.ok("queue", "list", "--json").stdout)["tasks"]}
    assert {i: t["state"] for i, t in listed.items()} == {"1": "merged", "2": "check-failed", "3": "merged"}
    assert (listed["2"]["check"], listed["2"]["check_output"], listed["2"]["exit"]) == (CHECK, "file-2.txt", 0)
    assert (listed["1"]["check"], listed["1"]["check_output"]) == (None, None)
    assert viewer.ok("queue", "list").stdout.splitlines()[2].split() == ["2", "check-failed", "check", "failed:",
                                                                         *CHECK.split(), "Task", "number", "2"]

    # A later run checks it again (agent.mergeCheck this time): once it passes, it merges and the record goes.
    publisher.git("config", "agent.mergeCheck", "true")
    again = publisher.agent("merge", "--all", "--remote", "origin")
    assert (again.returncode, again.stderr) == (0, "")
    assert again.stdout.splitlines()[0].startswith("Merged task 2 (")
    assert remote_refs(publisher, "refs/agents/rejected/") == {}
    states = [(t["id"], t["state"]) for t in json.loads(viewer.ok("queue", "list", "--json").stdout)["tasks"]]
    assert states == [("1", "merged"), ("2", "merged"), ("3", "merged")]


def test_a_check_failure_record_goes_when_the_task_conflicts_instead(tmp_path: Path, bare: Path) -> None:
    agent = write_script(tmp_path / "agent.sh", """
        echo broken > file-1.txt && git add . && git commit -q -m "task 1"
    """)
    publisher = worked_queue(tmp_path, f"file://{bare}", ["1"], agent)
    failed = publisher.agent("merge", "--all", "--remote", "origin", "--check", CHECK)
    assert (failed.returncode, failed.stderr) == (1, "")
    assert failed.stdout.startswith("Check failed for task 1 (not merged; its branch stays on origin):\n")
    assert set(remote_refs(publisher, "refs/agents/rejected/")) == {"refs/agents/rejected/1"}

    (publisher.path / "file-1.txt").write_text("someone else's\n")
    publisher.git("add", "file-1.txt")
    publisher.git("commit", "-q", "-m", "someone else's file-1.txt")
    publisher.git("push", "-q", "origin", "main")
    conflict = publisher.agent("merge", "--all", "--remote", "origin", "--check", "true")
    assert (conflict.returncode, conflict.stderr) == (1, "")
    assert conflict.stdout == ("Conflict in task 1: file-1.txt (not merged; its branch stays on origin)\n"
                               "0 merged, 1 not merged\n")
    assert remote_refs(publisher, "refs/agents/rejected/") == {}
    assert [t["state"] for t in json.loads(publisher.ok("queue", "list", "--json").stdout)["tasks"]] == ["done"]


def test_merge_remote_dry_run_predicts_and_pushes_nothing(tmp_path: Path, bare: Path) -> None:
    agent = write_script(tmp_path / "agent.sh", """
        case "$GIT_AGENT_TASK" in
            a|b) echo "version $GIT_AGENT_TASK" > shared.txt ;;
            *) echo ok > "file-$GIT_AGENT_TASK.txt" ;;
        esac
        git add . && git commit -q -m "task $GIT_AGENT_TASK"
    """)
    publisher = worked_queue(tmp_path, f"file://{bare}", ["a", "b", "good"], agent)
    publisher.ok("queue", "list")  # (its fetch brings the tracking refs up to date, as the dry run's would)
    before = publisher.git("ls-remote", "origin")
    local = publisher.snapshot()

    predicted = publisher.agent("merge", "--all", "--remote", "origin", "--dry-run", "--check", "false")
    assert (predicted.returncode, predicted.stderr) == (1, "")
    assert predicted.stdout == ("Task a would merge cleanly\n"
                                "Task b would conflict: shared.txt\n"
                                "    CONFLICT (content): Merge conflict in shared.txt\n"
                                "Task good would merge cleanly\n"
                                "2 would merge, 1 would not\n")
    assert publisher.git("ls-remote", "origin") == before
    assert publisher.snapshot() == local
    assert publisher.git("for-each-ref", "refs/notes/") == ""
    assert publisher.git("worktree", "list", "--porcelain").count("worktree ") == 1


def test_a_worker_honours_agent_sparse_and_agent_pool_as_run_does(tmp_path: Path, daemon_url: str) -> None:
    """Issue 21: the worker started its tasks in a new full worktree whatever agent.sparse and
    agent.pool said; it starts them through the same call as git agent-run now."""
    record = tmp_path / "record.txt"
    agent = write_script(tmp_path / "agent.sh", f"""
        echo "$GIT_AGENT_TASK $(basename "$PWD") $(git sparse-checkout list | tr '\\n' ' ')" >> {record}
        echo "work of task $GIT_AGENT_TASK" > "file-$GIT_AGENT_TASK.txt"
        git add "file-$GIT_AGENT_TASK.txt"
        git commit -q -m "task $GIT_AGENT_TASK: add file-$GIT_AGENT_TASK.txt"
    """)
    publisher = clone(tmp_path, daemon_url, "publisher")
    publisher.commit_file("src/a.txt", "a\n")
    publisher.commit_file("docs/b.txt", "b\n")
    publisher.git("push", "-q", "origin", "main")
    publisher.ok("queue", "push", str(taskfile(tmp_path / "tasks.toml", ["1"], agent)))
    machine = clone(tmp_path, daemon_url, "machine")
    machine.git("config", "agent.sparse", "src")
    machine.git("config", "agent.pool", "true")
    out = finish(start_worker(machine, "--once", "--poll", "0.1", "--lease", "30"))
    assert record.read_text() == "1 pool-1 src \n", out
    assert "pool-1" in machine.ok("pool", "list").stdout  # the slot was given back, not removed
    assert machine.agent("status").stdout.startswith("No tasks.")
    assert set(remote_refs(publisher, "refs/agents/results/")) == {"refs/agents/results/1"}


@pytest.mark.parametrize("how", ["agent.isolation", "--isolation", "agent.pool"])
def test_a_worker_runs_its_tasks_in_clones_as_run_does(tmp_path: Path, daemon_url: str, how: str) -> None:
    """agent.isolation or --isolation (and with agent.pool, a clone made from a pool slot): the
    agent's git moves main, collects garbage and writes a hook in its own clone; the worker
    publishes the branch fetched back from the clone, and the machine's repository is untouched."""
    agent = write_script(tmp_path / "agent.sh", """
        echo "work of task $GIT_AGENT_TASK" > "file-$GIT_AGENT_TASK.txt"
        git add "file-$GIT_AGENT_TASK.txt"
        git commit -q -m "task $GIT_AGENT_TASK: add file-$GIT_AGENT_TASK.txt"
        git update-ref refs/heads/main HEAD
        git gc -q --prune=now
        printf '#!/bin/sh\\nexit 1\\n' > "$(git rev-parse --git-common-dir)/hooks/pre-commit"
        chmod +x "$(git rev-parse --git-common-dir)/hooks/pre-commit"
        git config user.email agent@evil.example
    """)
    publisher = clone(tmp_path, daemon_url, "publisher")
    publisher.ok("queue", "push", str(taskfile(tmp_path / "tasks.toml", ["1"], agent)))
    machine = clone(tmp_path, daemon_url, "machine")
    main = machine.git("rev-parse", "main")
    options = ["--isolation=clone"] if how == "--isolation" else []
    machine.git("config", "agent.isolation", "sandbox" if how == "agent.isolation" else "clone")
    if how == "agent.pool":
        machine.git("config", "agent.pool", "true")
        machine.ok("pool", "create", "1")
    config = machine.git("config", "--local", "--list")
    out = finish(start_worker(machine, "--once", "--poll", "0.1", "--lease", "30", *options))
    assert "task 1 done: pushed task-1" in out, out
    published = publisher.git("ls-remote", "origin", "refs/heads/task-1").split()[0]
    publisher.git("fetch", "-q", "origin", "task-1")
    assert publisher.git("show", f"{published}:file-1.txt") == "work of task 1"
    assert machine.git("rev-parse", "main") == main
    assert machine.git("config", "--local", "--list") == config
    assert not (machine.path / ".git" / "hooks" / "pre-commit").exists()
    assert machine.agent("status").stdout.startswith("No tasks.")  # the clone was removed once published
    assert not (machine.worktrees / "task-1").exists()
    fsck = run(["git", "fsck", "--no-dangling"], machine.path)
    assert fsck.returncode == 0 and fsck.stdout + fsck.stderr == ""
