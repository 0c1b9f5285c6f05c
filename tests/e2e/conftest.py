"""Fixtures of the end-to-end suite: the pinned real CLIs, a hermetic home, no network but loopback.

Marked `e2e` (run alone with `python -m pytest -m e2e`, leave out with `-m 'not e2e'`). The
CLIs are installed on first use at their pins (tests/e2e/pins.py) into
$GIT_AGENTS_E2E_PREFIX (default ~/.cache/git-agents-e2e); `python -m tests.e2e.install`
installs them ahead of time.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from . import install


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/e2e is marked e2e."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send any proxied request to a closed loopback port: nothing leaves this machine."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture(autouse=True)
def home_outside_tmpdir(sealed_env: None, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The hermetic HOME, moved out of TMPDIR (into the CLIs' prefix): codex refuses to make its
    helper binaries when its home is under TMPDIR, and with bubblewrap installed every shell call
    it makes then fails (`bwrap: execvp codex-linux-sandbox`) while it still exits 0."""
    import shutil
    import tempfile

    homes = install.prefix() / "homes"
    tmp = os.path.realpath(tempfile.gettempdir())
    if (os.path.realpath(homes) + os.sep).startswith(tmp.rstrip(os.sep) + os.sep):
        pytest.fail(f"GIT_AGENTS_E2E_PREFIX ({install.prefix()}) is under TMPDIR ({tmp}): codex cannot run"
                    " with its home there; point it elsewhere")
    homes.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="home-", dir=homes))
    sealed = Path(os.environ["HOME"])
    for entry in sealed.iterdir():  # what the sealed environment put there (~/.gitconfig)
        if entry.is_file():
            shutil.copy2(entry, home / entry.name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    yield
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(autouse=True, params=["worktree", "clone", "sandbox"])
def isolation(request: pytest.FixtureRequest, home_outside_tmpdir: None) -> str:
    """Every end-to-end test runs in each isolation (agent.isolation in the hermetic ~/.gitconfig):
    each preset works in a guarded worktree, in a clone of its own and in the bubblewrap sandbox."""
    import shutil
    import subprocess

    mode = str(request.param)
    if mode == "sandbox" and not shutil.which("bwrap"):
        pytest.skip("bubblewrap (bwrap) is not installed")
    subprocess.run(["git", "config", "--global", "agent.isolation", mode], check=True)
    return mode


@pytest.fixture
def cli_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    """cli_path("claude") -> the pinned executable, installed if needed, put alone on PATH.

    Alone: a PyPI CLI's bin/ also holds its virtual environment's python3, which must not
    become the python3 that runs bin/git-agent-*.
    """

    def get(name: str) -> Path:
        if not install.installed(name):
            install.install([name])
        exe = install.executable(name)
        only = tmp_path / "cli-bin"
        only.mkdir(exist_ok=True)
        (only / exe.name).symlink_to(exe)
        monkeypatch.setenv("PATH", f"{only}{os.pathsep}{os.environ['PATH']}")
        return exe

    return get
