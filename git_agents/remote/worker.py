"""One worker: claims tasks from the remote queue, runs them with the core, publishes their results.

A single-threaded loop (no locks between threads to get wrong): finish tasks whose agents have
exited, renew claims that are due, claim new tasks while slots are free, sleep. Each claim is a
compare-and-swap push, so a rejected push simply means another worker won. The result, the task
branch and the removal of the claim go in one atomic push that also requires the claim to still
be ours: a worker whose claim was taken over (it was presumed dead) can never publish.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import sys
import time
from dataclasses import dataclass
from types import FrameType

from git_agents.core.errors import AgentError, GitError
from git_agents.core.output import printable
from git_agents.core.refs import branch_ref
from git_agents.core.repo import Repo
from git_agents.core.settings import parse_bool
from git_agents.core.worktrees import unsaved_work
from git_agents.lifecycle import start as starting
from git_agents.lifecycle.remove import remove_task
from git_agents.remote.queue import BadRecord, RemoteQueue, RemoteTask, Spec, Update, ref
from git_agents.tasks import agent, isolation
from git_agents.tasks.presets import expand, presets
from git_agents.tasks.status import agent_state
from git_agents.tasks.store import TaskState, load_tasks, write_task

LOG_TAIL_LINES = 20
CLAIM_WINDOW = 8


@dataclass
class Job:
    """A task this worker holds a claim on."""

    task_id: str
    queue: str  # the queue entry's commit (parent of every claim commit, so claims stay small)
    claim: str  # our current claim commit on the remote
    claimed: float
    beat: float  # when we last renewed the claim
    branch: str = ""
    started: float = 0.0
    exit_code: int | None = None  # set when the agent could not even start
    spec_problem: str = ""  # the queue entry cannot be used: publish a failed result without running anything
    base_commit: str = ""  # the commit the task started from (the note's `base`)
    agent: str = ""  # the command line that ran
    died: bool = False  # the agent ended without writing its exit record (killed, OOM)


def log(message: str) -> None:
    """A progress line (workers usually run unattended: keep one line per event).

    Titles, ids and reasons may come from the remote: control characters are escaped.
    """
    sys.stdout.write(f"[{time.strftime('%H:%M:%S')}] {printable(message)}\n")
    sys.stdout.flush()


class Worker:
    """Runs queued tasks from one remote in one clone."""

    def __init__(self, repo: Repo, queue: RemoteQueue, *, jobs: int, agent_command: str | None,
                 lease: float, poll: float, once: bool, name: str, verbosity: int = 0, isolation: str = "") -> None:
        self.repo = repo
        self.queue = queue
        self.jobs = jobs
        self.agent_command = agent_command
        self.lease = lease
        self.poll = poll
        self.once = once
        self.name = name
        self.verbosity = verbosity  # -1: only failures, take-overs and hand-backs; 1: also heartbeats
        self.isolation = isolation  # "" (a guarded worktree), "clone" or "sandbox", as git agent-run's
        self.held: dict[str, Job] = {}
        self.skipped: set[str] = set()  # ids this clone cannot run (left-overs of an earlier run here)
        self.stopping = 0  # 1: finish what is in hand; 2: hand it back now
        self.failures = 0
        self.tasks: dict[str, RemoteTask] = {}
        self.next_fetch = 0.0  # fetch the queue again no earlier than this (monotonic)
        self.to_clean: list[Job] = []  # published tasks whose local worktree and branch can go
        self.warned: set[str] = set()  # problems already reported (each is said once, not at every fetch)
        self.trust_commands = parse_bool(repo.setting("agent.trustQueueCommands"))

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> int:
        """Work until stopped (or, with `once`, until no task is left to run); the exit code."""
        if self.queue.signs():  # find out now, not when the first result is to be published
            try:
                self.queue.record_commit("agent-worker: signing test", {}, sign=True)
            except GitError as error:
                raise AgentError(f"cannot sign result commits: {error.message.splitlines()[0]}",
                                 hint="check user.signingkey and gpg.format (git commit-tree -S must work)") from None
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._say(f"worker {self.name} on {self.queue.remote}: up to {self.jobs} task(s) at a time")
            while True:
                self._finish_exited()
                self._heartbeat()
                if self.stopping >= 2:
                    self._hand_back()
                    return 130
                if self.stopping and not self.held:
                    self._clean_all()
                    self._say("stopped")
                    return 0
                try:
                    fetched = self._claim_more()
                except GitError as error:  # the remote is unreachable: the work in hand goes on
                    log(f"cannot reach {self.queue.remote}: {error.message.splitlines()[0]}")
                    fetched, self.next_fetch = False, time.monotonic() + self.poll
                self._clean_all()  # after claiming: cleaning up is not on the way to the next task
                if fetched and self.once and not self.held and self._drained():
                    return 1 if self.failures or self.skipped else 0
                # Short naps: agents' exits and signals are noticed quickly; the remote is asked every `poll` s.
                time.sleep(min(0.1, max(0.01, self.next_fetch - time.monotonic())))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _say(self, message: str, level: int = 0) -> None:
        """A progress line shown at this verbosity or above (failures always go through `log`)."""
        if self.verbosity >= level:
            log(message)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping += 1
        if self.stopping == 1:
            log(f"{signal.Signals(signum).name}: taking no new tasks, finishing {len(self.held)} in hand"
                " (signal again to hand them back)")

    # -- claiming ------------------------------------------------------------------------------
    def _claim_more(self) -> bool:
        """Fetch the queue (at most every `poll` seconds) and claim tasks while slots are free.

        Returns whether it fetched with nothing left to claim, so the caller may check for the end.
        """
        if self.stopping or len(self.held) >= self.jobs or time.monotonic() < self.next_fetch:
            return False
        self.queue.fetch()
        self.next_fetch = time.monotonic() + self.poll
        self.tasks = self.queue.tasks()
        local = load_tasks(self.repo)
        claimed_any = False
        for task in self._candidates():
            if len(self.held) >= self.jobs or self.stopping:
                break
            if task.id in local or self.repo.git.has_branch(f"{self.repo.branch_prefix}{task.id}"):
                log(f"skipping task {task.id}: this clone already has a task or branch of that name"
                    f" (git agent-clean {task.id} to let this worker take it)")
                self.skipped.add(task.id)
                continue
            try:
                claimed = self._claim(task)
            except AgentError:
                raise  # the remote or this clone: the loop's business, not this task's
            except Exception as error:  # noqa: BLE001  (a record no check foresaw: it must not stop the worker)
                log(f"warning: skipping task {task.id}: {type(error).__name__}: {error}")
                self.skipped.add(task.id)
                job = self.held.get(task.id)
                if job is not None:
                    self._release(job)
                continue
            claimed_any = claimed_any or claimed
        if claimed_any:
            self.next_fetch = 0.0  # there may be more: look again as soon as a slot frees up
        return not claimed_any

    def _candidates(self) -> list[RemoteTask]:
        """Claimable tasks, roughly in id order: the first few shuffled, so that workers that
        fetched the same queue do not all race for the same task (each lost race costs a push)."""
        found = []
        for task in self.tasks.values():
            if not task.queue or task.result or task.merged or task.id in self.held or task.id in self.skipped:
                continue
            if "queue" in task.bad or "claims" in task.newer:  # not ours to run: skip it, say why once
                self._skip(task, next(iter(task.bad.values())))
                continue
            if "claims" in task.bad:  # not a claim any worker wrote: it holds nothing, take it over
                self._warn(f"task {task.id}: {task.bad['claims']}; taking it over")
            elif task.claim:
                age = task.heartbeat_age()
                if age is None or age <= self.lease:
                    continue
            found.append(task)
        window = found[:CLAIM_WINDOW]
        random.shuffle(window)
        return window + found[CLAIM_WINDOW:]

    def _warn(self, message: str) -> None:
        """A problem with one record, said once per worker run."""
        if message not in self.warned:
            self.warned.add(message)
            log(f"warning: {message}")

    def _skip(self, task: RemoteTask, why: str) -> None:
        """Leave a task to other workers (this one will not run it); one warning line."""
        self._warn(f"skipping task {task.id}: {why}")
        self.skipped.add(task.id)

    def _command(self, spec: Spec) -> str:
        """The agent command line for a task; AgentError when this worker will not run it.

        --agent wins; a task's own agent is run only if it names a preset of this machine or
        agent.trustQueueCommands is true (anyone who can push to the remote writes specs).
        """
        if self.agent_command:
            return expand(self.repo, self.agent_command)
        if spec.agent:
            if spec.agent.strip().lower() in presets(self.repo) or self.trust_commands:
                return expand(self.repo, spec.agent)
            raise AgentError(f"its agent command comes from the remote ({spec.agent!r}) and"
                             " agent.trustQueueCommands is not true; pass --agent, or trust the queue's"
                             " commands: git config agent.trustQueueCommands true")
        command = self.repo.setting("agent.command")
        if not command:  # hand it back: a worker with an agent configured can run it
            raise AgentError("neither the task file nor this worker names an agent command"
                             " (pass --agent or set agent.command)")
        return expand(self.repo, command)

    def _claim(self, task: RemoteTask) -> bool:
        """Claim one task (taking over a stale claim by CAS on its value); start it if we won.

        A queue entry that cannot be used is still claimed, and published as failed at once
        (so that no worker tries it again); one a newer git-agents wrote, or whose command this
        worker will not run, is left unclaimed for others.
        """
        spec: Spec | None = None
        problem = ""
        try:
            spec = self.queue.spec(task)
        except BadRecord as bad:
            if bad.newer:
                self._skip(task, bad.message)
                return False
            problem = bad.message
        command = ""
        if spec is not None:
            try:
                command = self._command(spec)
            except AgentError as error:
                log(f"task {task.id}: cannot start: {error.message}")
                self.skipped.add(task.id)
                return False
        now = time.time()
        commit = self.queue.record_commit(
            f"agent-claim: task {task.id} by {self.name}",
            {"task": task.id, "worker": self.name, "claimed": now, "heartbeat": now,
             "took_over": task.claim_info.get("worker") if task.claim else None},
            parents=(task.queue,))
        result = self.queue.push([Update(ref("claims", task.id), commit, task.claim)], atomic=False)
        if not result.ok:
            return False  # another worker won (or took it over first)
        # A finished task has no claim either (its result and the deletion of its claim are one
        # atomic push), so creating a claim does not prove the task is still to do when our view of
        # the queue is older than that push. A result that exists now means it is done: give back.
        if self.queue.exists(ref("results", task.id)):
            self.queue.push([Update(ref("claims", task.id), None, commit)], atomic=False)
            return False
        if task.claim and "claims" in task.bad:
            log(f"took over task {task.id} from an unreadable claim")
        elif task.claim:
            log(f"took over task {task.id} from {task.claim_info.get('worker')}"
                f" (no heartbeat for {task.heartbeat_age(now) or 0:.0f}s)")
        else:
            self._say(f"claimed task {task.id}")
        job = Job(task.id, task.queue, commit, now, now)
        self.held[task.id] = job
        if spec is None:  # a poison pill: publish it as failed, so it is not retried forever
            log(f"task {task.id}: cannot run it: {problem}; publishing it as failed")
            job.spec_problem = problem
            return True
        try:
            self._start(spec, job, command)
        except AgentError as error:
            log(f"task {task.id}: cannot start: {error.message.splitlines()[0]}")
            if job.branch:  # a worktree and branch were made: publish the failure (the output is in the log)
                job.exit_code = 126
            else:
                self._release(job)
                self.skipped.add(task.id)
        return True

    def _start(self, spec: Spec, job: Job, command: str) -> None:
        """Prepare and start the task exactly as git agent-run does, from the remote's base branch.

        A worktree on a new branch, the prompt, the worktree made ready (copies, links, port,
        agent.setup), then the agent. A setup failure or a missing agent program becomes a
        failed result (published like any other), not a crash.
        """
        base = spec.base
        base_commit = self.queue.head(base)
        if base_commit is None:
            raise AgentError(f"base branch '{base}' is not on {self.queue.remote}")
        request = starting.StartRequest(
            (spec.id,), prompt=spec.prompt, title=spec.title or f"Task {spec.id}", base=base, base_commit=base_commit,
            command=command, pool=starting.pool_request(self.repo, None, None), isolation=self.isolation)
        job.base_commit, job.agent = base_commit, command
        try:
            outcome = starting.start_task(self.repo, request)
        except AgentError:
            task = load_tasks(self.repo).get(spec.id)
            if task is not None:  # made, but its agent could not be started: its failure is published
                job.branch, job.started = task.branch, time.time()
            raise
        job.branch, job.started = outcome.task.branch, time.time()
        why = outcome.why
        if why is not None:  # recorded as failed; published with the code a shell gives such a failure
            if why.setup is not None:
                self._fail_start(job, 125, "", why.reason)  # run_setup has logged its output
            else:
                self._fail_start(job, 127, f"git-agents: {why.reason}\n", why.reason)

    def _fail_start(self, job: Job, code: int, output: str, reason: str) -> None:
        """Say why the agent was not started (the task is recorded as failed); the result is
        published with `code` and `output`."""
        job.exit_code = code
        if output:
            with open(agent.log_path(self.repo.task_dir(job.task_id)), "a", encoding="utf-8") as fh:
                fh.write(output)
        log(f"task {job.task_id}: {reason}")

    # -- heartbeats ----------------------------------------------------------------------------
    def _heartbeat(self) -> None:
        """Renew every claim older than lease/3, each by CAS on our previous claim commit."""
        now = time.time()
        due = [j for j in self.held.values() if now - j.beat >= self.lease / 3]
        if not due:
            return
        updates, renewed = [], {}
        for job in due:
            commit = self.queue.record_commit(
                f"agent-claim: task {job.task_id} by {self.name}",
                {"task": job.task_id, "worker": self.name, "claimed": job.claimed, "heartbeat": now},
                parents=(job.queue,))
            updates.append(Update(ref("claims", job.task_id), commit, job.claim))
            renewed[job.task_id] = commit
        try:
            result = self.queue.push(updates, atomic=False)
        except GitError as error:  # the remote is unreachable: try again at the next turn
            log(f"heartbeat failed: {error.message.splitlines()[0]}")
            return
        for job in due:
            claim_ref = ref("claims", job.task_id)
            if result.refs.get(claim_ref, (False, ""))[0]:
                job.claim, job.beat = renewed[job.task_id], now
                self._say(f"renewed the claim on task {job.task_id}", level=1)
            elif result.lost(claim_ref):
                self._abandon(job, "its claim was taken over by another worker")

    def _abandon(self, job: Job, why: str) -> None:
        """Stop working on a task we no longer own; its local branch and worktree stay for inspection."""
        log(f"task {job.task_id}: {why}; stopping its agent (its branch {job.branch} stays in this clone)")
        task = load_tasks(self.repo).get(job.task_id)
        if task and task.pid:
            agent.stop(task.pid, task.pid_start)
        if task:
            write_task(self.repo, job.task_id, state=TaskState.FAILED, reason=why)
        self.held.pop(job.task_id, None)

    # -- finishing -----------------------------------------------------------------------------
    def _finish_exited(self) -> None:
        """Publish the result of every held task whose agent has ended."""
        for job in list(self.held.values()):
            if job.spec_problem:
                self._publish_bad_spec(job)
                continue
            if not job.branch:
                continue
            record = agent.read_exit(self.repo.task_dir(job.task_id))
            if record is None and job.exit_code is None:
                if not self._died(job):
                    continue
                job.died = True
                log(f"task {job.task_id}: its agent died without recording how it ended (killed?)")
            code = record.code if record is not None else job.exit_code
            self._publish(job, None if job.died else int(code if code is not None else 1))

    def _died(self, job: Job) -> bool:
        """Whether the task's agent is gone without an exit record, as `git agent-status` says "died"."""
        task = load_tasks(self.repo).get(job.task_id)
        if task is None or not task.pid:
            return False
        state, _, _ = agent_state(self.repo, task, check_work=False)
        # The supervisor writes its record just before it ends: look again before calling it dead.
        return state == "died" and agent.read_exit(self.repo.task_dir(job.task_id)) is None

    def _publish_bad_spec(self, job: Job) -> None:
        """Publish a failed result for a queue entry that cannot be run (no branch: nothing ran)."""
        record = {"task": job.task_id, "worker": self.name, "exit": None, "started": job.claimed,
                  "finished": time.time(), "branch": "", "tip": "", "reason": job.spec_problem,
                  "log_tail": ""}
        commit = self.queue.record_commit(f"agent-result: task {job.task_id} not run", record,
                                          parents=(job.queue,), sign=True)
        updates = [Update(ref("results", job.task_id), commit, ""), Update(ref("claims", job.task_id), None, job.claim)]
        try:
            result = self.queue.push(updates, atomic=True)
        except GitError as error:
            log(f"task {job.task_id}: publishing failed ({error.message.splitlines()[0]}); retrying later")
            return
        if not result.ok and not result.lost(updates[0].ref) and not result.lost(updates[1].ref):
            return  # a transient refusal: the next turn tries again
        self.held.pop(job.task_id, None)
        self.failures += 1
        self.next_fetch = 0.0

    def _publish(self, job: Job, code: int | None) -> None:
        """Push branch + result and delete the claim in one atomic push that requires the claim to be ours.

        `code` None: the agent died without an exit code. The result commit is signed when this
        worker has a signing key, so that `merge --remote --verify-signatures` can tell it from a forgery.
        """
        git = self.repo.git
        local = load_tasks(self.repo).get(job.task_id)
        if local is not None:  # a clone task's work is in its clone until fetched back; its agent has ended
            isolation.sync(self.repo, local, ended=True)
        tip = git("rev-parse", "--verify", f"{branch_ref(job.branch)}^{{commit}}")
        finished = time.time()
        record = {"task": job.task_id, "worker": self.name, "exit": code, "started": job.started,
                  "finished": finished, "branch": job.branch, "tip": tip, "log_tail": self._log_tail(job.task_id),
                  "base": job.base_commit, "agent": job.agent,
                  "prompt_hash": local.prompt_hash if local else ""}
        if job.died:
            record["reason"] = "the agent died without recording how it ended"
        word = "died" if code is None else f"exit {code}"
        try:
            result_commit = self.queue.record_commit(f"agent-result: task {job.task_id} {word}", record,
                                                     parents=(tip,), sign=True)
        except GitError as error:
            log(f"task {job.task_id}: cannot make its result commit ({error.message.splitlines()[0]}); retrying")
            time.sleep(1)
            return
        updates = [Update(branch_ref(job.branch), tip, ""),
                   Update(ref("results", job.task_id), result_commit, ""),
                   Update(ref("claims", job.task_id), None, job.claim)]
        for attempt in range(5):
            try:
                result = self.queue.push(updates, atomic=True)
            except GitError as error:
                log(f"task {job.task_id}: publishing failed ({error.message.splitlines()[0]}); retrying")
                time.sleep(min(2 ** attempt, 10))
                continue
            if result.ok:
                break
            if result.lost(ref("claims", job.task_id)):
                self._abandon(job, "its claim was taken over by another worker before it finished")
                return
            if result.lost(updates[0].ref) or result.lost(updates[1].ref):
                self.failures += 1
                self._abandon(job, f"{self.queue.remote} already has a branch {job.branch} or a result for it;"
                                   " nothing was published")
                return
            time.sleep(0.05 * (attempt + 1))  # a transient refusal (a ref lock held): try again
        else:
            log(f"task {job.task_id}: could not publish its result; keeping the claim and retrying later")
            return
        self.held.pop(job.task_id, None)
        self.next_fetch = 0.0
        if code != 0:
            self.failures += 1
        outcome = "done" if code == 0 else "failed (the agent died)" if code is None else f"failed (exit {code})"
        message = f"task {job.task_id} {outcome}: pushed {job.branch}"
        self._say(message, level=-1 if code else 0)
        self.to_clean.append(job)

    def _log_tail(self, task_id: str) -> str:
        try:
            with open(agent.log_path(self.repo.task_dir(task_id)), encoding="utf-8", errors="replace") as fh:
                return "".join(fh.readlines()[-LOG_TAIL_LINES:])
        except OSError:
            return ""

    def _clean_all(self) -> None:
        while self.to_clean:
            self._clean_local(self.to_clean.pop())

    def _clean_local(self, job: Job) -> None:
        """Remove the task's worktree and local branch once everything is on the remote (never unsaved work)."""
        task = load_tasks(self.repo).get(job.task_id)
        if task is None:
            return
        if os.path.isdir(task.worktree) and unsaved_work(self.repo, task.worktree):
            log(f"task {job.task_id}: its worktree {task.worktree} has uncommitted work; kept")
            return
        remove_task(self.repo, task, force=False)  # a pool slot (agent.pool) is given back, not removed

    # -- giving back ---------------------------------------------------------------------------
    def _release(self, job: Job) -> None:
        """Delete our claim (only if it is still ours) so another worker can run the task."""
        try:
            self.queue.push([Update(ref("claims", job.task_id), None, job.claim)], atomic=False)
        except GitError as error:
            log(f"task {job.task_id}: could not release its claim ({error.message.splitlines()[0]});"
                " it will be taken over when its lease expires")
        self.held.pop(job.task_id, None)

    def _hand_back(self) -> None:
        """Stop the agents in hand and release their claims (their local work stays in this clone)."""
        for job in list(self.held.values()):
            task = load_tasks(self.repo).get(job.task_id)
            if task and task.pid:
                agent.stop(task.pid, task.pid_start)
            if task:
                write_task(self.repo, job.task_id, state=TaskState.FAILED, reason="handed back to the queue")
            self._release(job)
            log(f"handed task {job.task_id} back to the queue")

    def _drained(self) -> bool:
        """Whether nothing is left that this worker could ever run (every task has a result or is skipped)."""
        return all(t.result or t.merged or not t.queue or t.id in self.skipped or t.id in self.held
                   for t in self.tasks.values())


def default_name() -> str:
    """hostname:pid, unique enough to tell workers apart in `git agent-queue list`."""
    return f"{socket.gethostname()}:{os.getpid()}"
