"""Property tests for the pure parts: ids, notes, config parsing, templates."""

from __future__ import annotations

import subprocess

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from git_agents.core.repo import parse_config_list
from git_agents.tasks.ids import id_problem, sort_key
from git_agents.tasks.notes import format_note, parse_note
from git_agents.tasks.prompt import render

from .conftest import Project

id_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126) | st.sampled_from("\t\n\u00e9/"),
                  max_size=110)


@given(id_text)
@settings(max_examples=300, deadline=None)
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


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
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
