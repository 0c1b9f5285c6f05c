"""Property tests for the pure parts: ids, notes, config parsing, templates."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from git_agents.core.repo import parse_config_list
from git_agents.tasks.ids import id_problem, sort_key
from git_agents.tasks.notes import format_note, parse_note
from git_agents.tasks.prompt import render

from .conftest import Project, run

id_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126) | st.sampled_from("\t\n\u00e9/"),
                  max_size=110)


@given(id_text)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_accepted_id_is_a_valid_branch_and_path_component(task_id: str) -> None:
    if id_problem(task_id) is not None:
        return
    assert "/" not in task_id and not task_id.startswith(("-", ".")) and task_id not in (".", "..")
    proc = subprocess.run(["git", "check-ref-format", "--branch", f"task-{task_id}"], capture_output=True)
    assert proc.returncode == 0, task_id
    proc = subprocess.run(["git", "check-ref-format", f"refs/heads/{task_id}"], capture_output=True)
    assert proc.returncode == 0, task_id


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}", fullmatch=True))
def test_plain_ids_are_accepted(task_id: str) -> None:
    assert id_problem(task_id) is None


def test_numeric_ids_sort_numerically() -> None:
    assert sorted(["100", "9", "abc", "48", "10"], key=sort_key) == ["9", "10", "48", "100", "abc"]


values = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), max_size=60)
keys = st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True)


@given(st.dictionaries(keys, values, max_size=8))
def test_note_round_trip(fields: dict[str, str]) -> None:
    text = format_note(fields)
    assert text.split("\n")[0] == "git-agents-note: 1"
    # a value is one line: line breaks of any kind are folded into spaces
    assert parse_note(text) == {k: " ".join(v.splitlines()) for k, v in fields.items()}


def test_foreign_note_is_ignored() -> None:
    assert parse_note("just a note\n") is None


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.dictionaries(st.from_regex(r"[A-Za-z0-9._-]{1,12}", fullmatch=True),
                       st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                               max_size=30), min_size=1, max_size=5))
def test_config_values_survive_git_config(project: Project, entries: dict[str, str]) -> None:
    """Whatever git config stores, parse_config_list reads back exactly (subsection case kept)."""
    for sub, value in entries.items():
        project.git("config", "--replace-all", f"agent-task.{sub}.Title", value)
    raw = subprocess.run(["git", "config", "-z", "--list"], cwd=project.path, capture_output=True,
                         check=True).stdout.decode("utf-8")  # bytes: text mode would turn \r into \n
    parsed = parse_config_list(raw)
    for sub, value in entries.items():
        assert parsed[f"agent-task.{sub}.title"] == [value]
    for sub in entries:
        project.git("config", "--remove-section", f"agent-task.{sub}", check=False)


@given(st.text(max_size=40), st.text(max_size=40))
def test_render_fills_known_placeholders_only(title: str, prompt: str) -> None:
    out = render("{title}|{prompt}|{other}|{{id}}", {"title": title, "prompt": prompt, "id": "7"})
    assert out == f"{title}|{prompt}|{{other}}|{{7}}"


@given(st.text(max_size=300))
def test_prompt_hash_is_the_start_of_the_sha256(text: str) -> None:
    import hashlib

    from git_agents.tasks.prompt import prompt_hash

    assert prompt_hash(text) == hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def test_the_configuration_is_read_once_and_stays_exact_after_writes(project: Project) -> None:
    """This process's task record writes update its copy of the configuration (no git call) and
    give what a fresh read gives; a write after another process's, or to a key that other files
    set too, reads it again."""
    from git_agents.core import git as gateway
    from git_agents.core.repo import Repo
    from git_agents.tasks.store import Task, create_task, delete_task, load_tasks, write_task

    home_config = Path(os.environ["HOME"]) / ".gitconfig"
    home_config.write_text(home_config.read_text() + '[agent-task "3"]\n\treason = global\n')
    reads: list[list[str]] = []

    def count(argv: list[str]) -> None:
        if argv[:2] == ["config", "-z"]:
            reads.append(argv)

    def fresh() -> dict[str, list[str]]:
        return Repo.discover(str(project.path)).config

    repo = Repo.discover(str(project.path))
    gateway.add_call_hook(count)
    try:
        assert "agent-task.1.title" not in repo.config
        create_task(repo, Task("1", title="one  # not a comment", branch="task-1", created="2026-12-01T00:00:00+00:00"))
        write_task(repo, "1", state="failed", reason="a\nb \"quoted\"", title=None)
        assert len(reads) == 1
        mine = repo.config
        assert len(reads) == 1
        assert mine == fresh()
        assert load_tasks(repo)["1"].reason == 'a\nb "quoted"' and load_tasks(repo)["1"].title == ""

        project.git("config", "agent-task.2.title", "two")  # another process
        reads.clear()
        write_task(repo, "1", state="merged")
        assert repo.config == fresh() and "agent-task.2.title" in repo.config
        assert len(reads) == 2  # ours again (the other writer's change is seen), and fresh()'s

        reads.clear()
        create_task(repo, Task("3", reason="local", created="2026-12-01T00:00:00+00:00"))
        assert repo.config["agent-task.3.reason"] == ["global", "local"]  # read again: the key is set globally too
        assert repo.config == fresh()

        reads.clear()
        delete_task(repo, "1")
        assert not [k for k in repo.config if k.startswith("agent-task.1.")]
        assert repo.config == fresh() and len(reads) == 1  # fresh()'s alone
    finally:
        gateway.CALL_HOOKS.remove(count)


def test_idents_are_git_vars_in_one_call_and_refused_where_git_var_refuses(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """The author and committer a merge run records come from one `git var -l` when both are given
    (they differ here, and a config value spanning lines mimics the list), exactly as the strict
    `git var GIT_*_IDENT` prints them; where git would have to guess one that it refuses to guess
    (an empty name), the strict calls run and refuse as commit-tree would. A merge run reads
    them once, for its commits and its notes commit (Repo.idents, dated now when read again)."""
    import git_agents.core.git as gateway
    from git_agents.core.errors import GitError
    from git_agents.core.git import Git, idents
    from git_agents.core.repo import Repo

    project.git("config", "x.fake", "v\nGIT_COMMITTER_IDENT=Evil <e@x> 1 +0000\nGIT_AUTHOR_IDENT=Evil <e@x> 1 +0000")
    dates = {"GIT_AUTHOR_DATE": "@1700000000 +0100", "GIT_COMMITTER_DATE": "@1700000100 -0200"}
    git = Git(project.path, dates)
    calls: list[list[str]] = []
    git("version")  # the once-per-process version check, out of the way
    gateway.add_call_hook(calls.append)
    try:
        assert idents(git, {}) == (git("var", "GIT_AUTHOR_IDENT"), git("var", "GIT_COMMITTER_IDENT")) == \
            ("A U Thor <author@example.com> 1700000000 +0100", "C O Mitter <committer@example.com> 1700000100 -0200")
        assert calls[0] == ["var", "-l"] and len(calls) == 3
        repo = Repo.discover(str(project.path))
        calls.clear()
        first = repo.idents()
        monkeypatch.setenv("GIT_COMMITTER_DATE", "@1700000200 +0000")  # fixed: kept; not fixed: now
        assert repo.idents()[1] == first[1] and repo.idents()[0].startswith("A U Thor <author@example.com> ")
        assert [c[:2] for c in calls] == [["config", "-z"], ["var", "-l"]]
    finally:
        gateway.CALL_HOOKS.remove(calls.append)
    assert run(["git", "var", "-l"], project.path, env={"GIT_AUTHOR_NAME": ""}).returncode == 0  # it would not refuse
    with pytest.raises(GitError) as refused:
        idents(Git(project.path, {"GIT_AUTHOR_NAME": ""}), {})
    assert "empty ident name (for <author@example.com>) not allowed" in refused.value.stderr


def test_commit_maker_writes_the_bytes_commit_tree_writes(project: Project) -> None:
    """A merge run makes its commits through one `git hash-object`: the very commits `git commit-tree`
    makes (same dates), also where commit-tree changes what it is given (a duplicate parent, a
    message that is not UTF-8 or holds a non-character, which it re-encodes); its scratch file goes."""
    from git_agents.core.git import Git
    from git_agents.merging.inmemory import commit_maker, commit_tree

    git = Git(project.path, {"GIT_AUTHOR_DATE": "@1700000000 +0100", "GIT_COMMITTER_DATE": "@1700000100 -0200"})
    head, tree = project.git("rev-parse", "HEAD"), project.git("rev-parse", "HEAD^{tree}")
    other = project.git("commit-tree", tree, "-p", head, "-m", "other")
    cases = [([head, other], "feat: Task 1 - plain\n"), ([head], "squash: ünïcode ✓\n\nbody\n"),
             ([head, head], "duplicate parent\n"), ([head, other], "a non-character \ufdd0\n"),
             ([head, other], "a byte that is not UTF-8: \udcff\n")]
    scratch = project.path / ".git" / "scratch"
    scratch.mkdir()
    with commit_maker(git, {}, str(scratch), len(cases)) as make:
        assert make is not None
        made = [make(tree, parents, text) for parents, text in cases]
    assert made == [commit_tree(git, tree, parents, text) for parents, text in cases]
    assert project.git("cat-file", "-p", made[2]).count("parent ") == 1
    assert list(scratch.iterdir()) == []
    with commit_maker(git, {}, str(scratch), 3) as make:  # too few to pay for the `git var` calls
        assert make is None
    with commit_maker(git, {"i18n.commitencoding": ["ISO-8859-1"]}, str(scratch), 9) as make:
        assert make is None  # commit-tree writes an encoding header


def test_git_gets_the_environment_of_the_call_not_the_one_plumbum_copied_at_import(tmp_path: Path) -> None:
    """A variable unset after the first git call (plumbum's import) no longer reaches git: plumbum
    put its import-time copy of the environment under the one the gateway passes."""
    script = (
        "import os, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})\n"
        "os.environ['GIT_AUTHOR_NAME'] = 'Ghost'\n"
        "from git_agents.core.git import Git\n"
        "git = Git()\n"
        "print(git('var', 'GIT_AUTHOR_IDENT').split(' <')[0])\n"
        "os.environ['GIT_AUTHOR_NAME'] = 'Later'\n"
        "print(git('var', 'GIT_AUTHOR_IDENT').split(' <')[0])\n"
        "del os.environ['GIT_AUTHOR_NAME']\n"
        "print(git('var', 'GIT_AUTHOR_IDENT').split(' <')[0])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GIT_AUTHOR_NAME"}
    run(["git", "init", "-q", str(tmp_path / "r")], tmp_path)
    run(["git", "config", "user.name", "Configured"], tmp_path / "r")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path / "r", env=env, capture_output=True, text=True)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.splitlines() == ["Ghost", "Later", "Configured"]
