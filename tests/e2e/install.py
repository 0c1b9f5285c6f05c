"""Install the pinned agent CLIs (pins.py) into one prefix, once: `python -m tests.e2e.install`.

npm packages go to <prefix>/npm (executables in <prefix>/npm/node_modules/.bin), PyPI ones to
their own virtual environment <prefix>/venv-<name> so their dependencies never meet ours.
The prefix is $GIT_AGENTS_E2E_PREFIX, else ~/.cache/git-agents-e2e. A CLI already installed at
its pinned version is not installed again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .pins import PINS

# Read once, at import: the tests' sealed environment later moves HOME and drops GIT_* variables.
_PREFIX = Path(os.environ.get("GIT_AGENTS_E2E_PREFIX") or Path.home() / ".cache" / "git-agents-e2e")
# ... and the environment installs run in: the suite's loopback-only proxies must not apply to the registries.
_ENV = dict(os.environ)


def prefix() -> Path:
    """Where the pinned CLIs live."""
    return _PREFIX


def executable(name: str) -> Path:
    """The path of a pinned CLI's executable (installed or not)."""
    registry, _spec, exe = PINS[name]
    if registry == "npm":
        return prefix() / "npm" / "node_modules" / ".bin" / exe
    return prefix() / f"venv-{name}" / "bin" / exe


def _stamp(name: str) -> Path:
    return prefix() / f".installed-{name}"


def installed(name: str) -> bool:
    """Whether the pinned version of `name` is installed."""
    stamp = _stamp(name)
    return executable(name).exists() and stamp.exists() and stamp.read_text() == PINS[name][1]


def install(names: list[str] | None = None) -> None:
    """Install the named CLIs (default: all) that are not installed at their pins.

    One installer at a time (the test workers may all ask at once): the others wait, then find
    the CLIs installed.
    """
    import fcntl

    prefix().mkdir(parents=True, exist_ok=True)
    with open(prefix() / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _install([n for n in (names or list(PINS)) if not installed(n)])


def _install(wanted: list[str]) -> None:
    npm = [n for n in wanted if PINS[n][0] == "npm"]
    if npm:
        (prefix() / "npm").mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error",
                        "--prefix", str(prefix() / "npm"), *(PINS[n][1] for n in npm)], check=True, env=_ENV)
    for name in wanted:
        if PINS[name][0] == "pypi":
            venv = prefix() / f"venv-{name}"
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=_ENV)
            subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", PINS[name][1]],
                           check=True, env=_ENV)
    for name in wanted:
        _stamp(name).write_text(PINS[name][1])


if __name__ == "__main__":
    install(sys.argv[1:] or None)
