"""The `git agent-run` loop: prepare every task, run at most `jobs` agents, merge, clean, report.

Tasks are ordinary git-agents tasks (the same metadata, worktrees and logs as `git agent-spawn`
makes), so `git agent-status`, `logs` and `stop` work on them while the run goes on, and a
stopped run is picked up again (`--resume`) from what the repository records:
- a task whose agent exited (whatever its code) is finished and not run again;
- a task marked `interrupted` (its agent was stopped by Ctrl-C), never started, or whose
  preparation failed, is started again in its existing worktree;
- a task whose agent still runs is watched;
- a task merged by an earlier run of the same task file is skipped (the run's journal in
  `<common-dir>/agents/runs/` remembers it after its worktree and metadata are cleaned).
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from typing import TextIO

from git_agents.core.errors import AgentError, ExitCode
from git_agents.core.git import quote_paths
from git_agents.core.output import printable
from git_agents.core.refs import branch_ref
from git_agents.core.repo import Repo
from git_agents.core.settings import parse_bool
from git_agents.core.worktrees import unsaved_work
from git_agents.lifecycle import start as starting
from git_agents.pool import slots as pool
from git_agents.run.taskfile import TaskFile, TaskSpec
from git_agents.tasks import agent, usage
from git_agents.tasks.presets import expand, expand_interactive
from git_agents.tasks.status import NO_CHANGE, NOT_COMMITTED, agent_state
from git_agents.tasks.store import Task, TaskState, load_tasks, write_task
from git_agents.tasks.tmux import tmux_program

POLL_SECONDS = 0.1
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # colours and cursor moves in an agent's output

# What a job is doing; the run loop moves each job forward through these.
NEW, START, RERUN, WATCH, FINISHED, MERGED_BEFORE = "new", "start", "re-run", "watch", "finished", "merged"


@dataclass
class Job:
    """One task of the task file as the run sees it."""

    spec: TaskSpec
    command: str  # the agent command line (preset expanded)
    action: str  # one of NEW, START, RERUN, WATCH, FINISHED, MERGED_BEFORE
    task: Task | None = None
    state: str = "queued"  # what the progress display shows
    started: float = 0.0  # time.monotonic() when its agent started (0: not yet)
    ended: float = 0.0
    finished: str = ""  # when its agent ended, as its exit record says ("" unknown)
    outcome: str = ""  # final: "merged (<commit>)" or why it was not merged
    merged: bool = False
    deferred: bool = False  # waits for its `after` tasks to merge before it is made ready and started
    tmux: bool = False  # its agent runs interactively in a tmux window
    spent: list[usage.Usage] | None = None  # its runs' figures, kept when its task dir is removed
    outside: str = ""  # the commit that merged it, when the user merged its branch with plain git

    @property
    def id(self) -> str:
        """The task id."""
        return self.spec.id


# -- the journal of merged tasks ----------------------------------------------------------------
def journal_path(repo: Repo, taskfile: str) -> str:
    """Where a run of `taskfile` records which of its tasks it merged."""
    key = hashlib.sha1(os.path.realpath(taskfile).encode()).hexdigest()[:16]
    return os.path.join(repo.state_dir, "runs", key)


def merged_before(repo: Repo, taskfile: str) -> dict[str, str]:
    """task id -> merge commit, for the tasks earlier runs of `taskfile` merged."""
    try:
        with open(journal_path(repo, taskfile), encoding="utf-8") as fh:
            rows = [line.split() for line in fh]
    except OSError:
        return {}
    return {row[1]: row[2] for row in rows if len(row) == 3 and row[0] == "merged"}


def _journal(repo: Repo, taskfile: str, task_id: str, commit: str) -> None:
    """Record that the run merged `task_id` (once: a resumed run records what an earlier one merged)."""
    if merged_before(repo, taskfile).get(task_id) == commit:
        return
    path = journal_path(repo, taskfile)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"merged {task_id} {commit}\n")


def interrupted_merge_note(repo: Repo) -> str:
    """What --resume --dry-run says of a merge journal left behind ("" when none): resume finishes it first."""
    from git_agents.merging import journal as journal_file

    plan = journal_file.read(repo.state_dir)
    if plan is None:
        return ""
    return f"First finish the interrupted merge into '{plan.target}', as git agent-merge --continue would.\n"


def finish_interrupted_merge(repo: Repo, stream: TextIO = sys.stdout) -> str:
    """Finish the merge a killed run (or merge) left in its journal, as `git agent-merge --continue` does.

    A run killed after writing its merge journal leaves tasks whose merge is decided but not
    recorded: left alone, the resumed run could not merge them (every merge is refused while a
    journal waits), and once someone finished it by hand, would clean them up unrecorded and
    later make them again. So a resumed run first lands the journal (or, for a merge --resolve
    killed while its resolver worked, verifies the resolver's result: kept, or the branch put
    back, once a resolver the killed run left running has ended: said on `stream`), then plans
    on what is recorded. Returns what it did ("" when no merge was waiting); raises AgentError
    for a conflict waiting to be resolved by hand (merge --interactive).
    """
    from git_agents.core.lock import RepoLock
    from git_agents.merging import journal as journal_file
    from git_agents.merging.chain import land
    from git_agents.merging.queue import refuse_if_interrupted

    if journal_file.read(repo.state_dir) is None:
        return ""
    with RepoLock(repo.common_dir, "merge"):  # a merge still running holds it: wait for it
        plan = journal_file.read(repo.state_dir)
        if plan is None:
            return ""
        if plan.phase == "resolving":  # only the user can resolve it: say how, as every merge does
            refuse_if_interrupted(repo)
        if plan.phase == "resolver":
            from git_agents.merging import resolver

            assert plan.conflict is not None
            task_id, branch = plan.conflict.task_id, plan.options.get("branch", "")
            pid = resolver.left_running(plan)
            if pid:  # its work is what the run resumes: let it finish, then check it
                stream.write(f"Waiting for the resolver of task {task_id} (process {pid}), "
                             "which the interrupted merge left running\n")
                stream.flush()
                resolver.wait_for_resolver(plan)
            refused = resolver.finish(repo, plan)
            if refused is not None:
                return (f"The resolution of task {task_id} that an interrupted merge left was refused: {refused}; "
                        f"'{branch}' is back at {plan.tip[:12]}\n")
            return f"The resolution of task {task_id} that an interrupted merge left is verified\n"
        land(repo, plan)
    done = [f"merged task {e.task_id} ({e.commit[:12]})" if e.status == TaskState.MERGED
            else f"task {e.task_id} not merged ({e.status})" for e in plan.entries]
    return f"Finished the interrupted merge into '{plan.target}'" + (f": {', '.join(done)}" if done else "") + "\n"


def merged_outside(repo: Repo, task: Task) -> str:
    """The commit that merged a finished task's branch into its target without git-agents (the
    user's `git merge task-<id>`), "" when it is not merged or git-agents recorded the merge.

    "Merged" is what `git agent-clean --merged` decides (is_merged: the branch has commits and its
    tip is reachable from the target). The commit named is the first of the target's first-parent
    line that contains the tip: the user's merge commit, or the tip itself after a fast-forward.
    """
    from git_agents.lifecycle.remove import is_merged

    if task.state == TaskState.MERGED or not task.base or not is_merged(repo, task):
        return ""
    tip = repo.git("rev-parse", f"{branch_ref(task.branch)}^{{commit}}")
    line = repo.git("rev-list", "--first-parent", "--ancestry-path", f"{tip}..{branch_ref(task.base)}", "--").split()
    if not line or repo.git("rev-parse", f"{line[-1]}^") == tip:  # fast-forwarded: the tip is on the line
        return tip
    return line[-1]


# -- planning -----------------------------------------------------------------------------------
def plan(repo: Repo, tf: TaskFile, base: str, base_commit: str, *, resume: bool) -> list[Job]:
    """What the run will do with each task; refuses ids, branches or paths in use unless resuming."""
    from git_agents.lifecycle.start import plan_task

    default_agent = tf.agent or repo.setting("agent.command")
    existing = load_tasks(repo)
    done = merged_before(repo, tf.path) if resume else {}
    jobs = []
    in_tmux = tf.tmux if tf.tmux is not None else parse_bool(repo.setting("agent.tmux"))
    if in_tmux:
        tmux_program()  # fail before anything is created
    for spec in tf.tasks:
        written = spec.agent or default_agent
        if not written.strip():
            raise AgentError(f"task {spec.id} has no agent",
                             hint="set agent in the task file (globally or per task), or git config agent.command")
        expanded = expand_interactive(repo, written) if in_tmux else expand(repo, written)
        command = agent.absolutise_program(expanded, os.path.dirname(os.path.abspath(tf.path)))
        task = existing.get(spec.id)
        if task is None and spec.id not in done:
            plan_task(repo, spec.id, base, base_commit, pooled=tf.pool)  # fails now, before anything is created
        if task is None:
            jobs.append(Job(spec, command, MERGED_BEFORE if spec.id in done else NEW, merged=spec.id in done,
                            outcome=f"merged ({done[spec.id][:12]}, earlier run)" if spec.id in done else ""))
            continue
        if not resume:
            raise AgentError(f"task '{spec.id}' already exists",
                             hint=f"continue the earlier run with: git agent-run --resume {tf.path}\n"
                                  f"or remove the task first with: git agent-clean {spec.id}")
        action = _resume_action(repo, task)
        outcome = f"merged ({task.merge_commit[:12]}, earlier run)" if action == MERGED_BEFORE else ""
        # A task merged by the killed run is merged: the tasks that wait for it start, it never runs again.
        jobs.append(Job(spec, command, action, task, outcome=outcome, merged=action == MERGED_BEFORE))
    for job in jobs:
        job.tmux = in_tmux
    return jobs


def _resume_action(repo: Repo, task: Task) -> str:
    if task.state == TaskState.MERGED:
        return MERGED_BEFORE
    # An agent started by a run killed before it recorded the pid is found by its launch id;
    # one that still runs (even one marked interrupted) is watched, never started a second time.
    starting.adopt(repo, task)
    if agent.running(task) is not None:
        return WATCH
    if task.state == TaskState.INTERRUPTED:
        return RERUN
    state, _, _ = agent_state(repo, task, check_work=False)
    if state in ("not started", "failed to start"):
        return START
    if state == "died":
        return RERUN
    return WATCH if state == "running" else FINISHED


def describe(tf: TaskFile, jobs: list[Job], base: str) -> str:
    """The plan as `--dry-run` prints it."""
    then = "then merge the successful ones in task order" if tf.merge else "no merge (merge = false)"
    lines = [f"Run {len(jobs)} task(s) from {tf.path} on {base}, {tf.jobs} at a time; {then}."]
    if tf.pool:
        lines.append("Take each new task's worktree from the pool (git agent-pool), as spawn --pool does.")
    if jobs and jobs[0].tmux:
        lines.append("Run each agent interactively in its own tmux window, as spawn --tmux does.")
    if tf.check:
        lines.append(f"Merge only the results that pass the check (in a scratch worktree): {tf.check}")
    if tf.resolve is not None:
        lines.append(f"Have an agent resolve each task that conflicts: {tf.resolve or 'its own agent'}.")
    if any(j.spec.after for j in jobs):
        at_once = [j.id for j in jobs if not j.spec.after and j.action in (NEW, START, RERUN, WATCH)]
        lines.append("Merge each task that others wait for as soon as it is done; the rest at the end.")
        lines.append(f"Start at once: {', '.join(at_once) or 'none'}")
        for j in jobs:
            if j.spec.after:
                lines.append(f"  {j.id} waits for {', '.join(j.spec.after)} to merge, "
                             f"then starts from {base} as it is then")
    width = max(len(j.id) for j in jobs)
    labels = {NEW: "create and run", START: "prepare and run", RERUN: "run again", WATCH: "still running: watch",
              FINISHED: "finished: merge only", MERGED_BEFORE: "merged: skip"}
    for j in jobs:
        lines.append(f"  {j.id.ljust(width)}  {labels[j.action]:<21}  {printable(j.spec.title, newlines=False)}")
        if j.action in (NEW, START, RERUN):
            lines.append(f"  {''.ljust(width)}  agent: {j.command}")
    return "\n".join(lines)


# -- progress -----------------------------------------------------------------------------------
def last_log_line(repo: Repo, task_id: str) -> str:
    """The last non-empty line of a task's log (read from its end only)."""
    try:
        with open(agent.log_path(repo.task_dir(task_id)), "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 4096))
            tail = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    for line in reversed(tail.splitlines()):
        line = "".join(ch for ch in _ANSI.sub("", line) if ch.isprintable()).strip()
        if line:
            return line
    return ""


def _terminal_size() -> os.terminal_size:
    import shutil

    return shutil.get_terminal_size()


def _elapsed(job: Job) -> str:
    """How long its agent ran (runs): from the stamps the merge note records, so both say the same."""
    if not job.started:
        return ""
    seconds = agent.run_seconds(job.task.started if job.task else "", job.finished if job.ended else "")
    if seconds is None:
        seconds = int((job.ended or time.monotonic()) - job.started)
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """One line per task: redrawn in place on a terminal, appended on change otherwise."""

    def __init__(self, repo: Repo, jobs: list[Job], stream: TextIO) -> None:
        self.repo = repo
        self.jobs = jobs
        self.stream = stream
        # In place only when the block fits on the screen: the cursor cannot go above its top.
        self.tty = stream.isatty() and len(jobs) < _terminal_size().lines - 1
        self.drawn: list[str] = []  # the lines on the terminal now, below the cursor's row
        self.shown: dict[str, str] = {}
        self.width = max(len(j.id) for j in jobs)

    def _log(self, job: Job) -> str:
        return last_log_line(self.repo, job.id) if job.started or job.state.startswith("failed") else ""

    def message(self, text: str) -> None:
        """Print other output; on a terminal the progress block is drawn again below it."""
        self.stream.write(text)
        self.stream.flush()
        self.drawn = []

    def line(self, job: Job) -> str:
        """The task's progress line on a terminal."""
        return printable(f"{job.id.ljust(self.width)}  {job.state:<28}  {_elapsed(job):>6}  {self._log(job)}".rstrip(),
                         newlines=False)

    def plain(self, job: Job) -> str:
        """The line appended when the task's state changes and the output is not a terminal."""
        elapsed = f" after {_elapsed(job)}" if job.ended else ""
        log = self._log(job) if job.ended or job.state.startswith("failed") else ""
        return printable(f"task {job.id}: {job.state}{elapsed}" + (f": {log}" if log else ""), newlines=False)

    def update(self) -> None:
        """Show the current state of every job."""
        if self.tty:
            columns = _terminal_size().columns
            lines = [self.line(j)[:columns - 1] for j in self.jobs]
            if lines == self.drawn:
                return
            # up to the first line of the block, then rewrite each line (\x1b[2K: clear it first)
            self.stream.write("\x1b[F" * len(self.drawn) + "".join(f"\x1b[2K{line}\n" for line in lines))
            self.drawn = lines
        else:
            for j in self.jobs:
                if self.shown.get(j.id) != j.state:
                    self.shown[j.id] = j.state
                    self.stream.write(f"{self.plain(j)}\n" if j.state != "queued" else "")
        self.stream.flush()


# -- running ------------------------------------------------------------------------------------
class Run:
    """One `git agent-run`."""

    def __init__(self, repo: Repo, tf: TaskFile, jobs: list[Job], base: str, base_commit: str,
                 stream: TextIO = sys.stdout, *, request: pool.PoolRequest | None = None) -> None:
        self.repo = repo
        self.request = request  # take worktrees from the pool (pool = true), as spawn --pool does
        from git_agents.tasks.isolation import mode as isolation_mode

        self.isolation = isolation_mode(repo, tf.isolation)  # with pool = true: clones made from pool slots
        self.tf = tf
        self.jobs = jobs
        self.base = base
        self.base_commit = base_commit
        self.progress = Progress(repo, jobs, stream)
        self.stream = stream
        self.stop_requested = False

    def _on_sigint(self, signum: int, frame: object) -> None:
        self.stop_requested = True

    def _checkpoint(self) -> None:
        """Stop here if Ctrl-C was pressed (it is held pending while SIGINT is blocked)."""
        if self.stop_requested or signal.SIGINT in signal.sigpending():
            self.stop_requested = True
            raise KeyboardInterrupt

    def execute(self) -> int:
        """Prepare, run, merge, clean, report; return the exit code.

        Ctrl-C reaches the whole foreground process group, so a git command running at that
        moment would die half-way (`git config` then leaves config.lock behind, and every
        later write fails). SIGINT is therefore blocked for the whole run, which every child
        inherits (agents are started with it unblocked), and the loop looks for a pending one
        at its checkpoints: it stops between steps, never inside one.
        """
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            try:
                self._prepare_all()
                self._run_agents()
            except KeyboardInterrupt:
                return self._interrupted()
            self._settle()
            if self.tf.merge:
                self._merge()
            return self._report()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # a pending one only sets the flag
            signal.signal(signal.SIGINT, previous)

    def _prepare_all(self) -> None:
        from git_agents.lifecycle.start import load_template

        template = load_template(self.repo)
        for job in self.jobs:
            if job.action == MERGED_BEFORE:
                job.state = "merged"
                if job.task is not None:  # merged (by the killed run, or a merge --continue) before it recorded it
                    _journal(self.repo, self.tf.path, job.id, job.task.merge_commit)
            elif job.action == FINISHED:
                job.state = "finished"
            elif job.action == WATCH:
                job.state, job.started = "running", time.monotonic()
            if job.action not in (NEW, START):
                continue
            self._checkpoint()
            job.state = "preparing"
            self.progress.update()
            sparse = job.spec.sparse if job.spec.sparse is not None else self.tf.sparse
            if job.action == NEW:
                # The run holds a pooled slot until the task's agent starts (starting.start hands it over).
                request = starting.StartRequest(
                    (job.id,), prompt=job.spec.text, title=job.spec.title, base=self.base,
                    base_commit=self.base_commit, command=job.command, pool=self.request,
                    owner=(os.getpid(), agent.process_start(os.getpid()) or ""), sparse=sparse,
                    isolation=self.isolation, until=starting.CREATE)
                try:
                    job.task = starting.start_task(self.repo, request).task
                except pool.PoolExhausted as exc:  # nothing was recorded: a resumed run tries again
                    job.state, job.outcome = "failed: pool exhausted", f"failed: {exc.message}"
                    continue
            else:
                assert job.task is not None
                starting.finish_create(self.repo, job.task, job.spec.text, template,
                                       sparse=starting.sparse_setting(self.repo, sparse))
            assert job.task is not None
            if job.spec.after:  # made ready (from the target as it is then) once its prerequisites merged
                if job.task.after != " ".join(job.spec.after):
                    write_task(self.repo, job.id, after=" ".join(job.spec.after))
                    job.task.after = " ".join(job.spec.after)
                job.deferred, job.state = True, f"waiting for {', '.join(job.spec.after)}"
                continue
            self._ready(job)
        self.progress.update()

    def _ready(self, job: Job) -> bool:
        """Make a created task's worktree ready for its agent; False (the job failed) if it cannot be."""
        assert job.task is not None
        why = starting.ready_to_start(self.repo, job.task, job.command)
        if why is not None:
            job.state = "failed: setup" if why.setup is not None else "failed: agent not found"
            if why.setup is not None:
                self.progress.message(starting.setup_failure_text(job.task, why.setup))
            return False
        job.state = "queued"
        return True

    # -- tasks that wait for tasks ----------------------------------------------------------------
    def _dependents(self) -> set[str]:
        return {a for j in self.jobs for a in j.spec.after}

    def _blocker(self, job: Job) -> str | None:
        """"" when every prerequisite has merged, None while one is still to be decided, else why it is blocked."""
        by_id = {j.id: j for j in self.jobs}
        for pre in (by_id[a] for a in job.spec.after):
            if pre.merged:
                continue
            if pre.state == "blocked":
                return f"blocked: prerequisite {pre.id} is blocked"
            if pre.outcome:
                return f"blocked: prerequisite {pre.id} did not merge ({pre.outcome})"
            if pre.state.startswith("failed"):  # its preparation failed: it will never run
                return f"blocked: prerequisite {pre.id} {pre.state}"
            return None
        return ""

    def _block(self, job: Job, why: str) -> None:
        job.deferred, job.state, job.outcome = False, "blocked", why
        if job.task is not None:
            write_task(self.repo, job.id, state=TaskState.BLOCKED, reason=why.removeprefix("blocked: "))

    def _start_deferred(self, job: Job) -> bool:
        """Move a waiting task onto the target as it is now (its agent never ran), then make it ready."""
        assert job.task is not None
        task = job.task
        job.deferred = False
        tip = self.repo.git("rev-parse", f"{branch_ref(task.base)}^{{commit}}")
        at = self.repo.git("rev-parse", branch_ref(task.branch))
        if tip != task.base_commit and at == task.base_commit and not unsaved_work(self.repo, task.worktree):
            self.repo.git.at(task.worktree).run("reset", "--hard", "--quiet", "--no-recurse-submodules", tip,
                                                env={"GIT_REFLOG_ACTION": "agent-run: start after prerequisites"})
            write_task(self.repo, job.id, base_commit=tip)
            task.base_commit = tip
        return self._ready(job)

    def _merge_now(self, job: Job) -> None:
        """Merge a finished task that others wait for at once (settled as at the end)."""
        self._settle_job(job, parse_bool(self.repo.setting("agent.autoCommit")))
        if not job.outcome and not job.merged:
            self._merge_jobs([job])
            if not job.merged and not job.outcome:
                job.outcome = "not merged"

    def _run_agents(self) -> None:
        queue = [j for j in self.jobs if j.state == "queued"]
        running = [j for j in self.jobs if j.state == "running"]
        waiting = [j for j in self.jobs if j.deferred]
        dependents = self._dependents() if self.tf.merge else set()
        for job in self.jobs:  # finished in an earlier run: merge now what others wait for
            if job.id in dependents and job.action == FINISHED:
                self._merge_now(job)
        while queue or running or waiting:
            self._checkpoint()
            changed = True
            while changed:  # again after each decision: blocking one task may block the next
                changed = False
                for job in list(waiting):
                    why = self._blocker(job)
                    if why is None:
                        continue
                    waiting.remove(job)
                    changed = True
                    if why:
                        self._block(job, why)
                    elif self._start_deferred(job):
                        queue.append(job)
                    self.progress.update()
            if waiting and not queue and not running:  # nothing left that could merge a prerequisite
                for job in waiting:
                    self._block(job, f"blocked: prerequisite(s) {', '.join(job.spec.after)} never finished")
                waiting = []
            while queue and len(running) < self.tf.jobs:
                job = queue.pop(0)
                assert job.task is not None
                starting.start(self.repo, job.task, job.command, in_tmux=job.tmux)
                job.state, job.started = "running", time.monotonic()
                running.append(job)
                self.progress.update()  # now: under load a short agent may end before the next round
            for job in list(running):
                if self._agent_ended(job):
                    running.remove(job)
                    if job.id in dependents:
                        self.progress.update()
                        self._merge_now(job)
            self.progress.update()
            if queue or running or waiting:
                time.sleep(POLL_SECONDS)
        self._checkpoint()  # after the last agent, before merging

    def _agent_ended(self, job: Job) -> bool:
        task = job.task
        assert task is not None
        task_dir = self.repo.task_dir(task.id)
        if agent.running(task) is not None:  # any process of its group: the supervisor may have ended first
            return False
        record = agent.read_exit(task_dir, task.launch)
        job.ended = time.monotonic()
        job.finished = record.finished if record else ""
        job.state = f"exited {record.code}" if record else "died"
        return True

    def _interrupted(self) -> int:
        stopped = []
        # every process of each group is gone before its task is called interrupted
        agent.stop_tasks([(j.task, self.repo.task_dir(j.id)) for j in self.jobs
                          if j.state == "running" and j.task is not None])
        for job in self.jobs:
            if job.state == "running" and job.task is not None:
                write_task(self.repo, job.id, state=TaskState.INTERRUPTED, reason="git agent-run was interrupted")
                job.state = "interrupted"
                stopped.append(job.id)
        self.progress.update()
        what = f"stopped the agents of task(s) {', '.join(stopped)}; " if stopped else ""
        self.stream.write(f"Interrupted: {what}every worktree and branch is kept.\n"
                          f"Resume with: git agent-run --resume {self.tf.path}\n")
        self.stream.flush()
        return ExitCode.INTERRUPTED

    # -- after the agents -------------------------------------------------------------------------
    def _settle(self) -> None:
        """Decide, for each task, whether it is ready to merge; auto-commit where asked."""
        auto_commit = parse_bool(self.repo.setting("agent.autoCommit"))
        for job in self.jobs:
            if job.action == MERGED_BEFORE or job.task is None:
                job.merged = job.merged or job.action == MERGED_BEFORE
                continue
            if job.merged or job.outcome:  # decided already (merged as it went, or blocked)
                continue
            self._settle_job(job, auto_commit)

    def _merged_outside(self, job: Job) -> bool:
        """Whether the user merged this finished task with plain git (while the run waited, or
        before --resume): then it counts as merged, and the tasks after it start."""
        assert job.task is not None
        job.outside = merged_outside(self.repo, job.task)
        if job.outside:
            job.merged, job.state = True, "merged"
            job.outcome = f"merged outside the run ({job.outside[:12]})"
            _journal(self.repo, self.tf.path, job.id, job.outside)
        return bool(job.outside)

    def _settle_job(self, job: Job, auto_commit: bool) -> None:
        """Decide whether one finished task is ready to merge (job.outcome stays empty) or why not."""
        task = job.task
        assert task is not None
        if self._merged_outside(job):
            return
        if task.state == TaskState.FAILED:
            job.outcome = f"failed: {task.reason}"
            return
        state, code, _ = agent_state(self.repo, task)
        if state == NOT_COMMITTED and auto_commit:
            git = self.repo.git.at(task.worktree)
            try:
                git.run("add", "--all")
                git.run("commit", "--quiet", "-m", task.title)  # hooks run, as for any commit
                state = "exited"
            except AgentError as exc:
                job.outcome = f"{NOT_COMMITTED} (agent.autoCommit failed: {exc.message.splitlines()[0]})"
                return
        if state in (NOT_COMMITTED, NO_CHANGE):
            job.state = job.outcome = state
        elif state != "exited":
            job.outcome = f"agent {state}"
        elif code != 0:
            job.outcome = f"agent exited {code}"
        elif self.repo.git.ok("merge-base", "--is-ancestor", branch_ref(task.branch), task.base_commit):
            job.outcome = "agent exited 0 without commits"
        elif unsaved_work(self.repo, task.worktree):
            job.outcome = "uncommitted or untracked work left in its worktree"

    def _merge(self) -> None:
        """Merge the ready tasks as `git agent-merge --check CHECK` would; clean up the merged ones."""
        from git_agents.lifecycle.remove import remove_task, what_would_be_lost

        ready = [j for j in self.jobs if j.task is not None and not j.outcome and not j.merged]
        self._merge_jobs(ready)
        self.repo.reload_config()
        tasks = load_tasks(self.repo)
        for job in self.jobs:
            task = tasks.get(job.id)
            if job.merged and task is not None and not what_would_be_lost(self.repo, task):
                # recorded before it goes: a task neither recorded nor left would be created and run again
                _journal(self.repo, self.tf.path, job.id, task.merge_commit or job.outside)
                job.spent = usage.runs(self.repo.task_dir(task.id))  # the report's totals, read before they go
                remove_task(self.repo, task, force=False)

    def _merge_jobs(self, ready: list[Job]) -> None:
        """Merge these ready jobs' tasks, in this order, as `git agent-merge` would; record each outcome."""
        from git_agents.lifecycle.start import launch_resolver, resolve_options
        from git_agents.merging.queue import Options, check_failure_text, merge_style, merge_tasks

        targets: dict[str, list[Job]] = {}
        for job in ready:
            assert job.task is not None
            targets.setdefault(job.task.base, []).append(job)
        resolve, tries = resolve_options(self.repo, self.tf.resolve, os.path.dirname(os.path.abspath(self.tf.path)))
        options = Options(check=self.tf.check or None, resolve=resolve, resolve_attempts=tries,
                          launcher=launch_resolver, style=merge_style(self.repo, self.tf.style or None))
        from git_agents.tasks.integrity import problems as tampered
        from git_agents.tasks.status import branch_tips

        held = tampered(self.repo, [j.task for j in ready if j.task], branch_tips(self.repo))
        for group in targets.values():
            for job in group:
                if job.id in held:
                    job.outcome = f"not merged: {held[job.id]}"
            group = [j for j in group if j.id not in held]
            if not group:
                continue
            try:
                attempts, meanwhile = merge_tasks(self.repo, [j.task for j in group if j.task], options)
            except AgentError as exc:
                for job in group:
                    job.outcome = f"not merged: {exc.message}"
                continue
            by_id = {j.id: j for j in group}
            for task_id in meanwhile:
                by_id[task_id].merged, by_id[task_id].outcome = True, "merged meanwhile by another merge"
            for attempt in attempts:
                job = by_id[attempt.task_id]
                if attempt.status == TaskState.MERGED:
                    job.merged, job.state = True, "merged"
                    job.outcome = f"merged ({attempt.commit[:12]})"
                    if attempt.resolved_by:
                        job.outcome += f" after its conflict was resolved by {attempt.resolved_by}"
                    _journal(self.repo, self.tf.path, job.id, attempt.commit)
                elif attempt.status == TaskState.CONFLICT:
                    job.state = "conflict"
                    job.outcome = f"conflict in {quote_paths(attempt.conflicts, self.repo.config)}"
                    if attempt.check_output:  # the resolver tried
                        job.outcome += f" ({attempt.check_output})"
                    if attempt.resolve_log:
                        self.progress.message(f"Resolver's log for task {job.id} ends:\n"
                                              + "".join(f"    | {line}\n" for line in attempt.resolve_log.splitlines()))
                elif attempt.status == TaskState.CHECK_FAILED:
                    job.state = "check-failed"
                    last = (attempt.check_output.strip().splitlines() or ["no output"])[-1]
                    job.outcome = f"check failed on the merged result: {last}"
                    self.progress.message(check_failure_text(attempt))
                else:
                    job.outcome = "nothing to merge"

    def _report(self) -> int:
        width = max(len(j.id) for j in self.jobs)
        lines = ["", "Report:"]
        failed = 0
        for job in self.jobs:
            if job.merged or (not self.tf.merge and not job.outcome):
                text = job.outcome or "finished (merge = false)"
            else:
                failed += 1
                text = job.outcome or "not merged"
                if job.task is not None and job.task.worktree:
                    text += f"; kept {job.task.branch} in {os.path.relpath(job.task.worktree)}"
            lines.append(f"  {job.id.ljust(width)}  {text}")
        merged = sum(j.merged for j in self.jobs)
        summary = f"{merged} merged, {failed} not merged" if self.tf.merge else \
            f"{len(self.jobs) - failed} succeeded, {failed} failed"
        spent = usage.total([u for j in self.jobs if j.task is not None
                             for u in (j.spent if j.spent is not None else usage.runs(self.repo.task_dir(j.task.id)))])
        if spent is not None:  # what the agents' CLIs reported, before the last line (scripts read that one)
            lines.append(f"Tokens: {usage.describe(spent)}")
        lines.append(summary)
        self.stream.write(printable("\n".join(lines)) + "\n")  # outcomes hold reasons and paths
        self.stream.flush()
        return ExitCode.FAILED if failed else ExitCode.OK
