"""git agent-conflicts (pairwise prediction) and git agent-log (history from notes)."""

from __future__ import annotations

import json
from pathlib import Path

from git_agents.core.git import Git
from git_agents.merging.predict import changed_files

from .conftest import Project
from .test_merge_queue import make_tasks

LONG = "".join(f"line {i}\n" for i in range(1, 11))


def edit_line(n: int, text: str) -> str:
    return LONG.replace(f"line {n}\n", f"{text}\n")


def test_conflicts_reports_only_overlapping_pairs(project: Project) -> None:
    project.commit_file("long.txt", LONG)
    make_tasks(project, {
        "1": {"long.txt": edit_line(2, "two (task 1)"), "a.txt": "a\n"},
        "2": {"long.txt": edit_line(2, "II (task 2)")},
        "3": {"long.txt": edit_line(9, "nine (task 3)")},
        "4": {"README": "readme\ntask 4\n"},
        "5": {"b.txt": "b\n"},
    })
    project.commit_file("README", "readme\nmain\n")  # the target moves on: task 4 now conflicts with it
    before = project.snapshot()
    proc = project.agent("conflicts")
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        "PAIR               SAME FILES  PREDICTION",
        "4 + main (target)  README      conflict: README",
        "1 + 2              long.txt    conflict: long.txt",
        "1 + 3              long.txt    merges cleanly",
        "2 + 3              long.txt    merges cleanly",
    ]
    data = json.loads(project.agent("conflicts", "--json").stdout)
    assert data["version"] == 1
    assert data["tasks"]["1"] == {"target": "main", "files": ["a.txt", "long.txt"]}
    assert data["pairs"][1] == {"a": "1", "b": "2", "kind": "task", "overlap": ["long.txt"], "conflict": True,
                                "conflicts": ["long.txt"]}
    assert project.snapshot() == before
    only = project.agent("conflicts", "3", "5")
    assert (only.returncode, only.stdout) == (0, "No overlapping changes among 2 task(s) with commits.\n")


def test_changed_files_batches_ranges(project: Project) -> None:
    base = project.git("rev-parse", "HEAD")
    one = project.commit_file("x y.txt", "x\n")
    two = project.commit_file("dir/z.txt", "z\n")
    git = Git(project.path)
    assert changed_files(git, [(base, two), (one, one), (base, one), (one, two)]) == [
        {"x y.txt", "dir/z.txt"}, set(), {"x y.txt"}, {"dir/z.txt"}]


def test_log_lists_merges_from_notes(project: Project, tmp_path: Path) -> None:
    make_tasks(project, {"1": {"a.txt": "a\n"}, "2": {"b.txt": "b\n"}})
    project.ok("merge", "1", "2", "--check", "true")
    data = json.loads(project.ok("log", "--json").stdout)
    assert data["version"] == 1
    assert [m["task"] for m in data["merges"]] == ["2", "1"]
    assert data["merges"][0]["commit"] == project.git("rev-parse", "main")
    assert data["merges"][1]["commit"] == project.git("rev-parse", "main~1")
    assert {k: data["merges"][0][k] for k in ("title", "branch", "agent", "exit", "check", "target")} == \
        {"title": "work", "branch": "task-2", "agent": "-", "exit": "-", "check": "passed", "target": "main"}
    assert len(data["merges"][0]["prompt-hash"]) > 8
    project.ok("clean", "--merged")
    table = project.ok("log").stdout.splitlines()
    merged = [m["merged"] for m in data["merges"]]
    assert table == [
        "COMMIT        TASK  MERGED" + " " * (len(merged[0]) - 4) + "EXIT  CHECK   AGENT  TITLE",
        f"{data['merges'][0]['commit'][:12]}  2     {merged[0]}  -     passed  -      work",
        f"{data['merges'][1]['commit'][:12]}  1     {merged[1]}  -     passed  -      work",
    ]
    assert project.ok("log", "-n", "1", "--json").stdout.count('"task"') == 1
    assert project.ok("log", "main~2").stdout == "No task merges in the history of main~2.\n"
    bad = project.agent("log", "nope")
    assert (bad.returncode, bad.stderr) == (128, "fatal: unknown revision 'nope'\n"
                                                 "hint: name a branch or commit, e.g. main\n")
