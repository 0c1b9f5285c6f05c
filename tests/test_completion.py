"""Bash completion through git's own completion script, with synthetic COMP_WORDS."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

from .conftest import ROOT, Project, run

GIT_COMPLETION = Path("/usr/share/bash-completion/completions/git")

pytestmark = pytest.mark.skipif(not GIT_COMPLETION.exists(), reason="git's bash completion is not installed")


def complete(cwd: Path, *words: str, direct: bool = False) -> list[str]:
    """What bash offers for the command line `words` (the last word is the one being completed)."""
    line = " ".join(words)
    function = "__git_wrap_" + words[0].replace("-", "_") if direct else "__git_wrap__git_main"
    script = f"""
        . {GIT_COMPLETION}
        . {ROOT / 'completion' / 'git-agent'}
        COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})
        COMP_CWORD={len(words) - 1}
        COMP_LINE={shlex.quote(line)}
        COMP_POINT={len(line)}
        COMPREPLY=()
        {function}
        printf '%s\\n' "${{COMPREPLY[@]}}"
    """
    proc = run(["bash", "--norc", "--noprofile", "-c", script], cwd)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return sorted(w for w in proc.stdout.split("\n") if w)


@pytest.fixture
def two_tasks(project: Project) -> Project:
    project.ok("spawn", "48", "--prompt", "one")
    project.ok("spawn", "fix-2", "--prompt", "two")
    project.git("branch", "feature")
    return project


def test_merge_completes_task_ids(two_tasks: Project) -> None:
    assert complete(two_tasks.path, "git", "agent-merge", "") == ["48 ", "fix-2 "]
    assert complete(two_tasks.path, "git", "agent-merge", "f") == ["fix-2 "]
    assert complete(two_tasks.path, "git", "agent-merge", "48", "") == ["48 ", "fix-2 "]


def test_merge_completes_its_options(two_tasks: Project) -> None:
    assert complete(two_tasks.path, "git", "agent-merge", "--") == \
        ["--abort ", "--all ", "--check-batch ", "--check=", "--color=", "--continue ", "--dry-run ",
         "--interactive ", "--no-check ", "--no-verify ", "--quiet ", "--rebase ", "--remote=", "--resolve=",
         "--style=", "--trust-unsigned ", "--verbose ", "--verify-signatures "]


def test_option_values_complete_by_kind(two_tasks: Project) -> None:
    two_tasks.git("tag", "v1")
    assert complete(two_tasks.path, "git", "agent-spawn", "--base", "") == \
        ["feature ", "main ", "task-48 ", "task-fix-2 "]  # local branches only, no tag
    assert complete(two_tasks.path, "git", "agent-spawn", "--base=fe") == ["feature "]
    assert complete(two_tasks.path, "git", "agent-status", "--color=") == ["always ", "auto ", "never "]
    assert complete(two_tasks.path, "git", "agent-spawn", "--title", "") == []  # free text
    assert complete(two_tasks.path, "git", "agent-spawn", "") == []  # a new id: nothing to offer


def test_umbrella_completes_commands_then_their_arguments(two_tasks: Project) -> None:
    from git_agents.cli.dispatch import COMMANDS

    assert complete(two_tasks.path, "git", "agent", "") == sorted(f"{v} " for v in [*COMMANDS, "completion"])
    assert complete(two_tasks.path, "git", "agent", "merge", "") == ["48 ", "fix-2 "]
    assert complete(two_tasks.path, "git", "agent", "completion", "") == ["bash ", "zsh "]


def test_direct_invocation_completes_too(two_tasks: Project) -> None:
    assert complete(two_tasks.path, "git-agent-clean", "", direct=True) == ["48 ", "fix-2 "]


def test_no_tasks_no_completions(project: Project) -> None:
    assert complete(project.path, "git", "agent-merge", "") == []


def test_pool_slots_come_from_refs_and_worktrees(project: Project, tmp_path: Path) -> None:
    head = project.git("rev-parse", "HEAD")
    project.git("update-ref", "refs/agents/pool/pool-1", head)
    project.git("worktree", "add", "-q", "--detach", str(tmp_path / "pool-2"))
    script = f". {GIT_COMPLETION}; . {ROOT / 'completion' / 'git-agent'}; __git_agent_slots | sort -u"
    proc = run(["bash", "--norc", "-c", script], project.path)
    assert proc.stdout.split() == ["pool-1", "pool-2"]


ZSH = shutil.which("zsh")


def zsh_complete(cwd: Path, *lines: str) -> list[list[str]]:
    """What zsh (its own compinit and _git, plus our script) offers on TAB at the end of each line."""
    assert ZSH
    script = ROOT / "completion" / "_git-agent.zsh"
    proc = run([ZSH, "-f", str(Path(__file__).parent / "zsh_capture.zsh"), str(script), *lines], cwd, timeout=60)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return [line.split() for line in proc.stdout.splitlines()]


@pytest.mark.skipif(ZSH is None, reason="zsh is not installed (.ci/run installs it)")
def test_zsh_completes_through_its_own_git_completion(two_tasks: Project) -> None:
    from git_agents.cli.dispatch import COMMANDS

    assert zsh_complete(two_tasks.path, "git agent-merge ", "git agent-merge --", "git agent-spawn --base=fe",
                        "git agent-status --color=", "git agent ", "git agent merge ", "git-agent-clean ",
                        "git agent completion ") == [
        ["48", "fix-2"],
        ["--abort", "--all", "--check-batch", "--check", "--color", "--continue", "--dry-run", "--interactive",
         "--no-check", "--no-verify", "--quiet", "--rebase", "--remote", "--resolve", "--style",
         "--trust-unsigned", "--verbose", "--verify-signatures"],
        ["feature"],
        ["always", "auto", "never"],
        sorted([*COMMANDS, "completion"]),
        ["48", "fix-2"],
        ["48", "fix-2"],
        ["bash", "zsh"],
    ]
