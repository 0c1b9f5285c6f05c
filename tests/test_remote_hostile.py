"""The shared remote must be neither a way in nor a way to jam (issue 10, items 9-11; issue 11's drifts).

Anyone who can push to the remote can write any ref under refs/agents. Each test writes such
records by hand, as an attacker or a newer git-agents would, and checks that a bad record
affects only its own task, that forged results are not merged, that the queue's commands run
only when trusted, and that text from the remote cannot drive the terminal.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from .conftest import Project, run, write_script
from .test_remote import bare, clone, remote_refs, start_worker, taskfile  # noqa: F401  (bare: a fixture)

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def forge(where: Project, ref: str, message: str, *, tree: str = EMPTY_TREE, parents: tuple[str, ...] = (),
          sign_with: Path | None = None) -> str:
    """Write a commit with `message` (optionally SSH-signed by `sign_with`) and force it to `ref` on origin."""
    where.git("hash-object", "-w", "-t", "tree", "--stdin", input="")
    args = ["commit-tree", tree, *[a for p in parents for a in ("-p", p)]]
    if sign_with is not None:
        args = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={sign_with}", *args, "-S"]
    commit = where.git(*args, "-F", "-", input=message)
    where.git("push", "-q", "--force", "origin", f"{commit}:{ref}")
    return commit


def forge_queue_entry(where: Project, task_id: str, spec: str, prompt: str = "do it") -> None:
    """A queue entry whose spec.json is `spec`, exactly as given."""
    spec_blob = where.git("hash-object", "-w", "--stdin", input=spec)
    prompt_blob = where.git("hash-object", "-w", "--stdin", input=prompt)
    tree = where.git("mktree", input=f"100644 blob {prompt_blob}\tprompt.md\n100644 blob {spec_blob}\tspec.json\n")
    forge(where, f"refs/agents/queue/{task_id}", f"agent-queue: task {task_id} - forged\n\n{{\"version\": 1}}\n",
          tree=tree)


def work(where: Project, *args: str, timeout: float = 60) -> tuple[int, str]:
    """Run a worker --once to the end; (exit code, output)."""
    proc = start_worker(where, "--once", "--poll", "0.1", "--lease", "30", *args)
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def states(where: Project) -> dict[str, str]:
    return {t["id"]: t["state"] for t in json.loads(where.ok("queue", "list", "--json").stdout)["tasks"]}


# -- item 9: a bad record affects only itself ---------------------------------------------------
def test_malformed_claims_are_taken_over_and_queue_list_warns(tmp_path: Path, bare: Path,  # noqa: F811
                                                             committing_agent: Path) -> None:
    url = f"file://{bare}"
    publisher = clone(tmp_path, url, "publisher")
    publisher.ok("queue", "push", str(taskfile(tmp_path / "t.toml", ["1", "2"], committing_agent)))
    queue_1 = remote_refs(publisher, "refs/agents/queue/")["refs/agents/queue/1"]
    publisher.git("fetch", "-q", "origin", "refs/agents/queue/*:refs/agents/q/*")
    forge(publisher, "refs/agents/claims/1", 'agent-claim: task 1\n\n{"version": 1, "heartbeat": "soon"}\n',
          parents=(queue_1,))
    forge(publisher, "refs/agents/claims/2", "agent-claim: task 2\n\nnot JSON at all\n")

    listed = publisher.agent("queue", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr == ("warning: task 1: its claim has no valid 'heartbeat'\n"
                             "warning: task 2: its claim is not a git-agents record (not JSON)\n")
    assert listed.stdout.splitlines()[1:] == ["1   claimed  by an unreadable claim  Task number 1",
                                              "2   claimed  by an unreadable claim  Task number 2"]

    code, out = work(clone(tmp_path, url, "machine"))
    assert code == 0, out
    assert "warning: task 1: its claim has no valid 'heartbeat'; taking it over" in out
    assert states(publisher) == {"1": "done", "2": "done"}
    assert remote_refs(publisher, "refs/agents/claims/") == {}


def test_records_of_a_newer_version_or_a_forged_tip_affect_only_their_task(tmp_path: Path, bare: Path,  # noqa: F811
                                                                          committing_agent: Path) -> None:
    url = f"file://{bare}"
    publisher = clone(tmp_path, url, "publisher")
    publisher.ok("queue", "push", str(taskfile(tmp_path / "t.toml", ["1", "2", "3", "4"], committing_agent)))
    forge(publisher, "refs/agents/claims/4", 'agent-claim: task 4\n\n{"version": 99, "heartbeat": 1}\n')
    code, out = work(clone(tmp_path, url, "machine"))
    assert code == 1, out  # it left task 4 alone, and says so
    assert out.count("task 4") == 1 and ("warning: skipping task 4: its claim has format version 99; this"
                                         " git-agents reads version 1 (upgrade git-agents to handle it)") in out
    assert states(publisher) == {"1": "done", "2": "done", "3": "done", "4": "claimed"}

    results = remote_refs(publisher, "refs/agents/results/")
    publisher.git("fetch", "-q", "origin", "refs/agents/results/*:refs/agents/r/*")
    tip_2 = publisher.git("rev-parse", "refs/agents/r/2^")
    record = json.loads(publisher.git("log", "-1", "--format=%b", results["refs/agents/results/3"]))
    forge(publisher, "refs/agents/results/3", "agent-result\n\n" + json.dumps({**record, "version": 99}),
          parents=(publisher.git("rev-parse", "refs/agents/r/3^"),))
    record = json.loads(publisher.git("log", "-1", "--format=%b", results["refs/agents/results/2"]))
    forge(publisher, "refs/agents/results/2", "agent-result\n\n" + json.dumps({**record, "tip": "0" * 40}),
          parents=(tip_2,))

    listed = publisher.agent("queue", "list")
    assert listed.returncode == 0
    assert listed.stderr == ("warning: task 3: its result has format version 99; this git-agents reads version 1"
                             " (upgrade git-agents to handle it)\n"
                             "warning: task 4: its claim has format version 99; this git-agents reads version 1"
                             " (upgrade git-agents to handle it)\n")
    merged = publisher.agent("merge", "--all", "--remote", "origin")
    assert merged.returncode == 1
    assert merged.stderr == ("warning: skipped task 2: its result is malformed (its commit does not carry the tip"
                             " it names)\n"
                             "warning: skipped task 3: its result has format version 99; this git-agents reads"
                             " version 1 (upgrade git-agents to handle it)\n")
    assert merged.stdout.splitlines()[0].startswith("Merged task 1 (")
    assert merged.stdout.splitlines()[-1] == "1 merged, 2 not merged"
    assert set(remote_refs(publisher, "refs/agents/merged/")) == {"refs/agents/merged/1"}


@pytest.mark.parametrize("spec", [
    pytest.param('["a", "list"]', id="a-list"),
    pytest.param('{"version": 1, "base": "main", "title": "x', id="malformed"),
    pytest.param('{"version": 1, "base": "main", "title": "nul \\u0000 here"}', id="escaped-nul"),
    pytest.param('{"version": 1, "base": "main", "title": "nul \0 here"}', id="raw-nul"),
    pytest.param('{"version": 1, "base": "main", "title": 7}', id="not-a-string"),
    pytest.param('{"version": 1, "base": "no such..branch"}', id="bad-base"),
])
def test_a_poison_spec_is_published_as_failed_and_not_retried(tmp_path: Path, bare: Path,  # noqa: F811
                                                              committing_agent: Path, spec: str) -> None:
    url = f"file://{bare}"
    publisher = clone(tmp_path, url, "publisher")
    publisher.ok("queue", "push", str(taskfile(tmp_path / "t.toml", ["good"], committing_agent)))
    forge_queue_entry(publisher, "bad", spec)
    code, out = work(clone(tmp_path, url, "machine"))
    assert code == 1, out
    assert "Traceback" not in out
    assert "task bad: cannot run it: its " in out and "; publishing it as failed" in out
    assert states(publisher) == {"bad": "failed", "good": "done"}
    assert remote_refs(publisher, "refs/agents/claims/") == {}
    # The next worker does not try it again.
    code, out = work(clone(tmp_path, url, "other"))
    assert (code, "bad" in out) == (0, False), out
    assert publisher.ok("queue", "list").stdout.splitlines()[1].split()[:4] == ["bad", "failed", "not", "run"]
    merged = publisher.agent("merge", "--all", "--remote", "origin")
    assert merged.stderr.startswith("warning: skipped task bad: its ")
    assert merged.stdout.splitlines()[-1] == "1 merged, 1 not merged"


def test_a_spec_from_a_newer_git_agents_is_left_for_a_newer_worker(tmp_path: Path, bare: Path) -> None:  # noqa: F811
    publisher = clone(tmp_path, f"file://{bare}", "publisher")
    forge_queue_entry(publisher, "1", '{"version": 2, "base": "main"}')
    code, out = work(clone(tmp_path, f"file://{bare}", "machine"), "--agent", "true")
    assert code == 1, out
    assert ("warning: skipping task 1: its queue entry has format version 2; this git-agents reads version 1"
            " (upgrade git-agents to handle it)") in out
    assert states(publisher) == {"1": "queued"} and remote_refs(publisher, "refs/agents/claims/") == {}


# -- drift (a): an agent that died without an exit record -----------------------------------------
def test_a_worker_publishes_an_agent_that_died_as_failed(tmp_path: Path, bare: Path) -> None:  # noqa: F811
    # The agent kills its whole process group (its supervisor too), as the OOM killer might: no exit record.
    agent = write_script(tmp_path / "agent.sh", """
        echo half > half.txt; git add .; git commit -q -m half
        kill -KILL 0
    """)
    publisher = clone(tmp_path, f"file://{bare}", "publisher")
    publisher.ok("queue", "push", str(taskfile(tmp_path / "t.toml", ["1"], agent)))
    started = time.monotonic()
    code, out = work(clone(tmp_path, f"file://{bare}", "machine"), "--lease", "30")
    assert time.monotonic() - started < 10  # within one heartbeat (lease/3), not never
    assert code == 1, out
    assert "task 1: its agent died without recording how it ended (killed?)" in out
    listed = json.loads(publisher.ok("queue", "list", "--json").stdout)["tasks"][0]
    assert (listed["state"], listed["exit"], listed["branch"]) == ("failed", None, "task-1")
    assert publisher.ok("queue", "list").stdout.splitlines()[1].split()[:3] == ["1", "failed", "died"]
    merged = publisher.agent("merge", "--all", "--remote", "origin")
    assert merged.stderr == "warning: skipped task 1: its agent died\n"


# -- item 10: trust ------------------------------------------------------------------------------
def test_queue_commands_run_only_when_trusted(tmp_path: Path, bare: Path) -> None:  # noqa: F811
    marker = tmp_path / "ran"
    agent = write_script(tmp_path / "agent.sh", f"""
        touch {marker}; echo x > x.txt; git add .; git commit -q -m x
    """)
    publisher = clone(tmp_path, f"file://{bare}", "publisher")
    publisher.ok("queue", "push", str(taskfile(tmp_path / "t.toml", ["1"], agent)))
    wary = clone(tmp_path, f"file://{bare}", "wary", trust=False)
    code, out = work(wary)
    assert code == 1, out
    assert (f"task 1: cannot start: its agent command comes from the remote ('{agent}') and"
            " agent.trustQueueCommands is not true; pass --agent, or trust the queue's commands:"
            " git config agent.trustQueueCommands true") in out
    assert not marker.exists()
    assert states(publisher) == {"1": "queued"} and remote_refs(publisher, "refs/agents/claims/") == {}
    wary.git("config", "agent.trustQueueCommands", "true")
    code, out = work(wary)
    assert code == 0, out
    assert marker.exists() and states(publisher) == {"1": "done"}


def test_a_queued_preset_name_runs_this_machines_preset_without_trust(tmp_path: Path, bare: Path,  # noqa: F811
                                                                     committing_agent: Path) -> None:
    publisher = clone(tmp_path, f"file://{bare}", "publisher")
    publisher.ok("queue", "push", str(taskfile(tmp_path / "t.toml", ["1"], "mine")))
    wary = clone(tmp_path, f"file://{bare}", "wary", trust=False)
    wary.git("config", "agent.preset.mine", str(committing_agent))
    code, out = work(wary)
    assert code == 0, out
    assert states(publisher) == {"1": "done"}


UNSIGNED_HINT = ("hint: give each worker a signing key (user.signingkey, gpg.format) and list their public keys "
                 "where git verify-commit finds them (gpg.format=ssh: gpg.ssh.allowedSignersFile)\n"
                 "hint: or trust unsigned results, which anyone who can push can forge: git config "
                 "agent.verifyResults false (once: --trust-unsigned)\n")


def _keys(tmp_path: Path, name: str) -> Path:
    key = tmp_path / "keys" / name
    key.parent.mkdir(exist_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], tmp_path, check=True)
    return key


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")
def test_only_results_signed_by_a_trusted_worker_are_merged(tmp_path: Path, bare: Path,  # noqa: F811
                                                           committing_agent: Path) -> None:
    url = f"file://{bare}"
    trusted, stranger = _keys(tmp_path, "worker"), _keys(tmp_path, "stranger")
    publisher = clone(tmp_path, url, "publisher")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"worker@example.com {(trusted.with_suffix('.pub')).read_text()}")
    publisher.ok("queue", "push", str(taskfile(tmp_path / "t.toml", ["1", "2", "3"], committing_agent)))

    machine = clone(tmp_path, url, "machine")
    machine.git("config", "gpg.format", "ssh")
    machine.git("config", "user.signingkey", str(trusted))
    code, out = work(machine)
    assert code == 0, out
    results = remote_refs(publisher, "refs/agents/results/")
    publisher.git("fetch", "-q", "origin", "refs/agents/results/*:refs/agents/r/*")

    # Forgeries: task 2's result unsigned, task 3's signed by a key that is not in the allowed signers.
    for task_id, key in (("2", None), ("3", stranger)):
        record = json.loads(publisher.git("log", "-1", "--format=%b", results[f"refs/agents/results/{task_id}"]))
        tip = publisher.git("rev-parse", f"refs/agents/r/{task_id}^")
        forge(publisher, f"refs/agents/results/{task_id}",
              "agent-result\n\n" + json.dumps({**record, "worker": "machine", "exit": 0}), parents=(tip,),
              sign_with=key)

    publisher.git("config", "gpg.format", "ssh")
    unset = publisher.agent("merge", "--all", "--remote", "origin", "--verify-signatures")
    assert (unset.returncode, unset.stderr.splitlines()[0]) == (
        128, "fatal: cannot verify the results' signatures: gpg.ssh.allowedSignersFile is not set")
    publisher.git("config", "gpg.ssh.allowedSignersFile", str(allowed))
    before = remote_refs(publisher, "refs/heads/main")
    predicted = publisher.agent("merge", "--all", "--remote", "origin", "--verify-signatures", "--dry-run")
    assert predicted.stdout == "Task 1 would merge cleanly\n1 would merge, 2 would not\n"
    assert remote_refs(publisher, "refs/heads/main") == before

    publisher.git("config", "agent.verifyResults", "true")
    merged = publisher.agent("merge", "--all", "--remote", "origin")
    assert merged.returncode == 1
    r2, r3 = (remote_refs(publisher, "refs/agents/results/")[f"refs/agents/results/{i}"][:12] for i in "23")
    assert merged.stderr == (f"warning: skipped task 2: its result {r2} is not signed by a trusted key"
                             f" (git verify-commit {r2})\n"
                             f"warning: skipped task 3: its result {r3} is not signed by a trusted key"
                             f" (git verify-commit {r3})\n" + UNSIGNED_HINT)
    assert set(remote_refs(publisher, "refs/agents/merged/")) == {"refs/agents/merged/1"}
    # Without verification the forgery would have gone in: the flag is what stops it.
    publisher.git("config", "agent.verifyResults", "false")
    predicted = publisher.agent("merge", "--all", "--remote", "origin", "--dry-run")
    assert predicted.stdout == "Task 2 would merge cleanly\nTask 3 would merge cleanly\n2 would merge, 0 would not\n"


def test_a_forged_result_is_refused_by_default_and_trusting_unsigned_results_is_a_choice(
        tmp_path: Path, bare: Path, committing_agent: Path) -> None:  # noqa: F811
    url = f"file://{bare}"
    publisher = clone(tmp_path, url, "publisher", verify=None)  # no choice made: the default
    publisher.ok("queue", "push", str(taskfile(tmp_path / "t.toml", ["1"], committing_agent)))
    # Anyone who can push: a branch and a result for task 1, which no worker claimed.
    attacker = clone(tmp_path, url, "attacker")
    evil = attacker.commit_file("evil.txt", "forged\n")
    attacker.git("push", "-q", "origin", f"{evil}:refs/heads/task-1")
    record = {"version": 1, "task": "1", "worker": "nobody", "exit": 0, "branch": "task-1", "tip": evil}
    result = forge(attacker, "refs/agents/results/1", "agent-result: task 1 exit 0\n\n" + json.dumps(record),
                   parents=(evil,))[:12]
    before = remote_refs(publisher, "refs/heads/main")

    unsigned = (f"warning: skipped task 1: its result {result} is not signed by a trusted key (git verify-commit "
                f"{result})\n" + UNSIGNED_HINT)
    merged = publisher.agent("merge", "--all", "--remote", "origin")
    assert (merged.returncode, merged.stdout, merged.stderr) == (1, "0 merged, 1 not merged\n", unsigned)
    predicted = publisher.agent("merge", "--all", "--remote", "origin", "--dry-run")
    assert (predicted.returncode, predicted.stdout, predicted.stderr) == (1, "0 would merge, 1 would not\n", unsigned)
    assert remote_refs(publisher, "refs/heads/main") == before and remote_refs(publisher, "refs/agents/merged/") == {}

    # Trusting unsigned results is an explicit choice, for one run or in the configuration.
    predicted = publisher.agent("merge", "--all", "--remote", "origin", "--trust-unsigned", "--dry-run")
    assert (predicted.stdout, predicted.stderr) == ("Task 1 would merge cleanly\n1 would merge, 0 would not\n", "")
    publisher.git("config", "agent.verifyResults", "false")
    assert publisher.agent("merge", "--all", "--remote", "origin").returncode == 0
    assert publisher.git("show", "origin/main:evil.txt") == "forged"  # what trusting unsigned results means


def test_verify_signatures_needs_remote(project: Project) -> None:
    refused = project.agent("merge", "--all", "--verify-signatures")
    assert (refused.returncode, refused.stderr.splitlines()[0]) == (
        129, "error: --verify-signatures verifies the results of a shared queue: it needs --remote")


# -- drift (b): one note format ---------------------------------------------------------------------
def test_remote_notes_record_the_start_commit_as_base_with_the_local_fields(tmp_path: Path, bare: Path,  # noqa: F811
                                                                           committing_agent: Path,
                                                                           project: Project) -> None:
    url = f"file://{bare}"
    start = project.git("rev-parse", "main")
    publisher = clone(tmp_path, url, "publisher")
    publisher.ok("queue", "push", str(taskfile(tmp_path / "t.toml", ["1", "2"], committing_agent)))
    assert work(clone(tmp_path, url, "machine"), "--jobs", "2")[0] == 0
    publisher.ok("merge", "--all", "--remote", "origin")
    main = publisher.git("rev-parse", "main")
    notes = [dict(line.split(": ", 1) for line in publisher.git("notes", "--ref=agents", "show", c).splitlines())
             for c in (f"{main}^", main)]
    assert [n["base"] for n in notes] == [start, start]  # both started from main as it was, not the tip before
    assert [n["agent"] for n in notes] == [str(committing_agent)] * 2
    assert all(len(n["prompt-hash"]) == 16 and n["worker"] != "-" and n["remote"] == "origin" for n in notes)

    # A local merge writes the very same fields, in the same order.
    project.ok("spawn", "9", "--prompt", "p", "--agent", str(committing_agent))
    project.ok("wait", "9")
    project.ok("merge", "9")
    local = [line.split(": ", 1)[0] for line in project.git("notes", "--ref=agents", "show", "main").splitlines()]
    remote = [line.split(": ", 1)[0] for line in publisher.git("notes", "--ref=agents", "show", main).splitlines()]
    assert local == remote
    assert project.git("notes", "--ref=agents", "show", "main").splitlines()[-3:-1] == ["worker: -", "remote: -"]


# -- item 11: control characters -----------------------------------------------------------------
EVIL = "evil \x1b[2J\x1b]0;owned\x07 \x9b title"
SHOWN = "evil \\x1b[2J\\x1b]0;owned\\x07 \\x9b title"


def test_control_characters_from_the_remote_are_escaped_in_text_output(tmp_path: Path, bare: Path,  # noqa: F811
                                                                      committing_agent: Path) -> None:
    url = f"file://{bare}"
    publisher = clone(tmp_path, url, "publisher")
    tasks = tmp_path / "t.toml"
    tasks.write_text(f'agent = "{committing_agent}"\nbase = "main"\n[[task]]\nid = "1"\n'
                     f'title = {json.dumps(EVIL)}\nprompt = "p"\n')
    publisher.ok("queue", "push", str(tasks))
    listed = publisher.ok("queue", "list").stdout
    assert "\x1b" not in listed and "\x07" not in listed and "\x9b" not in listed
    assert listed.splitlines()[1] == f"1   queued          {SHOWN}"
    assert json.loads(publisher.ok("queue", "list", "--json").stdout)["tasks"][0]["title"] == EVIL  # JSON: exact

    assert work(clone(tmp_path, url, "machine"))[0] == 0
    publisher.ok("merge", "--all", "--remote", "origin")
    log = publisher.ok("log").stdout
    assert "\x1b" not in log and SHOWN.split(" title")[0] in log


def test_control_characters_in_local_titles_are_escaped_in_status(project: Project) -> None:
    project.ok("spawn", "1", "--prompt", "p", "--title", EVIL)
    shown = project.ok("status").stdout
    assert "\x1b" not in shown and "\x07" not in shown and SHOWN in shown
    assert json.loads(project.ok("status", "--json").stdout)["tasks"][0]["title"] == EVIL


def test_a_worker_that_cannot_sign_says_so_before_claiming(tmp_path: Path, bare: Path,  # noqa: F811
                                                           committing_agent: Path) -> None:
    publisher = clone(tmp_path, f"file://{bare}", "publisher")
    publisher.ok("queue", "push", str(taskfile(tmp_path / "t.toml", ["1"], committing_agent)))
    machine = clone(tmp_path, f"file://{bare}", "machine")
    machine.git("config", "gpg.format", "ssh")
    machine.git("config", "user.signingkey", str(tmp_path / "no-such-key"))
    refused = machine.agent("worker", "--once")
    assert refused.returncode == 128
    assert refused.stderr.startswith("fatal: cannot sign result commits: ")
    assert refused.stderr.endswith("hint: check user.signingkey and gpg.format (git commit-tree -S must work)\n")
    assert states(publisher) == {"1": "queued"} and remote_refs(publisher, "refs/agents/claims/") == {}


# -- the gateway never waits on a remote (issue 21 §2) ---------------------------------------------

def test_a_git_call_past_its_timeout_is_killed_with_what_it_started(project: Project, tmp_path: Path) -> None:
    """A remote that never answers (here a remote helper that sleeps) ends in a GitError, and the
    helper git started is killed with it."""
    from git_agents.core.errors import GitError
    from git_agents.core.git import Git

    pidfile = tmp_path / "helper.pid"
    helper = write_script(tmp_path / "helper.sh", f"echo $$ > {pidfile}\nexec sleep 300\n")
    url = f"ext::{helper}"
    with pytest.raises(GitError) as caught:
        Git(project.path).run("-c", "protocol.ext.allow=always", "ls-remote", url, timeout=2)
    assert caught.value.retcode == -1
    assert "timed out after 2 s" in str(caught.value)
    pid = int(pidfile.read_text())

    def ended() -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] in "ZX"
        except OSError:
            return True
    deadline = time.monotonic() + 30  # SIGKILL was sent; under load the kernel may take a moment
    while not ended():
        assert time.monotonic() < deadline, "the remote helper outlived the timed-out git call"
        time.sleep(0.05)


def test_fetch_and_push_never_wait_for_a_password(project: Project, tmp_path: Path) -> None:
    """git asks no username or password (GIT_TERMINAL_PROMPT=0) and ssh runs without a
    controlling terminal (a session of its own), so neither can prompt: the queue's fetch fails
    at once instead of hanging an unattended worker."""
    import os

    seen = tmp_path / "seen.txt"
    ssh = write_script(tmp_path / "fake-ssh", f"""
        echo "prompt=$GIT_TERMINAL_PROMPT session=$(cut -d' ' -f6 /proc/$$/stat)" >> {seen}
        exit 255
    """)
    project.git("config", "core.sshCommand", str(ssh))
    proc = project.agent("queue", "list", "--remote", "ssh://example.invalid/repo.git")
    assert proc.returncode == 128, proc.stderr
    assert "Traceback" not in proc.stderr
    line = seen.read_text().splitlines()[0]
    assert line.startswith("prompt=0 session="), line
    assert int(line.split("session=")[1]) != os.getsid(0)  # not the terminal's session


def test_a_push_refused_by_a_hook_is_not_taken_for_a_lost_race(project: Project, tmp_path: Path,
                                                               bare: Path) -> None:  # noqa: F811
    """Whether a compare-and-swap push lost the race is asked of the remote's refs, not read from
    its `remote:` messages (in the server's language, and a hook can print anything)."""
    from git_agents.core.repo import Repo
    from git_agents.remote.queue import RemoteQueue, Update

    write_script(bare / "hooks" / "pre-receive", """
        echo "error: cannot lock ref 'refs/agents/claims/1': is at 1111 but expected 2222" >&2
        exit 1
    """)
    where = clone(tmp_path, f"file://{bare}", "machine")
    queue = RemoteQueue(Repo.discover(str(where.path)), "origin")
    head = where.git("rev-parse", "HEAD")
    for atomic in (True, False):
        result = queue.push([Update("refs/agents/claims/1", head, ""), Update("refs/agents/claims/2", head, "")],
                            atomic=atomic)
        assert not result.ok
        assert not result.lost("refs/agents/claims/1") and not result.lost("refs/agents/claims/2")
    (bare / "hooks" / "pre-receive").unlink()
    other = where.git("commit-tree", f"{head}^{{tree}}", "-m", "another worker's claim")
    where.git("push", "-q", "origin", f"{other}:refs/agents/claims/2")  # another worker won task 2
    result = queue.push([Update("refs/agents/claims/1", head, ""), Update("refs/agents/claims/2", head, "")],
                        atomic=True)
    assert (result.ok, result.lost("refs/agents/claims/1"), result.lost("refs/agents/claims/2")) == \
        (False, False, True)
