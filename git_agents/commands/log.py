"""git agent-log: the history of merged tasks, read back from the notes on their merge commits."""

from __future__ import annotations

import argparse
import json

from git_agents.core.errors import AgentError
from git_agents.core.repo import Repo
from git_agents.tasks import usage
from git_agents.tasks.notes import NOTES_MESSAGE, NOTES_REF, parse_note

USAGE = "git agent-log [--json] [-n <n>] [<revision>]"

DESCRIPTION = """\
List the task merges reachable from <revision> (default: HEAD), newest first, from the notes
git agent-merge writes in refs/notes/agents (the same as `git log --notes=agents` shows):
merge commit, task id, when it merged, the agent's exit code, the check result, the tokens
and cost its CLI reported (TOKENS: in/out and dollars, "-" when it reported none), the agent
command and the title, then a line with the totals of the merges listed (the column and
the totals only when some agent's CLI reported usage). Merge commits stay
listed after `git agent-clean` forgets the tasks.
A note is trusted only on a merge commit and only as git agent-merge wrote it: one added or
changed by `git notes` (an agent's, say) is left out with a warning.
(`git agent-logs` is something else: an agent's own output.)
"""

EXAMPLES = """\
git agent-log                    # the merges in the history of HEAD
git agent-log -n 5 --json main
"""

JSON = """\
With --json, log prints one object: {"version": 1, "merges": [...]}, newest first, each with
the field commit and the note's fields: task, title, branch, agent, prompt-hash, base (the
commit the task started from), target, started, finished, exit, merged and check (passed,
failed or -), and where the agent's CLI reported them tokens-in, tokens-out, cost and
usage-rounds; then "total": {"tokens_in", "tokens_out", "cost_usd"} over the merges listed
(null when none reported any). "version" changes only when a field is removed or changes meaning.
"""

JSON_VERSION = 1


def configure(p: argparse.ArgumentParser) -> None:
    """Declare log's options."""
    p.add_argument("revision", nargs="?", default="HEAD", metavar="<revision>",
                   help="list merges reachable from here (default: HEAD)")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.add_argument("-n", "--max-count", type=int, metavar="<n>", help="show at most <n> merges (the newest)")


def merges(repo: Repo, revision: str, limit: int | None = None) -> list[dict[str, str]]:
    """The notes of task merges reachable from `revision`, newest first, each with its "commit"."""
    if not repo.git.ok("rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"):
        raise AgentError(f"unknown revision '{revision}'", hint="name a branch or commit, e.g. main")
    if not repo.git.ok("rev-parse", "--verify", "--quiet", NOTES_REF):
        return []
    out = repo.git.run("log", f"--notes={NOTES_REF}", "--format=%H%x00%P%x00%N%x1e", revision, "--").out
    trusted = _written_by_us(repo)
    result = []
    for record in out.split("\x1e"):
        commit, _, rest = record.strip("\n").partition("\0")
        parents, _, note = rest.partition("\0")
        fields = parse_note(note) if note else None
        if fields is None:
            continue
        if len(parents.split()) < 2 or commit not in trusted:
            import sys

            sys.stderr.write(f"warning: ignoring the note on {commit[:12]}: git agent-merge did not write it"
                             f" ({'not a merge commit' if len(parents.split()) < 2 else 'changed since'})\n")
            continue
        result.append({"commit": commit, **fields})
        if limit is not None and len(result) >= limit:
            break
    return result


def _written_by_us(repo: Repo) -> set[str]:
    """The commits whose note was last written by git-agents (a notes commit of notes.add_notes),
    not by `git notes add` (an agent's forged or rewritten note): one walk of the notes history."""
    out = repo.git.run("log", "--no-renames", "--name-only", "--format=%x00%s", NOTES_REF, "--").out
    latest: dict[str, bool] = {}
    for chunk in out.split("\0")[1:]:
        subject, _, names = chunk.partition("\n")
        ours = subject == NOTES_MESSAGE
        for name in names.split():
            latest.setdefault(name.replace("/", ""), ours)
    return {commit for commit, ours in latest.items() if ours}


def run(args: argparse.Namespace) -> int:
    """Print the merges."""
    repo = Repo.discover()
    rows = merges(repo, args.revision, args.max_count)
    whole = usage.total([u for u in map(usage.from_note, rows) if u is not None])
    if args.json:
        total = None if whole is None else {"tokens_in": whole.tokens_in, "tokens_out": whole.tokens_out,
                                            "cost_usd": whole.cost}
        print(json.dumps({"version": JSON_VERSION, "merges": rows, "total": total}, indent=2))
        return 0
    if not rows:
        print(f"No task merges in the history of {args.revision}.")
        return 0
    from git_agents.core.output import table

    headers = ["COMMIT", "TASK", "MERGED", "EXIT", "CHECK", "AGENT", "TITLE"]
    cells = [[r["commit"][:12], r.get("task", "-"), r.get("merged", "-"), r.get("exit", "-"), r.get("check", "-"),
              r.get("agent", "-"), r.get("title", "")] for r in rows]
    if whole is not None:  # the column and the totals only where some agent's CLI reported usage
        headers[5:5] = ["TOKENS"]
        for r, row in zip(rows, cells):
            row[5:5] = [usage.short(usage.from_note(r))]
    print(table(headers, cells))
    if whole is not None:
        print(f"Total: {usage.describe(whole)} over {len(rows)} merge{'' if len(rows) == 1 else 's'}")
    return 0
