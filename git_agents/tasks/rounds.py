"""Rounds of a task's agent: the first run, then one per `git agent-continue`.

The current round is the task's own record (started, pid, the exit file); its number is the
task key `round` (empty for the first) and its prompt's hash `roundPromptHash`. When a new
round starts, the one that ended is appended to the task key `rounds`, one line each:
`<n> <prompt hash> <started> <finished> <exit code>` ("-" for an unknown field).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from git_agents.tasks import agent
from git_agents.tasks.store import Task


@dataclass(frozen=True)
class Round:
    """One run of a task's agent."""

    number: int
    prompt_hash: str
    started: str
    finished: str
    exit: str  # the exit code, or "-" when it is not known (the agent died unrecorded)

    def line(self) -> str:
        """The round as a line of the task key `rounds`."""
        return " ".join(f or "-" for f in (str(self.number), self.prompt_hash, self.started, self.finished, self.exit))

    def note_text(self) -> str:
        """The round as the merge note lists it."""
        return (f"round={self.number} exit={self.exit} prompt-hash={self.prompt_hash or '-'} "
                f"started={self.started or '-'} finished={self.finished or '-'}")


def number(task: Task) -> int:
    """The number of the task's current round (1 until it is continued)."""
    return int(task.round) if task.round.isdigit() else 1


def earlier(task: Task) -> list[Round]:
    """The rounds that ended before the current one, oldest first."""
    out = []
    for line in task.rounds.splitlines():
        fields = line.split(" ")
        if len(fields) == 5 and fields[0].isdigit():
            n, digest, started, finished, code = (("" if f == "-" else f) for f in fields)
            out.append(Round(int(n), digest, started, finished, code or "-"))
    return out


def current(task: Task, task_dir: str) -> Round:
    """The current round, as far as it is known now (its exit from the exit record)."""
    record = agent.read_exit(task_dir)
    return Round(number(task), task.round_prompt_hash or task.prompt_hash, task.started or task.created,
                 record.finished if record else "", str(record.code) if record else "-")


def all_rounds(task: Task, task_dir: str) -> list[Round]:
    """Every round of the task's agent, the current one last."""
    return [*earlier(task), current(task, task_dir)]


def prompt_path(task_dir: str, n: int) -> str:
    """The prompt file of round `n` (the first round's is the task's prompt.md)."""
    return os.path.join(task_dir, "prompt.md" if n <= 1 else f"prompt-{n}.md")


def note_field(task: Task, task_dir: str) -> dict[str, str]:
    """The merge note's `rounds` field for a continued task; nothing for a task run once."""
    if number(task) <= 1:
        return {}
    return {"rounds": "; ".join(r.note_text() for r in all_rounds(task, task_dir))}
