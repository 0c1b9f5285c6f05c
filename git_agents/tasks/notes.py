"""The durable record: a git note on each merge commit under refs/notes/agents.

A note is a block of `key: value` lines headed by a format version, readable in
`git log --notes=agents` and parsed back by `parse_note`.
"""

from __future__ import annotations

import os

from git_agents.core.git import Git
from git_agents.core.lock import RepoLock
from git_agents.core.repo import Repo

NOTES_REF = "refs/notes/agents"
NOTE_VERSION = "1"
_HEADER = "git-agents-note"


# Every field of a note, in order, with its meaning (git-agents(7) is generated from this). Local
# merges and `merge --remote` write the same fields with the same meaning; "-" when one does not apply.
NOTE_FIELDS: dict[str, str] = {
    "task": "The task id.",
    "title": "The task's title.",
    "branch": "The task branch that was merged (task-<id>).",
    "agent": "The agent command line that ran.",
    "prompt-hash": "The first 16 hex digits of the SHA-256 of the prompt the agent was given.",
    "base": "The commit the task branch started from (not the target's tip when it merged).",
    "target": "The branch the task was merged into.",
    "started": "When the agent started (ISO 8601, local time).",
    "finished": "When the agent ended (ISO 8601); - if it died without recording it.",
    "exit": "The agent's exit status; - if it died without one.",
    "merged": "When the merge commit was made (ISO 8601).",
    "worker": "The git agent-worker that ran the agent (--remote merges); - for a task run in this clone.",
    "remote": "The shared remote whose queue the task came from; - for a local merge.",
    "check": "The merge check: passed, or - when none ran.",
    "rounds": "Only for a task continued with git agent-continue (absent otherwise): one entry per round, "
              "separated by \"; \".",
    "tokens-in": "The tokens the agent's CLI reported sending to its model, over all its runs (rounds and "
                 "conflict resolvers); absent when its CLI reported none (an agent that is not a preset).",
    "tokens-out": "The tokens the model produced, as its CLI reported them; absent when not reported.",
    "cost": "What the runs cost in US dollars, as the CLI reported it (claude, opencode, aider with known "
            "prices); - when the CLI reported tokens but no cost; absent when it reported nothing.",
    "usage-rounds": "Only when the task had more than one run: each run's figures, separated by \"; \" "
                    "(agent=<round> or resolve=<attempt>, in=, out=, cost=).",
}
# left out when not given, instead of written as "-"
_OPTIONAL = {"rounds", "tokens-in", "tokens-out", "cost", "usage-rounds"}


def note_fields(**values: str) -> dict[str, str]:
    """The fields of a note in NOTE_FIELDS order (keys with '_' for '-'), "-" for any not given."""
    given = {k.replace("_", "-"): v for k, v in values.items()}
    unknown = set(given) - set(NOTE_FIELDS)
    assert not unknown, f"not a note field: {unknown}"
    return {key: str(given.get(key) or "-") for key in NOTE_FIELDS if key not in _OPTIONAL or given.get(key)}


def format_note(fields: dict[str, str]) -> str:
    """Render a note: a version line, then one `key: value` line per field (newlines folded)."""
    lines = [f"{_HEADER}: {NOTE_VERSION}"]
    for key, value in fields.items():
        lines.append(f"{key}: {' '.join(str(value).splitlines())}")
    return "\n".join(lines) + "\n"


def parse_note(text: str) -> dict[str, str] | None:
    """The fields of a note written by format_note, or None for any other note."""
    lines = text.split("\n")
    if not lines or not lines[0].startswith(_HEADER + ":"):
        return None
    fields: dict[str, str] = {}
    for line in lines[1:]:
        key, sep, value = line.partition(": ")
        if sep:
            fields[key] = value
    return fields


def add_note(repo: Repo, commit: str, fields: dict[str, str]) -> None:
    """Attach (or replace) the note on `commit`. Serialised: concurrent `git notes add` loses notes."""
    with RepoLock(repo.common_dir):
        repo.git.run("notes", f"--ref={NOTES_REF}", "add", "-f", "-F", "-", commit, input=format_note(fields))


NOTES_MESSAGE = "Notes added by 'git agent-merge'"  # git agent-log trusts only notes written with it


def add_notes(repo: Repo, notes: dict[str, dict[str, str]], message: str = NOTES_MESSAGE) -> None:
    """Attach (or replace) many notes in one notes commit: all of them are recorded, or none.

    One `git fast-import` stream instead of a `git notes add` per commit (which would also leave
    a half-written set behind if interrupted). fast-import keeps git's notes fan-out, and refuses
    to move the notes ref unless the new notes commit contains where the ref is (exit 1): every
    note written before survives. Serialised by the meta lock.
    """
    if not notes:
        return
    git = repo.git
    with RepoLock(repo.common_dir):
        ident = repo.idents()[1]  # as `git var GIT_COMMITTER_IDENT` says it now
        body = [_data(message + "\n")]
        for commit, fields in notes.items():
            body.append(f"N inline {commit}\n")
            body.append(_data(format_note(fields)))
        body.append("\n")
        old = _notes_tip(repo)
        for again in (False, True):
            if old is None or again:  # not known from the files, or fast-import refused what they said
                old = git.rev_parse(f"{NOTES_REF}^{{commit}}") or ""
            stream = f"commit {NOTES_REF}\ncommitter {ident}\n" + body[0] + (f"from {old}\n" if old else "") \
                + "".join(body[1:]) + "done\n"
            res = git.run("fast-import", "--quiet", "--done", input=stream, ok=(0, 1) if not again else (0,))
            if res.code == 0:
                return


def _notes_tip(repo: Repo) -> str | None:
    """Where the notes ref is, from the ref files as git keeps them (no git call): its commit, "" when
    it does not exist, None when the files do not say (another ref storage, a symbolic ref). Only a
    guess for add_notes, which fast-import checks: a wrong one costs a second try, never a note."""
    if repo.config.get("extensions.refstorage", ["files"])[-1] != "files":
        return None
    try:
        with open(os.path.join(repo.common_dir, NOTES_REF), "rb") as fh:
            loose = fh.read().decode("ascii", "replace").strip()
        return loose if loose and all(c in "0123456789abcdef" for c in loose) else None
    except FileNotFoundError:
        pass
    except OSError:
        return None
    try:
        with open(os.path.join(repo.common_dir, "packed-refs"), "rb") as fh:
            for line in fh:
                oid, _, ref = line.decode("ascii", "replace").rstrip("\n").partition(" ")
                if ref == NOTES_REF:
                    return oid
    except FileNotFoundError:
        pass
    except OSError:
        return None
    return ""


def _data(text: str) -> str:
    return f"data {len(text.encode())}\n{text}\n"


def read_note(git: Git, commit: str) -> dict[str, str] | None:
    """The note on `commit`, if git-agents wrote one."""
    res = git.run("notes", f"--ref={NOTES_REF}", "show", commit, ok=(0, 1))
    return parse_note(res.out) if res.code == 0 else None
