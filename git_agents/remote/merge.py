"""`git agent-merge --remote R`: merge the finished tasks of a shared queue into the remote's branches.

The merges are computed here, in memory, with the same code as a local merge (merging.chain),
on top of the remote's target tip; then one atomic push moves each target with a lease on its
old value, the notes ref with a lease on its old value, and creates refs/agents/merged/<id>.
If anyone moved any of them meanwhile, nothing changes on the remote: fetch, merge again, retry.

The check gate and the dry run are the local merge queue's (merging.chain.build_chain, merging.checks):
each merged result is checked in the scratch worktree before the chain goes on, and a task
whose result fails gets refs/agents/rejected/<id> (in the same atomic push) so that
`git agent-queue list` shows it as check-failed; a later run checks it again.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

from git_agents.core.errors import AgentError
from git_agents.core.lock import RepoLock
from git_agents.core.refs import branch_ref
from git_agents.core.repo import Repo
from git_agents.core.settings import parse_bool
from git_agents.core.worktrees import list_worktrees
from git_agents.merging.chain import Candidate, build_chain
from git_agents.merging.checks import Checker
from git_agents.merging.inmemory import Attempt, advance_branch
from git_agents.merging.queue import Options, check_target_worktree, merge_message, signs_commits
from git_agents.merging.report import report
from git_agents.remote.queue import BadRecord, RemoteQueue, RemoteTask, Update, ref
from git_agents.tasks.notes import NOTES_REF, add_notes, note_fields
from git_agents.tasks.store import Task, TaskState, now_iso

MAX_ROUNDS = 10


def merge_remote(repo: Repo, remote: str | None, ids: list[str], *, check: str | None = None,
                 batch: bool = False, dry_run: bool = False, verbosity: int = 0,
                 verify: bool | None = None, style: str = "merge") -> int:
    """Merge finished queue tasks (all, or `ids`) into their targets on the remote; the exit code.

    Each lands in `style` (merging.inmemory.STYLES: a merge commit, a squashed commit, or its commits replayed).

    With `check`, each merged result is checked in the scratch worktree before the chain goes
    on (as a local merge does, see checks.py); a result that fails is left out and recorded on
    the remote as refs/agents/rejected/<id>. With `dry_run`, only predict: nothing is pushed.
    With `verify` (default: agent.verifyResults, on unless the user chose to trust unsigned
    results), only results whose commit has a good signature by a trusted key are merged. A task
    whose records cannot be used is left out with a warning.
    """
    queue = RemoteQueue(repo, remote)
    if verify is None:
        verify = parse_bool(repo.setting("agent.verifyResults"))
    if verify:
        _check_verify_config(repo)
    # A pattern, not refs/notes/agents itself: that fails the fetch while the remote has no notes yet.
    notes_track = f"refs/agents/remote-notes/{queue.name}/{NOTES_REF.removeprefix('refs/notes/')}"
    for round_ in range(MAX_ROUNDS):
        queue.fetch(f"+refs/notes/*:refs/agents/remote-notes/{queue.name}/*")
        tasks = queue.tasks()
        unknown = [i for i in ids if i not in tasks or not tasks[i].queue]
        if unknown:
            raise AgentError(f"no such task in the queue on {queue.remote}: {', '.join(unknown)}",
                             hint="git agent-queue list shows the queue")
        chosen = [tasks[i] for i in ids] if ids else list(tasks.values())
        groups, problems = _ready(repo, queue, chosen, explicit=bool(ids), verify=verify)
        opts = Options(verbosity=verbosity, show_empty=bool(ids), style=style)
        if dry_run:
            return _predict(repo, queue, groups, problems, opts)
        if not groups:
            return _report(repo, [], problems, queue.remote, {}, opts)
        attempts: list[Attempt] = []
        updates: list[Update] = []
        moved: dict[str, tuple[str, str]] = {}
        notes: dict[str, dict[str, str]] = {}
        with RepoLock(repo.common_dir, "merge"), Checker(repo, check or "") as checker:
            remote_notes = _sync_notes(repo, notes_track)
            for target, group in groups.items():
                old = queue.head(target)
                if old is None:
                    for task in group:
                        problems[task.id] = f"its target branch '{target}' is not on {queue.remote}"
                    continue
                new, done = _chain_results(repo, old, group, checker if check else None, batch, style)
                attempts += done
                if new != old:
                    moved[target] = (old, new)
                    updates.append(Update(branch_ref(target), new, old))
                for a in done:
                    task = tasks[a.task_id]
                    if a.status == TaskState.MERGED:
                        notes[a.commit] = _queue_note(queue, task, target, a)
                    if a.status == TaskState.CHECK_FAILED:
                        updates.append(_rejection(queue, task, a, target, old, str(check)))
                    elif task.rejected:  # it merges (or conflicts) now: the earlier check failure is history
                        updates.append(Update(ref("rejected", task.id), None, task.rejected))
            merged = [a for a in attempts if a.status == TaskState.MERGED]
            if not updates:
                return _report(repo, attempts, problems, queue.remote, moved, opts)
            if merged:
                add_notes(repo, notes)
                updates.append(Update(NOTES_REF, repo.git("rev-parse", NOTES_REF), remote_notes))
                updates += [Update(ref("merged", a.task_id), a.commit, "") for a in merged]
            result = queue.push(updates, atomic=True)
        if result.ok:
            _advance_local(repo, moved)
            return _report(repo, attempts, problems, queue.remote, moved, opts)
        if not any(result.lost(u.ref) for u in updates) and "atomic transaction failed" not in result.reason():
            # (a server-side transaction failure with no culprit named is a ref lock held: retry too)
            raise AgentError(f"{queue.remote} refused the merge push: {result.reason()}; nothing changed there")
        sys.stderr.write(f"note: {queue.remote} moved while merging (round {round_ + 1}); merging again\n")
        time.sleep(0.05 * (round_ + 1))
    raise AgentError(f"{queue.remote} kept moving while merging; gave up after {MAX_ROUNDS} rounds, nothing changed",
                     hint="run git agent-merge --all --remote again")


def _check_verify_config(repo: Repo) -> None:
    """Refuse to verify with SSH signatures when there is no allowed signers file to verify against."""
    fmt = (repo.config.get("gpg.format") or ["openpgp"])[-1].lower()
    signers = (repo.config.get("gpg.ssh.allowedsignersfile") or [""])[-1]
    if fmt == "ssh" and not signers:
        raise AgentError("cannot verify the results' signatures: gpg.ssh.allowedSignersFile is not set",
                         hint="list the workers' public keys in a file and point gpg.ssh.allowedSignersFile at it"
                              " (see ssh-keygen(1), ALLOWED SIGNERS)\n" + _TRUST_HINT)


_UNSIGNED = "is not signed by a trusted key"
_TRUST_HINT = ("or trust unsigned results, which anyone who can push can forge: git config agent.verifyResults "
               "false (once: --trust-unsigned)")


def _hint_unsigned(problems: dict[str, str]) -> None:
    """After the report: when results were left out for want of a signature, say how to sign or trust them."""
    if any(_UNSIGNED in why for why in problems.values()):
        sys.stderr.write("hint: give each worker a signing key (user.signingkey, gpg.format) and list their "
                         "public keys where git verify-commit finds them (gpg.format=ssh: "
                         f"gpg.ssh.allowedSignersFile)\nhint: {_TRUST_HINT}\n")


def _predict(repo: Repo, queue: RemoteQueue, groups: dict[str, list[RemoteTask]], problems: dict[str, str],
             opts: Options) -> int:
    """--dry-run: the chain of in-memory merges onto the remote's targets, reported as a local dry run is."""
    attempts: list[Attempt] = []
    for target, group in groups.items():
        old = queue.head(target)
        if old is None:
            problems.update((task.id, f"its target branch '{target}' is not on {queue.remote}") for task in group)
        else:
            attempts += _chain_results(repo, old, group, None, False, opts.style)[1]
    code = report(repo, attempts, problems, opts, dry_run=True, kept=f"its branch stays on {queue.remote}")
    _hint_unsigned(problems)
    return code


def _ready(repo: Repo, queue: RemoteQueue, tasks: list[RemoteTask], *, explicit: bool,
           verify: bool) -> tuple[dict[str, list[RemoteTask]], dict[str, str]]:
    """The tasks to merge now grouped by target (in order), and why the others are not merged.

    Each task is judged on its own: a record that cannot be read, a result whose commit does
    not carry the tip it names, or (with `verify`) one not signed by a trusted key leaves out
    only that task.
    """
    groups: dict[str, list[RemoteTask]] = {}
    problems: dict[str, str] = {}
    git = repo.git
    for task in tasks:
        if task.merged:
            if explicit:
                problems[task.id] = "already merged"
            continue
        if not task.result:
            if explicit:
                problems[task.id] = "it has no result yet (still queued or running)"
            continue
        bad = task.bad.get("queue") or task.bad.get("results")
        if bad:
            problems[task.id] = bad
            continue
        info = task.result_info
        if info.get("exit") != 0:
            problems[task.id] = ("its agent died" if info.get("exit") is None and info.get("branch")
                                 else str(info.get("reason") or "") if not info.get("branch")
                                 else f"its agent exited {info.get('exit')}")
            continue
        # The result commit's parent is the tip the worker published: trust the object, not the text.
        parent = git.run("rev-parse", "--verify", "--quiet", f"{task.result}^1", ok=range(0, 256)).out.strip()
        if parent != info.get("tip"):
            problems[task.id] = "its result is malformed (its commit does not carry the tip it names)"
            continue
        if verify and not git.ok("verify-commit", task.result):
            problems[task.id] = (f"its result {task.result[:12]} {_UNSIGNED}"
                                 f" (git verify-commit {task.result[:12]})")
            continue
        try:
            spec = queue.spec(task)
        except BadRecord as error:
            problems[task.id] = error.message
            continue
        groups.setdefault(spec.base, []).append(task)
    return groups, problems


def _chain_results(repo: Repo, old: str, group: list[RemoteTask], checker: Checker | None, batch: bool,
                 style: str = "merge") -> tuple[str, list[Attempt]]:
    """Chain each task's published tip onto `old` in memory (checking each result), landing each in
    `style` (inmemory.STYLES); the new tip and attempts."""
    candidates = []
    for task in group:
        info = task.result_info
        local = Task(task.id, title=task.title, branch=str(info.get("branch", "")))
        candidates.append(Candidate(task.id, str(info["tip"]), merge_message(repo, local)))
    attempts, new = build_chain(repo.git, old, candidates, checker, batch=batch, sign=signs_commits(repo),
                                style=style)
    return new, attempts


def _rejection(queue: RemoteQueue, task: RemoteTask, attempt: Attempt, target: str, base: str,
               command: str) -> Update:
    """The update recording that a task's merged result failed the check (replacing an earlier record)."""
    record = {"id": task.id, "reason": "check-failed", "check": command, "output": attempt.check_output,
              "target": target, "base": base, "at": time.time()}
    commit = queue.record_commit(f"agent-merge: task {task.id} failed the merge check", record,
                                 parents=(task.result,))
    return Update(ref("rejected", task.id), commit, task.rejected)


def _queue_note(queue: RemoteQueue, task: RemoteTask, target: str, attempt: Attempt) -> dict[str, str]:
    """The note of a task merged from the queue: the same fields, with the same meaning, as a local merge's."""
    info = task.result_info

    def when(key: str) -> str:  # as now_iso() writes times
        value = info.get(key)
        if not isinstance(value, (int, float)):
            return ""
        return datetime.fromtimestamp(value, UTC).astimezone().isoformat(timespec="seconds")

    code = info.get("exit")
    return note_fields(task=task.id, title=task.title, branch=str(info.get("branch", "")),
                       agent=str(info.get("agent") or ""), prompt_hash=str(info.get("prompt_hash") or ""),
                       base=str(info.get("base") or ""), target=target, started=when("started"),
                       finished=when("finished"), exit="" if code is None else str(code), merged=now_iso(),
                       worker=str(info.get("worker") or ""), remote=queue.remote, check=attempt.check or "")


def _sync_notes(repo: Repo, track: str) -> str:
    """Make the local notes contain the remote's (so pushing them loses nothing); the remote's value."""
    git = repo.git
    remote = git.rev_parse(track)
    if not remote:
        return ""
    local = git.rev_parse(NOTES_REF)
    with RepoLock(repo.common_dir):  # the notes lock (see notes.add_note)
        if not local or git.ok("merge-base", "--is-ancestor", local, remote):
            git.update_ref(NOTES_REF, remote, local or "")
        elif not git.ok("merge-base", "--is-ancestor", remote, local):
            git.run("notes", f"--ref={NOTES_REF}", "merge", "--quiet", "-s", "cat_sort_uniq", track)
    return remote


def _advance_local(repo: Repo, moved: dict[str, tuple[str, str]]) -> None:
    """Fast-forward the local copies of the targets when that is safe; otherwise say how to catch up."""
    checked_out = {w.branch: w.path for w in list_worktrees(repo) if w.branch}
    git = repo.git
    for target, (_, new) in moved.items():
        local = git.rev_parse(branch_ref(target))
        worktree = checked_out.get(target)
        if local and _movable(repo, worktree) and git.ok("merge-base", "--is-ancestor", local, new):
            advance_branch(git, target, local, new, worktree, f"agent-merge --remote: {target}")
        elif local != new:
            sys.stderr.write(f"hint: your local '{target}' was not updated; catch up with: git pull\n")


def _movable(repo: Repo, worktree: str | None) -> bool:
    """Whether a local target checked out in `worktree` (if any) may move: as a local merge decides."""
    try:
        if worktree is not None:
            check_target_worktree(repo, worktree)
    except AgentError:
        return False
    return True


def _report(repo: Repo, attempts: list[Attempt], problems: dict[str, str], remote: str,
            moved: dict[str, tuple[str, str]], opts: Options) -> int:
    """Print what happened in the one report format of every merge (merging/report.py); the exit code."""
    pushed = [f"Pushed {target} to {remote} ({old[:12]}..{new[:12]})" for target, (old, new) in moved.items()]
    code = report(repo, attempts, problems, opts, dry_run=False, kept=f"its branch stays on {remote}",
                  landed=pushed)
    _hint_unsigned(problems)
    return code
