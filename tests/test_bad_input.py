"""Bad input from files and configuration: a `fatal:` message naming the problem and a hint, never a traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from .conftest import BIN, Project, run


def _fatal(proc: object, first: str, code: int = 128) -> list[str]:
    """Check a refusal: exit `code`, no traceback, the first line exactly `first`, a hint; return the lines."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)  # type: ignore[attr-defined]
    err = proc.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert lines[0] == first, err
    assert any(line.startswith("hint: ") for line in lines[1:]), err
    return lines


def _with_remote(project: Project, tmp_path: Path) -> None:
    bare = tmp_path / "remote.git"
    run(["git", "clone", "-q", "--bare", str(project.path), str(bare)], tmp_path, check=True)
    project.git("remote", "add", "origin", str(bare))


# -- typed settings name their key and value ----------------------------------------------------------

@pytest.mark.parametrize("value, wanted", [
    ("abc", "a number of seconds greater than 0"),
    ("0", "a number of seconds greater than 0"),
    ("-5", "a number of seconds greater than 0"),
    ("nan", "a number of seconds greater than 0"),
])
def test_bad_lease_names_the_key(project: Project, tmp_path: Path, value: str, wanted: str) -> None:
    _with_remote(project, tmp_path)
    project.git("config", "agent.lease", value)
    for verb, args in (("queue", ("list",)), ("worker", ("--once",))):
        proc = project.agent(verb, *args, timeout=60)
        lines = _fatal(proc, f"fatal: bad value '{value}' for agent.lease: {wanted} is expected")
        assert lines[1] == ("hint: fix it with: git config agent.lease <value>, or go back to the default with:"
                            " git config --unset-all agent.lease")


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "many"])
def test_bad_worker_jobs_names_the_setting_not_the_option(project: Project, tmp_path: Path, value: str) -> None:
    _with_remote(project, tmp_path)
    project.git("config", "agent.workerJobs", value)
    proc = project.agent("worker", "--once", timeout=60)
    _fatal(proc, f"fatal: bad value '{value}' for agent.workerJobs: a whole number of tasks greater than 0"
                 " is expected")
    assert "--jobs" not in proc.stderr


def test_bad_jobs_option_is_still_a_usage_error(project: Project, tmp_path: Path) -> None:
    _with_remote(project, tmp_path)
    proc = project.agent("worker", "--once", "--jobs", "0", timeout=60)
    assert proc.returncode == 129
    assert proc.stderr.splitlines()[0] == "error: --jobs must be a positive number"


def test_bad_poll_interval_names_the_key(project: Project, tmp_path: Path) -> None:
    _with_remote(project, tmp_path)
    project.git("config", "agent.pollInterval", "soon")
    _fatal(project.agent("worker", "--once", timeout=60),
           "fatal: bad value 'soon' for agent.pollInterval: a number of seconds greater than 0 is expected")


@pytest.mark.parametrize("value", ["-3", "x", "2.5"])
def test_bad_pool_max_names_the_key(project: Project, value: str) -> None:
    project.git("config", "agent.poolMax", value)
    before = project.snapshot()
    proc = project.agent("spawn", "1", "--pool", "--prompt", "x")
    _fatal(proc, f"fatal: bad value '{value}' for agent.poolMax: a whole number of slots of at least 0 is expected")
    assert "pool is empty" not in proc.stderr
    assert project.snapshot() == before


def test_pool_max_zero_still_means_no_limit(project: Project) -> None:
    project.git("config", "agent.poolMax", "0")
    project.ok("spawn", "1", "--pool", "--no-agent", "--prompt", "x")


# -- agent.worktreeRoot ---------------------------------------------------------------------------------

_ROOT_HINT = ("hint: set a directory outside the repository, e.g. git config agent.worktreeRoot ../worktrees,"
              " or go back to the default with: git config --unset-all agent.worktreeRoot")


@pytest.mark.parametrize("value, first", [
    ("", "fatal: agent.worktreeRoot is empty; it must name the directory that holds task worktrees"),
    ("  ", "fatal: agent.worktreeRoot is empty; it must name the directory that holds task worktrees"),
    (".git/wt", "fatal: agent.worktreeRoot '.git/wt' is inside the git directory {git}"),
    (".git", "fatal: agent.worktreeRoot '.git' is inside the git directory {git}"),
    (".", "fatal: agent.worktreeRoot '.' is the main worktree itself"),
])
def test_unusable_worktree_root_is_refused(project: Project, value: str, first: str) -> None:
    project.git("config", "agent.worktreeRoot", value)
    before = project.snapshot()
    for args in (("spawn", "1", "--prompt", "x"), ("pool", "create", "1")):
        proc = project.agent(*args)
        lines = _fatal(proc, first.format(git=project.path / ".git"))
        assert lines[1] == _ROOT_HINT
        assert project.snapshot() == before
    assert project.git("branch", "--list", "task-*") == ""
    assert not (project.path / ".git" / "wt").exists()
    project.ok("status")  # reading the tasks does not need the root


def test_worktree_root_that_is_a_file(project: Project, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("mine\n")
    project.git("config", "agent.worktreeRoot", str(tmp_path / "afile"))
    before = project.snapshot()
    proc = project.agent("spawn", "1", "--prompt", "x")
    lines = _fatal(proc, f"fatal: cannot create the worktree directory '{tmp_path / 'afile'}': "
                         "a file of that name is in the way")
    assert lines[1] == f"hint: agent.worktreeRoot is '{tmp_path / 'afile'}'; point it at a directory"
    assert project.snapshot() == before
    assert project.git("branch", "--list", "task-*") == ""
    assert (tmp_path / "afile").read_text() == "mine\n"


def test_worktree_root_that_cannot_be_made(project: Project) -> None:
    project.git("config", "agent.worktreeRoot", "/proc/no-such-dir/wt")
    before = project.snapshot()
    proc = project.agent("spawn", "1", "--prompt", "x")
    lines = _fatal(proc, "fatal: cannot create the worktree directory '/proc/no-such-dir/wt': "
                         "No such file or directory")
    assert lines[1] == "hint: agent.worktreeRoot is '/proc/no-such-dir/wt'; point it at a directory you can write"
    assert project.snapshot() == before
    assert project.git("branch", "--list", "task-*") == ""


# -- prompt and task files that are not text ----------------------------------------------------------

def test_prompt_file_that_is_not_utf8(project: Project, tmp_path: Path) -> None:
    (tmp_path / "bad.md").write_bytes(b"fix it\n\xff\xfe caf\xe9\n")
    before = project.snapshot()
    proc = project.agent("spawn", "1", "--prompt-file", str(tmp_path / "bad.md"), "--agent", "true")
    lines = _fatal(proc, f"fatal: prompt file '{tmp_path / 'bad.md'}' is not UTF-8 text: byte 0xff at offset 7")
    assert lines[1] == "hint: save it as UTF-8, e.g. with: iconv -f latin1 -t utf-8"
    assert project.snapshot() == before
    assert not project.worktrees.exists()


def test_prompt_on_stdin_that_is_not_utf8(project: Project) -> None:
    proc = subprocess_bytes(project, ["git", "agent-spawn", "1", "--prompt-file", "-", "--no-agent"], b"\xe9t\xe9\n")
    assert proc.returncode == 128, proc.stderr
    assert proc.stderr.splitlines()[0] == \
        "fatal: the prompt on standard input is not UTF-8 text: byte 0xe9 at offset 0"


def subprocess_bytes(project: Project, argv: list[str], data: bytes):  # type: ignore[no-untyped-def]
    import subprocess

    proc = subprocess.run(argv, cwd=project.path, input=data, capture_output=True, timeout=60)
    return subprocess.CompletedProcess(argv, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


@pytest.mark.parametrize("how", ["file", "stdin"])
def test_nul_in_a_prompt_is_refused(project: Project, tmp_path: Path, how: str) -> None:
    data = b"ti\0tle\nbody\n"
    before = project.snapshot()
    if how == "file":
        (tmp_path / "nul.md").write_bytes(data)
        proc = project.agent("spawn", "1", "--prompt-file", str(tmp_path / "nul.md"), "--agent", "true")
        what = f"prompt file '{tmp_path / 'nul.md'}'"
    else:
        proc = subprocess_bytes(project, ["git", "agent-spawn", "1", "--prompt-file", "-", "--agent", "true"], data)
        what = "the prompt on standard input"
    lines = _fatal(proc, f"fatal: {what} holds a NUL byte (at offset 2)")
    assert lines[1] == "hint: a NUL cannot be passed to an agent: remove it (for a file: tr -d '\\000')"
    assert project.snapshot() == before


def test_prompt_template_that_is_not_utf8(project: Project, tmp_path: Path) -> None:
    (tmp_path / "tmpl.md").write_bytes(b"{prompt}\n\x80\n")
    project.git("config", "agent.promptTemplate", str(tmp_path / "tmpl.md"))
    _fatal(project.agent("spawn", "1", "--prompt", "x"),
           f"fatal: agent.promptTemplate '{tmp_path / 'tmpl.md'}' is not UTF-8 text: byte 0x80 at offset 9")


def test_task_file_that_is_not_utf8(project: Project, tmp_path: Path) -> None:
    tf = tmp_path / "tasks.toml"
    tf.write_bytes(b'[[task]]\nid = "1"\nprompt = "caf\xe9"\n')
    before = project.snapshot()
    for verb in ("run", "queue"):
        args = (str(tf),) if verb == "run" else ("push", str(tf))
        lines = _fatal(project.agent(verb, *args), f"fatal: {tf}: not UTF-8 text: an invalid byte at offset 31")
        assert lines[1] == "hint: save the task file as UTF-8, e.g. with: iconv -f latin1 -t utf-8"
    assert project.snapshot() == before


def test_task_files_prompt_file_that_is_not_utf8_or_holds_nul(project: Project, tmp_path: Path) -> None:
    (tmp_path / "bad.md").write_bytes(b"\xff\n")
    (tmp_path / "nul.md").write_bytes(b"a\0b\n")
    tf = tmp_path / "tasks.toml"
    before = project.snapshot()
    tf.write_text('agent = "true"\n[[task]]\nid = "1"\nprompt_file = "bad.md"\n')
    _fatal(project.agent("run", str(tf)),
           f"fatal: {tf}: task 1: prompt_file 'bad.md' is not UTF-8 text: byte 0xff at offset 0")
    tf.write_text('agent = "true"\n[[task]]\nid = "1"\nprompt_file = "nul.md"\n')
    _fatal(project.agent("run", str(tf)), f"fatal: {tf}: task 1: prompt_file 'nul.md' holds a NUL byte (at offset 1)")
    tf.write_text('agent = "true"\n[[task]]\nid = "1"\nprompt = "a\\u0000b"\n')
    _fatal(project.agent("run", str(tf)), f"fatal: {tf}: 'prompt' holds a NUL byte (at offset 1)")
    assert project.snapshot() == before


# -- agent.link / agent.copy into the git directory ---------------------------------------------------

@pytest.mark.parametrize("key, value, where", [
    ("agent.link", ".git/config", "inside the git directory"),
    ("agent.link", ".git", "inside the git directory"),
    ("agent.copy", "./.git/hooks/*", "inside the git directory"),
    ("agent.link", "../elsewhere", "outside the main worktree"),
    ("agent.copy", "/etc/passwd", "outside the main worktree"),
])
def test_copy_or_link_of_the_git_directory_is_refused(project: Project, key: str, value: str, where: str) -> None:
    project.git("config", key, value)
    before = project.snapshot()
    lines = _fatal(project.agent("spawn", "1", "--prompt", "x", "--agent", "true"),
                   f"fatal: {key} '{value}' names a path {where}")
    assert lines[1].startswith("hint: name files ")
    assert lines[1].endswith(f"remove this value with: git config --fixed-value --unset {key} '{value}'")
    assert project.snapshot() == before
    assert project.git("branch", "--list", "task-*") == ""


def test_a_glob_never_links_the_git_directory(project: Project) -> None:
    (project.path / ".gitignore").write_text("cache/\n")
    (project.path / "cache").mkdir()
    (project.path / "cache" / "config").write_text("built\n")
    project.git("add", ".gitignore")
    project.git("commit", "-qm", "ignore")
    project.git("config", "agent.link", "**/config")
    project.ok("spawn", "1", "--prompt", "x", "--no-agent")
    wt = project.worktrees / "task-1"
    assert (wt / "cache" / "config").is_symlink()
    assert (wt / ".git").is_file() and not (wt / ".git").is_symlink()
    assert project.git("status", "--porcelain", cwd=wt) == ""


# -- run --resume after a kill between recording a task and making its worktree -----------------------

def _git_call(project: Project, tmp_path: Path, argv: list[str], pattern: str) -> int:
    """The number of the first git call of `argv` whose trace line holds `pattern` (for GIT_AGENTS_TEST_KILL_AFTER)."""
    trace = tmp_path / "trace.txt"
    run(argv, project.path, env={"GIT_AGENTS_TRACE": str(trace)})
    calls = [line for line in trace.read_text().splitlines() if line.startswith("trace: git-agents:")]
    return next(n for n, line in enumerate(calls, 1) if pattern in line)


@pytest.mark.parametrize("before", ["git worktree add", "git reset --hard"])
def test_resume_after_a_kill_before_the_worktree_is_made(project: Project, tmp_path: Path,
                                                          committing_agent: Path, before: str) -> None:
    tf = tmp_path / "tasks.toml"
    tf.write_text(f'agent = "{committing_agent}"\n[[task]]\nid = "1"\nprompt = "one"\n')
    scratch = Project(tmp_path / "scratch")
    run(["git", "clone", "-q", str(project.path), str(scratch.path)], tmp_path, check=True)
    n = _git_call(scratch, tmp_path, ["git", "agent-run", str(tf)], before)
    killed = project.agent("run", str(tf), env={"GIT_AGENTS_TEST_KILL_AFTER": str(n)})
    assert killed.returncode != 0
    assert json.loads(project.ok("status", "--json").stdout)["tasks"][0]["id"] == "1"
    resumed = project.agent("run", "--resume", str(tf))
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert project.git("log", "--format=%s", "-1") == "feat: Task 1 - one"
    assert (project.path / "file-1.txt").read_text() == "work of task 1\n"
    assert project.git("ls-tree", "--name-only", "HEAD").splitlines() == ["README", "file-1.txt", "shared.txt"]
    assert (project.path / "README").exists()


# -- a full disk while writing the prompt --------------------------------------------------------------

def test_disk_full_while_writing_the_prompt(project: Project, tmp_path: Path) -> None:
    import subprocess

    agents = project.path / ".git" / "agents"
    agents.mkdir(exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(agents)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs is not permitted here (needs root)")
    try:
        (tmp_path / "big.md").write_text("a big task\n" + "x" * 200_000 + "\n")
        proc = project.agent("spawn", "1", "--prompt-file", str(tmp_path / "big.md"), "--agent", "true")
        prompt = agents / "tasks" / "1" / "prompt.md"
        lines = _fatal(proc, f"fatal: cannot write the prompt of task 1 to {prompt}: No space left on device")
        assert lines[1] == ("hint: free some space, then remove the task with: git agent-clean 1"
                            " (or continue a run with: git agent-run --resume <taskfile>)")
        assert not prompt.exists()  # no prompt cut short for an agent to read
        assert project.agent("clean", "1").returncode == 0
    finally:
        subprocess.run(["umount", str(agents)], check=True)
    assert project.git("branch", "--list", "task-*") == ""


def test_a_python_without_the_dependencies_gets_a_fatal_not_a_traceback(project: Project) -> None:
    # -S: no site-packages, so plumbum cannot be imported (as when bin/ is run by another Python)
    proc = run([sys.executable, "-S", str(BIN / "git-agent-status")], project.path)
    assert proc.returncode == 128
    assert proc.stderr.startswith("fatal: plumbum, which git-agents runs git with, cannot be imported by ")
    assert "Traceback" not in proc.stderr
    assert "hint: install git-agents with that Python" in proc.stderr


def test_pool_claim_prompt_on_stdin_that_is_not_utf8_is_refused_as_spawn_refuses_it(project: Project) -> None:
    """Issue 21: `pool claim --task` read standard input as text and ended in a traceback, leaving the
    task recorded and the slot claimed; it starts a task through the same call as spawn now."""
    project.ok("pool", "create", "1")
    before = project.snapshot()
    for argv in (["git", "agent-pool", "claim", "--task", "7", "--prompt-file", "-"],
                 ["git", "agent-spawn", "7", "--prompt-file", "-", "--no-agent"]):
        proc = subprocess_bytes(project, argv, b"fix \xff bug\n")
        assert proc.returncode == 128, proc.stderr
        assert "Traceback" not in proc.stderr
        assert proc.stderr.splitlines() == [
            "fatal: the prompt on standard input is not UTF-8 text: byte 0xff at offset 4",
            "hint: save it as UTF-8, e.g. with: iconv -f latin1 -t utf-8"], proc.stderr
        assert project.snapshot() == before  # no task recorded, no slot claimed
    assert project.agent("status").stdout.startswith("No tasks.")
