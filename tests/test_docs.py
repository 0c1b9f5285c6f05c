"""Man pages, completion script and README table: generated from the parsers, never stale, installed by pip."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from git_agents.cli import manpage
from git_agents.cli.dispatch import (
    COMMANDS,
    build_parser,
    documented_actions,
    load,
    option_label,
    subcommands,
)
from git_agents.core.settings import SETTINGS

from .conftest import ROOT, run


def test_generated_files_match_the_committed_ones() -> None:
    assert manpage.stale(str(ROOT)) == [], "regenerate with: python -m git_agents.cli.manpage"


def _man_options(page: str) -> set[str]:
    """The option labels a roff page documents (.TP entries), unescaped."""
    labels = set()
    lines = page.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line == ".TP" and lines[i + 1].startswith("\\fB"):
            text = re.sub(r"\\f[BIR]", "", lines[i + 1]).replace("\\-", "-").replace("\\e", "\\")
            labels.add(text)
    return labels


@pytest.mark.parametrize("verb", list(COMMANDS))
def test_every_option_of_a_command_is_in_its_committed_man_page(verb: str) -> None:
    parser = build_parser(verb, load(verb))
    documented = _man_options((ROOT / "man" / f"git-agent-{verb}.1").read_text())
    parsers = [parser, *subcommands(parser).values()]
    wanted = {option_label(a) for p in parsers for a in documented_actions(p)} | {"-h"}
    assert wanted - documented == set()


def test_option_check_notices_an_undocumented_option() -> None:
    # The check above must be able to fail: a parser with one more option than its page.
    parser = build_parser("prompt", load("prompt"))
    parser.add_argument("--brand-new", metavar="<x>", help="not documented anywhere")
    documented = _man_options((ROOT / "man" / "git-agent-prompt.1").read_text())
    assert {option_label(a) for a in documented_actions(parser)} - documented == {"--brand-new <x>"}


def test_concepts_page_lists_every_setting_command_and_exit_code() -> None:
    page = (ROOT / "man" / "git-agents.7").read_text()
    for s in SETTINGS:
        assert f"\\fB{manpage.esc(s.key)}\\fR" in page
        if s.default:
            assert f"(default: {manpage.esc(s.default)})" in page
    for verb in COMMANDS:
        assert f"\\fBgit\\-agent\\-{verb}\\fR(1)" in page
    for code in ("0", "1", "128", "129"):
        assert f".TP\n\\fB{code}\\fR\n" in page
    for section in ("TASK LIFE CYCLE", "CONFIGURATION", "EXIT STATUS", "ENVIRONMENT", "FILES"):
        assert f".SH {section}\n" in page


def test_readme_table_is_generated_from_settings() -> None:
    readme = (ROOT / "README.md").read_text()
    between = readme.split(manpage.README_BEGIN + "\n", 1)[1].split(manpage.README_END, 1)[0]
    assert between == manpage.settings_table() + "\n"
    assert len(between.splitlines()) == 2 + len(SETTINGS)
    assert manpage.readme_with_table(readme) == readme


def test_man_pages_render_without_warnings() -> None:
    for page in sorted((ROOT / "man").iterdir()):
        proc = run(["man", "--warnings", "-l", str(page)], ROOT, env={"MANPAGER": "cat", "MANWIDTH": "80"})
        assert proc.returncode == 0 and proc.stderr == "", (page.name, proc.stderr)
        assert "SEE ALSO" in proc.stdout


def test_check_mode_reports_a_stale_page(tmp_path: Path) -> None:
    for folder in ("man", "completion"):
        (tmp_path / folder).mkdir()
    (tmp_path / "README.md").write_text((ROOT / "README.md").read_text())
    manpage.write(str(tmp_path))
    assert manpage.stale(str(tmp_path)) == []
    page = tmp_path / "man" / "git-agent-merge.1"
    page.write_text(page.read_text().replace("\\-\\-all", "\\-\\-every"))
    (tmp_path / "man" / "git-agent-gone.1").write_text("old\n")
    assert manpage.stale(str(tmp_path)) == ["man/git-agent-merge.1", "man/git-agent-gone.1"]
    manpage.write(str(tmp_path))
    assert manpage.stale(str(tmp_path)) == []
    assert not (tmp_path / "man" / "git-agent-gone.1").exists()


@pytest.mark.slow
def test_pip_install_puts_man_pages_and_completion_where_man_and_git_find_them(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = run([str(venv / "bin" / "pip"), "install", "-q", "--no-deps", str(ROOT)], tmp_path, timeout=300)
    assert pip.returncode == 0, pip.stderr
    # Only the venv and the system: not this checkout's bin/.
    env = {"PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin", "MANPAGER": "cat", "PAGER": "cat",
           "MANWIDTH": "80"}
    env.pop("MANPATH", None)
    where = run(["man", "-w", "git-agent-spawn"], tmp_path, env=env)
    assert where.stdout.strip() == str(venv / "share" / "man" / "man1" / "git-agent-spawn.1"), where.stderr
    assert run(["man", "-w", "7", "git-agents"], tmp_path, env=env).stdout.strip() == \
        str(venv / "share" / "man" / "man7" / "git-agents.7")
    for command in (["git", "help", "agent-spawn"], ["git", "agent-spawn", "--help"]):
        shown = run(command, tmp_path, env=env)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.startswith("GIT-AGENT-SPAWN(1)"), shown.stdout[:200]
    completions = venv / "share" / "bash-completion" / "completions"
    assert sorted(p.name for p in completions.iterdir()) == \
        sorted(["git-agent"] + [f"git-agent-{verb}" for verb in COMMANDS])
    printed = run(["git", "agent", "completion", "bash"], tmp_path, env=env)
    assert printed.stdout == (completions / "git-agent").read_text()
    listing = run(["git", "agent"], tmp_path, env=env)
    assert listing.returncode == 0 and "   spawn " in listing.stdout
