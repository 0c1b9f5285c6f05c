"""Test-only: the crash hook, installed into every git-agents process the tests start.

The test suite puts this directory on PYTHONPATH (tests/conftest.py), so Python imports this
module at start-up; production never does, and its git gateway runs no hook at all.

GIT_AGENTS_TEST_KILL_AFTER=<n>[:<signal>] signals the process before its n-th git call (KILL
unless named, e.g. `7:INT` as Ctrl-C would), so a test can interrupt a command at an exact
point, between two git calls, and prove it recovers.

GIT_AGENTS_TEST_KILL_BEFORE_WRITE=<key> kills it (SIGKILL) just before it writes a config
record that sets or unsets <key> (task records are written without a git call).

GIT_AGENTS_TEST_KILL_AT_GIT=<words> kills it (SIGKILL) before its first git call whose
command line (joined by spaces) contains <words>.

GIT_AGENTS_TEST_KILL_AFTER_OS=<function>:<suffix> kills it (SIGKILL) right after a call of
os.<function> (rename, unlink, rmdir) whose last path argument ends with <suffix>: a point
between two file operations with no git call between them (e.g. `rename:/task-1`, a pooled
clone's slot directory just renamed into place, its `.git` not yet swapped).
"""

from __future__ import annotations

import os
import sys

_SPEC = os.environ.get("GIT_AGENTS_TEST_KILL_AFTER", "")


def _install(spec: str) -> None:
    limit, _, name = spec.partition(":")
    if not limit.isdigit():
        return
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
    if root not in sys.path:
        sys.path.insert(0, root)
    import signal

    from git_agents.core.git import add_call_hook

    calls = 0

    def kill(argv: list[str]) -> None:
        nonlocal calls
        calls += 1
        if calls == int(limit):
            sys.stdout.flush()
            sys.stderr.flush()
            from git_agents.core.configfile import WRITING

            with WRITING:  # between two config writes, as a one-thread process always is at a git call
                os.kill(os.getpid(), getattr(signal, f"SIG{name or 'KILL'}"))

    add_call_hook(kill)


def _install_write_kill(key: str) -> None:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
    if root not in sys.path:
        sys.path.insert(0, root)
    import signal

    from git_agents.core.configfile import WRITE_HOOKS

    def kill(keys: list[str]) -> None:
        if key in (k.lower() for k in keys):
            sys.stdout.flush()
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    WRITE_HOOKS.append(kill)


def _install_git_kill(words: str) -> None:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
    if root not in sys.path:
        sys.path.insert(0, root)
    import signal

    from git_agents.core.git import add_call_hook

    def kill(argv: list[str]) -> None:
        if words in " ".join(argv):
            sys.stdout.flush()
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    add_call_hook(kill)


def _install_os_kill(spec: str) -> None:
    import signal

    name, _, suffix = spec.partition(":")
    original = getattr(os, name)

    def call(*args: object, **kw: object) -> object:
        result = original(*args, **kw)
        last = os.fsdecode(args[-1]) if args and isinstance(args[-1], (str, bytes)) else ""
        if suffix and last.endswith(suffix):
            sys.stdout.flush()
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(os, name, call)


if _SPEC:
    _install(_SPEC)
if os.environ.get("GIT_AGENTS_TEST_KILL_AT_GIT"):
    _install_git_kill(os.environ["GIT_AGENTS_TEST_KILL_AT_GIT"])
if os.environ.get("GIT_AGENTS_TEST_KILL_AFTER_OS"):
    _install_os_kill(os.environ["GIT_AGENTS_TEST_KILL_AFTER_OS"])
if os.environ.get("GIT_AGENTS_TEST_KILL_BEFORE_WRITE"):
    _install_write_kill(os.environ["GIT_AGENTS_TEST_KILL_BEFORE_WRITE"].lower())
