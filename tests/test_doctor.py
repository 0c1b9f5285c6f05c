"""git agent doctor: every check passes on a ready machine, and each has a way to make it fail."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from git_agents.core.repo import Repo
from git_agents.lifecycle import doctor

from .conftest import Project, run, write_script

BIN = Path(__file__).resolve().parent.parent / "bin"


def _path(tmp_path: Path, *tools: str, fakes: dict[str, str] | None = None) -> str:
    """A PATH of bin/, git, python3 and `tools` (symlinked from this machine) and the scripts `fakes`."""
    only = Path(tempfile.mkdtemp(prefix="only-bin-", dir=tmp_path))
    fakes = fakes or {}
    for tool in ("git", "sh", *tools):
        found = shutil.which(tool)
        if found and tool not in fakes:
            (only / tool).symlink_to(found)
    write_script(only / "python3", f'exec {sys.executable} "$@"')  # a symlink would leave its venv
    for name, body in fakes.items():
        write_script(only / name, body)
    return f"{BIN}{os.pathsep}{only}"


def _checks(project: Project, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, dict[str, str]]]:
    proc = project.agent("doctor", "--json", *args, env=env)
    assert proc.stderr == "", proc.stderr
    data = json.loads(proc.stdout)
    assert data["ok"] == (proc.returncode == 0)
    return proc.returncode, {c["name"]: c for c in data["checks"]}


def test_the_report_has_a_line_per_check_with_what_to_do(project: Project) -> None:
    proc = project.agent("doctor", env={"LC_ALL": "C.UTF-8"})
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("ok    git: git 2.")
    names = [line.split(":")[0].split(None, 1)[1] for line in lines if not line.startswith("      ->")]
    for name in ("git", "preset claude", "preset codex", "preset gemini", "preset aider", "preset opencode",
                 "claude dialogs", "tmux", "bubblewrap", "codex sandbox", "inotify", "disk", "locale",
                 "man pages", "submodule.recurse", "hooks"):
        assert name in names, proc.stdout
    # a warning or failure is followed by what to do
    for i, line in enumerate(lines):
        if line.startswith(("warn", "fail")):
            assert lines[i + 1].startswith("      -> "), proc.stdout


def test_an_old_git_fails(project: Project, tmp_path: Path) -> None:
    real = shutil.which("git")
    fakes = {"git": f'[ "$1" = version ] && {{ echo "git version 2.30.1"; exit 0; }}; exec {real} "$@"'}
    # run directly: through git, git's own exec-path (with its git) would come first on PATH
    proc = run([str(BIN / "git-agent-doctor")], project.path, env={"PATH": _path(tmp_path, fakes=fakes)})
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == ["fail  git: git-agents needs git 2.39 or later; this is git 2.30.1",
                                        "      -> install git 2.39 or newer (https://git-scm.com/downloads), "
                                        "or put one first on PATH"]


def test_a_python_without_plumbum_says_so(project: Project, tmp_path: Path) -> None:
    bare = tmp_path / "bare-venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(bare)], tmp_path)  # no plumbum in it
    proc = run([str(bare / "bin" / "python"), str(BIN / "git-agent-doctor")], project.path)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[:2] == [
        f"fail  git: plumbum, which git-agents runs git with, cannot be imported by {bare / 'bin' / 'python'}",
        "      -> install git-agents with that Python (pip install .), or put the Python it was installed with "
        "first on PATH"]


def test_a_cli_the_repository_uses_must_be_there_and_logged_in(project: Project, tmp_path: Path) -> None:
    code, checks = _checks(project, env={"PATH": _path(tmp_path)})
    assert code == 0 and checks["preset claude"]["level"] == "warn"  # not used here: only a warning
    project.git("config", "agent.command", "claude")
    code, checks = _checks(project, env={"PATH": _path(tmp_path)})
    assert code == 1 and checks["preset claude"] == {
        "name": "preset claude", "level": "fail", "found": "claude is not on PATH (this repository uses it)",
        "fix": "install it to use --agent claude (see README, Agent presets)"}
    fakes = {"claude": 'echo "2.1.328 (Claude Code)"'}
    code, checks = _checks(project, env={"PATH": _path(tmp_path, fakes=fakes), "ANTHROPIC_API_KEY": ""})
    assert code == 1 and checks["preset claude"]["found"] == \
        "claude 2.1.328 (Claude Code); not logged in, no API settings"
    secret = "sk-ant-secret-value-0123456789abcdef"
    proc = project.agent("doctor", "--json", env={"PATH": _path(tmp_path, fakes=fakes), "ANTHROPIC_API_KEY": secret})
    assert secret not in proc.stdout and secret[-20:] not in proc.stdout
    claude = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}["preset claude"]
    assert (claude["level"], claude["found"]) == ("ok", "claude 2.1.328 (Claude Code); access from ANTHROPIC_API_KEY")


def test_claudes_first_run_dialogs_must_be_answered_for_the_repository(project: Project, tmp_path: Path) -> None:
    key = "sk-ant-secret-value-0123456789abcdef"
    env = {"PATH": _path(tmp_path, fakes={"claude": "echo 2.1.328"}), "ANTHROPIC_API_KEY": key}
    _, checks = _checks(project, env=env)
    assert checks["claude dialogs"]["level"] == "warn"
    assert checks["claude dialogs"]["found"] == ("not answered: onboarding, trust this folder, use the custom API "
                                                 "key, bypass-permissions mode (claude --tmux would stop there)")
    home = Path(os.environ["HOME"])
    (home / ".claude.json").write_text(json.dumps({
        "hasCompletedOnboarding": True, "customApiKeyResponses": {"approved": [key[-20:]], "rejected": []},
        "projects": {str(project.path.resolve()): {"hasTrustDialogAccepted": True}}}))
    (home / ".claude").mkdir()
    (home / ".claude" / "settings.json").write_text(json.dumps({"skipDangerousModePermissionPrompt": True}))
    _, checks = _checks(project, env=env)
    assert (checks["claude dialogs"]["level"], checks["claude dialogs"]["found"]) == \
        ("ok", "answered for this repository")


def test_tmux_is_needed_when_agent_tmux_is_on(project: Project, tmp_path: Path) -> None:
    code, checks = _checks(project, env={"PATH": _path(tmp_path)})
    assert checks["tmux"]["level"] == "warn"
    project.git("config", "agent.tmux", "true")
    code, checks = _checks(project, env={"PATH": _path(tmp_path)})
    assert code == 1 and checks["tmux"]["level"] == "fail" and "apt-get install tmux" in checks["tmux"]["fix"]


def test_bubblewrap_is_needed_for_the_sandbox_mode(project: Project, tmp_path: Path) -> None:
    code, checks = _checks(project, env={"PATH": _path(tmp_path)})
    assert code == 0 and checks["bubblewrap"]["level"] == "warn"
    assert checks["bubblewrap"]["found"] == "bwrap is not on PATH: --isolation=sandbox and codex's sandbox cannot start"
    project.git("config", "agent.isolation", "sandbox")
    code, checks = _checks(project, env={"PATH": _path(tmp_path)})
    assert code == 1 and checks["bubblewrap"]["level"] == "fail"
    assert checks["bubblewrap"]["found"].endswith("(agent.isolation is sandbox)")
    project.git("config", "--unset", "agent.isolation")
    failing = _path(tmp_path, fakes={"bwrap": "echo 'bwrap: No permissions to create new namespace' >&2; exit 1"})
    _, checks = _checks(project, env={"PATH": failing})
    assert checks["bubblewrap"]["found"] == \
        "bwrap cannot make a sandbox here: bwrap: No permissions to create new namespace"


def test_codex_home_under_tmpdir_fails(project: Project, tmp_path: Path) -> None:
    # a stand-in codex whose sandbox runs the command it is given
    path = _path(tmp_path, fakes={"codex": 'if [ "$1" = sandbox ]; then shift 2; exec "$@"; fi; echo codex 0.169.0'})
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    code, checks = _checks(project, env={"PATH": path, "TMPDIR": str(tmp), "CODEX_HOME": str(tmp / "codex")})
    assert code == 1 and checks["codex sandbox"]["level"] == "fail"
    assert checks["codex sandbox"]["fix"] == "set CODEX_HOME to a directory outside $TMPDIR (e.g. ~/.codex)"
    _, checks = _checks(project, env={"PATH": path, "TMPDIR": str(tmp), "CODEX_HOME": str(tmp_path / "codex")})
    assert checks["codex sandbox"]["level"] == "ok"
    broken = _path(tmp_path, fakes={"codex": 'if [ "$1" = sandbox ]; then echo "bwrap: execvp codex-linux-sandbox" >&2;'
                                             ' exit 0; fi; echo codex-cli 0.169.0'})
    code, checks = _checks(project, env={"PATH": broken, "TMPDIR": str(tmp), "CODEX_HOME": str(tmp_path / "codex")})
    assert code == 1 and checks["codex sandbox"]["found"] == (
        "a command in codex's sandbox did not run (bwrap: execvp codex-linux-sandbox): its agents' shell calls "
        "would fail while codex exits 0")


def test_inotify_short_of_instances_or_watches_warns() -> None:
    assert doctor.inotify(lambda: (128, 65536), lambda: (10, 100)).level == "ok"
    short = doctor.inotify(lambda: (128, 65536), lambda: (124, 100))
    assert (short.level, short.found) == (
        "warn", "4 of 128 instances and 65436 of 65536 watches free: worktrees will not be sealed "
                "(status checks them in full)")
    assert doctor.inotify(lambda: (128, 8192), lambda: (1, 4000)).level == "warn"


def test_little_disk_space_beside_the_worktrees(project: Project) -> None:
    root = str(project.path.parent / "project-worktrees" / "not-yet")
    assert doctor.disk(root, lambda p: 50 << 30).level == "ok"
    low = doctor.disk(root, lambda p: 500 << 20)
    assert low.level == "warn" and low.found.startswith(f"0.5 GiB free at {project.path.parent}")
    assert doctor.disk(root, lambda p: 10 << 20).level == "fail"


def test_a_locale_that_is_not_utf8_warns(project: Project) -> None:
    _, checks = _checks(project, env={"LC_ALL": "C"})
    assert checks["locale"] == {"name": "locale", "level": "warn",
                                "found": "the locale (C) is not a UTF-8 one: agents may garble non-ASCII text",
                                "fix": "set LANG=C.UTF-8 (or another UTF-8 locale)"}
    _, checks = _checks(project, env={"LC_ALL": "en_US.UTF-8"})
    assert checks["locale"]["level"] == "ok"


def test_man_pages_man_cannot_find_are_said(project: Project, tmp_path: Path) -> None:
    _, checks = _checks(project, env={"PATH": _path(tmp_path, fakes={"man": "exit 16"})})
    assert checks["man pages"]["level"] == "warn" and "MANPATH" in checks["man pages"]["fix"]
    _, checks = _checks(project, env={"PATH": _path(tmp_path, fakes={"man": "echo /usr/share/man/man1/x.1"})})
    assert checks["man pages"] == {"name": "man pages", "level": "ok", "found": "/usr/share/man/man1/x.1", "fix": ""}


def test_submodule_recurse_and_hooks_git_agents_runs_differently(project: Project) -> None:
    _, checks = _checks(project)
    assert checks["submodule.recurse"]["level"] == "ok" and checks["hooks"]["level"] == "ok"
    project.git("config", "submodule.recurse", "true")
    hook = project.path / ".git" / "hooks" / "pre-merge-commit"
    write_script(hook, "exit 0")
    _, checks = _checks(project)
    assert checks["submodule.recurse"]["level"] == "warn"
    assert checks["hook pre-merge-commit"] == {
        "name": "hook pre-merge-commit", "level": "warn",
        "found": f"{hook}: merges are made with merge-tree and commit-tree: it does not run (use agent.mergeCheck)",
        "fix": ""}
    assert "hooks" not in checks


def test_the_library_finds_what_the_repository_wants(project: Project) -> None:
    project.git("config", "agent.resolveAgent", "codex")
    project.git("config", "agent.preset.gemini", "gemini -y")
    assert doctor.wanted(Repo.discover(str(project.path))) == {"codex", "gemini"}
