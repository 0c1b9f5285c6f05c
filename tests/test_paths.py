"""Paths that are not plain: bytes that are not UTF-8 and newlines in names survive every report."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .conftest import Project, write_script

LATIN1 = b"caf\xe9.txt"  # not valid UTF-8
NEWLINE = "new\nline.txt"


def _conflicting_agents(project: Project, tmp_path: Path) -> None:
    """Tasks 1 and 2 both add caf\\xe9.txt and new\\nline.txt with different contents."""
    agent = write_script(tmp_path / "agent.sh", r"""
        name=$(printf 'caf\351.txt')
        echo "task $GIT_AGENT_TASK" > "$name"
        echo "task $GIT_AGENT_TASK" > "new
        line.txt"
        git add -A && git commit -q -m "task $GIT_AGENT_TASK"
    """.replace("\n        line.txt", "\nline.txt"))
    for task in ("1", "2"):
        project.ok("spawn", task, "--prompt", "add the files", "--agent", str(agent))
    project.ok("wait", "--all", "--timeout", "60")


def test_a_path_that_is_not_utf8_conflicts_and_is_reported_without_loss(project: Project, tmp_path: Path) -> None:
    _conflicting_agents(project, tmp_path)
    predicted = json.loads(project.agent("conflicts", "--json").stdout)
    assert [os.fsencode(p) for p in predicted["pairs"][0]["conflicts"]] == [LATIN1, NEWLINE.encode()]

    merged = project.agent("merge", "--all")
    assert merged.returncode == 1
    assert merged.stdout == ('Merged task 1 (' + project.git("rev-parse", "main")[:12] + ')\n'
                             'Conflict in task 2: "caf\\351.txt", "new\\nline.txt" '
                             "(not merged; branch and worktree kept)\n"
                             "1 merged, 1 not merged\n")
    # as git quotes the same paths
    assert project.git("ls-tree", "--name-only", "main") .splitlines() == [
        "README", '"caf\\351.txt"', '"new\\nline.txt"', "shared.txt"]

    status = project.ok("status", "--json")
    assert '"caf\\udce9.txt"' in status.stdout  # the documented escape of byte 0xe9 (git-agents(7))
    row = json.loads(status.stdout)["tasks"][1]
    assert row["state"] == "conflict"
    assert [os.fsencode(p) for p in row["conflicts"]] == [LATIN1, NEWLINE.encode()]  # exact, one entry each
    text = project.ok("status").stdout.splitlines()
    assert text[2].split(None, 1) == ["2", text[2].split(None, 1)[1]]
    assert text[2].split(None, 1)[1].startswith('conflict: "caf\\351.txt", "new\\nline.txt"  ')

    # core.quotePath=false leaves UTF-8 alone but still quotes what is not UTF-8 (as git does)
    project.git("config", "core.quotePath", "false")
    text = project.ok("status").stdout.splitlines()
    assert text[2].split(None, 1) == ["2", text[2].split(None, 1)[1]]
    assert text[2].split(None, 1)[1].startswith('conflict: "caf\\351.txt", "new\\nline.txt"  ')


def test_worktreeinclude_copies_an_ignored_file_with_a_newline_in_its_name(project: Project) -> None:
    (project.path / ".gitignore").write_text("secret*\n")
    (project.path / ".worktreeinclude").write_text("secret*\n")
    project.git("add", ".gitignore", ".worktreeinclude")
    project.git("commit", "-q", "-m", "include secrets")
    (project.path / "secret\nkey").write_text("s3cret\n")
    (project.path / os.fsdecode(b"secret-\xff")).write_text("bytes\n")
    project.ok("spawn", "1", "--no-agent")
    worktree = project.worktrees / "task-1"
    assert (worktree / "secret\nkey").read_text() == "s3cret\n"
    assert (worktree / os.fsdecode(b"secret-\xff")).read_text() == "bytes\n"
