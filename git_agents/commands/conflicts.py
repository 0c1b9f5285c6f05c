"""git agent-conflicts: which tasks touch the same files, and which of them would really conflict."""

from __future__ import annotations

import argparse
import json

from git_agents.core.errors import ExitCode
from git_agents.core.git import quote_paths
from git_agents.core.repo import Repo
from git_agents.merging.predict import fill_file_sets, predict_pairs, task_branches
from git_agents.tasks.selection import select_tasks

USAGE = "git agent-conflicts [--json] [<id>...]"

DESCRIPTION = """\
While agents still work, show which unmerged tasks (or only the tasks named) change the same
files, and whether merging them would actually conflict: each task against its target branch
(as it is now), and each pair of tasks with the same target. Only pairs whose changed files
overlap are merged (in memory, with git merge-tree; no worktree or ref is touched), so many
tasks stay fast. Exits 1 when some pair would conflict, 0 otherwise.
"""

EXAMPLES = """\
git agent-conflicts              # every unmerged task
git agent-conflicts 48 50 --json
"""

JSON = """\
With --json, conflicts prints one object: {"version": 1, "tasks": {...}, "pairs": [...]}.
"tasks" maps each task id with commits to {"target", "files"} (the paths it changed since it
forked). Each pair has the fields a and b (task ids; for kind "target", b is the target
branch), kind ("task" or "target"), overlap (the paths both changed), conflict (true or
false) and conflicts (the paths that would conflict). "version" changes only when a field
is removed or changes meaning.
"""

JSON_VERSION = 1


def configure(p: argparse.ArgumentParser) -> None:
    """Declare conflicts's options."""
    p.add_argument("ids", nargs="*", metavar="<id>", help="only these tasks")
    p.add_argument("--json", action="store_true", help="print a JSON object")


def run(args: argparse.Namespace) -> int:
    """Print the overlapping pairs and their predicted outcome."""
    repo = Repo.discover()
    branches, target_tips = task_branches(select_tasks(repo, args.ids), repo.git.tips())
    fill_file_sets(repo.git, branches, target_tips)
    branches = [b for b in branches if b.files]
    pairs = predict_pairs(repo.git, branches, target_tips)
    code = ExitCode.FAILED if any(p.conflict for p in pairs) else ExitCode.OK
    if args.json:
        print(json.dumps({"version": JSON_VERSION,
                          "tasks": {b.task_id: {"target": b.target, "files": sorted(b.files)} for b in branches},
                          "pairs": [p.to_json() for p in pairs]}, indent=2))
        return code
    if not pairs:
        print(f"No overlapping changes among {len(branches)} task(s) with commits.")
        return code
    from git_agents.core.output import table

    rows = [[f"{p.a} + {p.b}" if p.kind == "task" else f"{p.a} + {p.b} (target)", quote_paths(p.overlap, repo.config),
             f"conflict: {quote_paths(p.conflicts, repo.config)}" if p.conflict else "merges cleanly"] for p in pairs]
    print(table(["PAIR", "SAME FILES", "PREDICTION"], rows))
    return code
