"""Every command behaves like a git command: -h, usage errors, fatal/error/hint, the umbrella `git agent`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from git_agents.cli.completion import bash_script
from git_agents.cli.completion_zsh import zsh_script
from git_agents.cli.dispatch import (
    COMMANDS,
    build_parser,
    documented_actions,
    load,
    option_label,
    usage_lines,
)

from .conftest import ROOT, Project, run


@pytest.mark.parametrize("verb", list(COMMANDS))
def test_dash_h_prints_git_style_usage_on_stdout(verb: str, project: Project) -> None:
    proc = project.agent(verb, "-h")
    module = load(verb)
    head = "usage: " + "\n   or: ".join(usage_lines(module.USAGE)) + "\n\n"
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == build_parser(verb, module).format_help()
    assert proc.stdout.startswith(head)
    lines = proc.stdout[len(head):].splitlines()
    for action in documented_actions(build_parser(verb, module)):
        label = "    " + option_label(action)
        assert any(line.startswith(label + " ") or line == label for line in lines), label
        assert all(len(line) - len(line.lstrip()) in (4, 26) for line in lines if line), lines


def test_dash_h_imports_neither_the_command_nor_git_machinery() -> None:
    code = ("import sys, io; sys.stdout = io.StringIO(); from git_agents.cli.dispatch import main; "
            "assert main('spawn', ['-h']) == 0; sys.stdout = sys.__stdout__; "
            "print(sorted(m for m in sys.modules if m.startswith('git_agents') or m in ('subprocess', 'plumbum')))")
    proc = run([sys.executable, "-c", code], ROOT, check=True)
    assert proc.stdout == ("['git_agents', 'git_agents.cli', 'git_agents.cli.dispatch', 'git_agents.cli.help_texts', "
                           "'git_agents.core', 'git_agents.core.errors']\n")


@pytest.mark.parametrize("verb", list(COMMANDS))
def test_unknown_option_is_a_usage_error_with_exit_129(verb: str, project: Project) -> None:
    before = project.snapshot()
    proc = project.agent(verb, "--no-such-option")
    usage = "usage: " + "\n   or: ".join(usage_lines(load(verb).USAGE))
    assert proc.returncode == 129
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: ")
    assert proc.stderr.endswith(usage + "\n")
    assert project.snapshot() == before


@pytest.mark.parametrize("verb", ["merge", "clean", "wait"])
def test_missing_selection_is_a_usage_error_from_run(verb: str, project: Project) -> None:
    proc = project.agent(verb)
    assert proc.returncode == 129
    first, rest = proc.stderr.split("\n", 1)
    assert first.startswith("error: name the tasks")
    assert rest == "usage: " + "\n   or: ".join(usage_lines(load(verb).USAGE)) + "\n"


@pytest.mark.parametrize("verb,args", [("status", []), ("merge", ["--all"]), ("clean", ["--all"]),
                                       ("wait", ["--all"]), ("spawn", ["1"]), ("prompt", ["1"])])
def test_outside_a_repository_is_fatal_with_a_hint(verb: str, args: list[str], tmp_path: Path) -> None:
    proc = run(["git", f"agent-{verb}", *args], tmp_path)
    assert (proc.returncode, proc.stdout) == (128, "")
    assert proc.stderr == ("fatal: not a git repository (or any of the parent directories): .git\n"
                           "hint: run git agent commands inside a git repository (or `git init` one)\n")


def test_unknown_task_is_fatal_with_a_hint(project: Project) -> None:
    proc = project.agent("prompt", "nope")
    assert (proc.returncode, proc.stdout) == (128, "")
    assert proc.stderr == "fatal: no such task: 'nope'\nhint: `git agent-status` lists the tasks\n"


def test_umbrella_lists_every_command(project: Project) -> None:
    proc = run(["git", "agent"], project.path)
    assert (proc.returncode, proc.stderr) == (0, "")
    lines = proc.stdout.splitlines()
    assert lines[0] == "usage: git agent <command> [<args>]"
    width = max(map(len, [*COMMANDS, "completion"]))  # completion, hook, mcp are listed too
    for verb, summary in COMMANDS.items():
        assert f"   {verb.ljust(width)}   {summary}" in lines


def test_umbrella_runs_the_command(project: Project) -> None:
    project.ok("spawn", "7", "--prompt", "do it")
    via_umbrella = run(["git", "agent", "status"], project.path)
    direct = project.agent("status")
    assert (via_umbrella.returncode, via_umbrella.stdout, via_umbrella.stderr) == \
        (direct.returncode, direct.stdout, direct.stderr)
    assert "7" in direct.stdout.splitlines()[1].split()[0]
    bad = run(["git", "agent", "status", "--frob"], project.path)
    assert bad.returncode == 129 and bad.stderr.endswith(
        "usage: git agent-status [--json] [<id>...]\n"
        "   or: git agent-status --watch[=<seconds>] [--exit-when-done] [<id>...]\n")


def test_umbrella_refuses_an_unknown_command(project: Project) -> None:
    proc = run(["git", "agent", "frobnicate"], project.path)
    assert (proc.returncode, proc.stdout) == (129, "")
    assert proc.stderr == "error: 'frobnicate' is not a git agent command\nhint: 'git agent' lists the commands\n"


def test_umbrella_prints_the_completion_scripts(project: Project) -> None:
    bash = run(["git", "agent", "completion", "bash"], project.path)
    assert (bash.returncode, bash.stdout) == (0, bash_script())
    zsh = run(["git", "agent", "completion", "zsh"], project.path)
    assert (zsh.returncode, zsh.stdout) == (0, zsh_script())
    assert "\n_git-agent-merge () {\n" in zsh.stdout
    bad = run(["git", "agent", "completion", "fish"], project.path)
    assert (bad.returncode, bad.stderr) == (129, "usage: git agent completion (bash | zsh)\n")


def test_usage_forms_as_git_writes_them() -> None:
    usage = """\
git agent-pool create <n> [--base <branch>]
   or: git agent-pool claim [--task <id>]
                            [--wait [<seconds>]]
   or: git agent-pool list [--json]"""
    assert usage_lines(usage) == ["git agent-pool create <n> [--base <branch>]",
                                  "git agent-pool claim [--task <id>] [--wait [<seconds>]]",
                                  "git agent-pool list [--json]"]
    assert usage_lines("git agent x\ngit agent y\n") == ["git agent x", "git agent y"]


def test_color_takes_its_value_only_after_equals() -> None:
    parser = build_parser("status", load("status"))
    assert (parser.parse_args(["--color", "48"]).color, parser.parse_args(["--color", "48"]).ids) == ("always", ["48"])
    assert parser.parse_args(["--color=never"]).color == "never"
    assert parser.parse_args([]).color is None
    assert parser.parse_args(["--", "--color"]).ids == ["--color"]


def test_subcommands_get_the_global_options_too() -> None:
    import argparse
    import types

    module = types.ModuleType("fake")
    module.USAGE = "git agent-fake list"  # type: ignore[attr-defined]

    def configure(p: argparse.ArgumentParser) -> None:
        p.add_subparsers(dest="action", required=True).add_parser("list", prog="git agent-fake list")

    module.configure = configure  # type: ignore[attr-defined]
    parser = build_parser("fake", module)
    assert parser.parse_args(["list", "--color"]).color == "always"
    assert parser.parse_args(["--color=never", "list"]).color == "never"
    assert parser.parse_args(["list"]).color is None


def test_optional_values_and_a_command_of_its_own_colour() -> None:
    import argparse
    import types

    module = types.ModuleType("fake")
    module.USAGE = "git agent-fake [--wait [<seconds>]]"  # type: ignore[attr-defined]

    def configure(p: argparse.ArgumentParser) -> None:
        p.add_argument("--wait", nargs="?", const=-1, type=float, metavar="<seconds>", help="wait")
        p.add_argument("--color", action="store_true", help="its own")

    module.configure = configure  # type: ignore[attr-defined]
    parser = build_parser("fake", module)
    labels = [option_label(a) for a in documented_actions(parser)]
    assert labels == ["--wait [<seconds>]", "--color"]
    assert parser.parse_args(["--wait", "5"]).wait == 5
    assert parser.parse_args(["--color"]).color is True
