"""Under a German locale git translates its messages; git-agents must behave exactly as under C.

Needs the de_DE.UTF-8 locale and git's German translations (.ci/run installs both); skipped
when they are missing.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from .conftest import Project
from .test_concurrency import _start_together


def _german_git() -> bool:
    env = {**os.environ, "LANG": "de_DE.UTF-8", "LC_ALL": "", "LANGUAGE": ""}
    out = subprocess.run(["git", "rev-parse", "--verify", "no-such-thing"], capture_output=True, text=True,
                         env=env).stderr
    return "Schwerwiegend" in out or "fatal:" not in out


pytestmark = pytest.mark.skipif(not _german_git(), reason="locale de_DE.UTF-8 or git's German messages missing")


def _outcome(project: Project, lang: str) -> dict[str, object]:
    """30 spawns and 16 racing `pool claim --task` on 8 slots at the same moment, under `lang`."""
    env = {**os.environ, "LANG": lang, "LC_ALL": "", "LANGUAGE": ""}
    env.pop("LC_ALL")
    # plain `git config` writers race the spawns for git's config.lock: a spawn that read git's
    # (translated) "could not lock config file" to decide whether to retry would fail here
    writers = [["sh", "-c", f"n=0; while [ $n -lt 150 ]; do n=$((n+1)); until git config user.w{i} $n 2>/dev/null; "
                            "do :; done; done"] for i in range(10)]
    raced = _start_together([["git", "agent-spawn", str(i), "--no-agent", "--prompt", f"do {i}"]
                             for i in range(1, 31)] + writers, project.path, env)
    spawns = raced[:30]
    assert [r.returncode for r in raced[30:]] == [0] * 10
    subprocess.run(["git", "agent-pool", "create", "8"], cwd=project.path, env=env, check=True,
                   capture_output=True)
    claims = _start_together([["git", "agent-pool", "claim", "--task", f"p{i}"] for i in range(16)],
                             project.path, env)
    rows = json.loads(project.ok("status", "--json").stdout)["tasks"]
    return {
        "spawns": sorted((r.returncode, r.stdout, r.stderr) for r in spawns),
        "claims": sorted((r.returncode, r.stdout.replace(str(project.worktrees), "<root>")
                          .rstrip("\n").rstrip("0123456789"), r.stderr) for r in claims),
        "tasks": sorted((r["id"], r["state"], r["worktree_exists"]) for r in rows if not r["id"].startswith("p")),
        "claimed": sorted((r["state"], r["slot"][:5]) for r in rows if r["id"].startswith("p")),  # winners vary
        "worktrees": project.git("worktree", "list", "--porcelain").count("worktree "),
        "config_lock": (project.path / ".git" / "config.lock").exists(),
        "writes": [project.git("config", "--get-all", f"user.w{i}") for i in range(10)],
    }


def test_thirty_spawns_and_a_racing_pool_claim_behave_under_german_as_under_c(tmp_path: Path) -> None:
    results = {}
    for lang in ("C", "de_DE.UTF-8"):
        path = tmp_path / lang / "project"
        path.mkdir(parents=True)
        project = Project(path)
        project.git("init", "-q")
        project.commit_file("README", "readme\n", "initial")
        results[lang] = _outcome(project, lang)
    c, german = results["C"], results["de_DE.UTF-8"]
    assert [code for code, _, _ in c["spawns"]] == [0] * 30  # type: ignore[attr-defined]
    assert sorted(code for code, _, _ in c["claims"]) == [0] * 8 + [1] * 8  # type: ignore[attr-defined]
    assert c["worktrees"] == 1 + 30 + 8
    assert german == c
