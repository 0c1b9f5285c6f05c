"""`--resolve`: an agent resolves a task's conflict with its target, in the task's own worktree.

The steps, for one task whose merge into the target (as it stands after the tasks merged
before it) conflicts:

1. `git merge --no-ff --no-commit <target>` in the task's worktree, with rerere on (a
   resolution recorded earlier is reused; when it settles every file the merge is committed
   without an agent), leaving the conflicts in place;
2. a prompt naming the conflicting files (decided by `git ls-files -u`), git's CONFLICT lines
   (the merge runs with LC_ALL=C so they read the same everywhere), the earlier tasks that
   changed those files on the target, and the rule: keep both intents, commit the merge, touch
   no other file;
3. the resolver (the task's own agent, or the one named) started there through the normal
   launch path, and waited for;
4. on exit 0, checks: nothing unmerged, no conflict markers in the files that conflicted, HEAD
   is the merge of the target tip into the old task tip, no file changed beyond the conflicting
   ones (against the plain merge result), nothing uncommitted.

Any failure puts the task branch and worktree back exactly as they were (merge --abort,
reset --hard to the old tip, the attempt's untracked files removed: the worktree was clean
before it started). Imports nothing from merging.queue, which calls it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from git_agents.core.errors import AgentError
from git_agents.core.git import Git
from git_agents.core.refs import branch_ref
from git_agents.core.repo import Repo
from git_agents.core.worktrees import unsaved_work
from git_agents.merging import journal as journal_file
from git_agents.merging.inmemory import merge_trees
from git_agents.merging.journal import Entry, Journal
from git_agents.tasks import agent, isolation
from git_agents.tasks.integrity import RESOLVE_UNDO
from git_agents.tasks.notes import NOTES_REF, parse_note
from git_agents.tasks.store import Task, TaskState

PHASE = "resolver"  # the journal's phase while a resolver works on a task's branch
LOG_TAIL = 20  # lines of a failed resolver's log shown in the report
POLL_SECONDS = 0.05
RERERE = ("-c", "rerere.enabled=true", "-c", "rerere.autoUpdate=true")
# rerere off in a resolver's environment: its own `git commit` must not record a resolution that
# may yet be refused (rerere would replay it to every later resolver). Only once verified is the
# result recorded (`record_resolution`), from the merge's MERGE_RR, which the commit leaves behind.
RERERE_CONFIG = {"rerere.enabled": "false"}
DEFAULT_MARKER_SIZE = 7

# (repo, task, command, run directory, prompt file, git config for the agent) -> (pid, process start)
Launcher = Callable[[Repo, Task, str, str, str, dict[str, str]], tuple[int, str]]


@dataclass
class Resolution:
    """How resolving one task's conflict went."""

    ok: bool
    agent: str  # who resolved (or tried): the command line, or "rerere"
    attempts: int
    why: str = ""  # why the last attempt was refused
    log_tail: str = ""  # the last lines of the last resolver's log


@dataclass(frozen=True)
class Earlier:
    """A task merged into the target since this task started, that changed conflicting files."""

    task_id: str
    title: str
    files: tuple[str, ...]


def run_dir(repo: Repo, task_id: str, attempt: int) -> str:
    """Where attempt `attempt` of resolving a task keeps its prompt, log and exit record."""
    return os.path.join(repo.task_dir(task_id), f"resolve-{attempt}")


def earlier_tasks(git: Git, tip: str, target_tip: str, files: set[str]) -> list[Earlier]:
    """The tasks merged on the target's first-parent line since `tip` forked from it that changed `files`.

    Read from the merge commits' notes; each merge's change is its diff against its first parent.
    """
    base = git.run("merge-base", tip, target_tip, ok=(0, 1)).out.strip()
    if not base:
        return []
    out = git.run("log", "--first-parent", "--diff-merges=first-parent", "--name-only", "-z",
                  "--format=%x01%H", f"{base}..{target_tip}").out
    found: list[Earlier] = []
    for chunk in out.split("\x01")[1:]:
        commit, _, names = chunk.partition("\0")  # "<hash> NUL \n <path> NUL <path> NUL ..."
        touched = tuple(p for p in names.strip("\n\0").split("\0") if p in files)
        if not touched:
            continue
        res = git.run("notes", f"--ref={NOTES_REF}", "show", commit.strip(), ok=(0, 1))
        note = parse_note(res.out) if res.code == 0 else None
        if note and note.get("task"):
            found.append(Earlier(note["task"], note.get("title", ""), touched))
    return list(reversed(found))  # oldest first: the order they merged in


def prompt_text(task: Task, target: str, files: list[str], messages: list[str], earlier: list[Earlier]) -> str:
    """The resolver's prompt."""
    lines = [
        f"You are resolving a merge conflict in the git worktree {task.worktree},",
        f"on branch {task.branch} (task {task.id}: {task.title}).",
        "",
        f"The branch '{target}' moved on since this task started. `git merge {target}` was started",
        "here and stopped with conflicts, which are left in the files for you:",
        "",
        *(f"    {m}" for m in messages),
        "",
        "Conflicting files:",
        *(f"    {f}" for f in files),
        "",
    ]
    if earlier:
        lines += [f"Earlier tasks merged into '{target}' that changed these files:",
                  *(f"    task {e.task_id}: {e.title} ({', '.join(e.files)})" for e in earlier), ""]
    lines += [
        "Rules:",
        f"- Keep both intents: what this task changed and what '{target}' changed must both survive.",
        "- Edit only the conflicting files above; do not touch any other file.",
        "- Remove every conflict marker (<<<<<<<, =======, >>>>>>>).",
        "- Then `git add` those files and commit the merge with `git commit --no-edit`.",
        "- Do not abort, reset, rebase or start another merge; leave nothing uncommitted.",
        "",
    ]
    return "\n".join(lines)


def _unmerged(git: Git) -> list[str]:
    """Paths with conflict stages in the index (`git ls-files -u`), each once."""
    out = git.run("ls-files", "-u", "-z").out
    paths = [entry.partition("\t")[2] for entry in out.split("\0") if "\t" in entry]
    return list(dict.fromkeys(paths))


def _literal(paths: list[str]) -> list[str]:
    return [f":(literal){p}" for p in paths]


def restore(git: Git, branch: str, old: str) -> None:
    """Put the task branch and its worktree (where `git` runs) back at `old`, clean, as before the attempt."""
    if git.merge_in_progress():
        git.run("merge", "--abort", ok=range(0, 256))
    if git.head_branch() != branch:
        git.run("checkout", "--quiet", "--force", branch, ok=range(0, 256))
    git.run("reset", "--hard", "--quiet", old, env={"GIT_REFLOG_ACTION": RESOLVE_UNDO})
    git.run("clean", "-fdq")  # only the attempt's files: the worktree was clean when it started


def marker_sizes(git: Git, paths: list[str]) -> dict[str, int]:
    """The conflict-marker length git uses for each path (its `conflict-marker-size` attribute, else 7)."""
    if not paths:
        return {}
    out = git.run("check-attr", "-z", "--stdin", "conflict-marker-size", input="\0".join(paths) + "\0").out
    fields = out.split("\0")
    sizes = {p: DEFAULT_MARKER_SIZE for p in paths}
    for n in range(0, len(fields) - 2, 3):  # <path> NUL <attribute> NUL <value> NUL
        path, value = fields[n], fields[n + 2]
        if value.isdigit() and int(value) > 0:
            sizes[path] = int(value)
    return sizes


def _marked(git: Git, head: str, paths: list[str], sizes: dict[str, int]) -> list[str]:
    """Those of `paths` whose file in `head` still has a conflict-marker line, of the length git used for it."""
    by_size: dict[int, list[str]] = {}
    for p in paths:
        by_size.setdefault(sizes.get(p, DEFAULT_MARKER_SIZE), []).append(p)
    found: list[str] = []
    for size, group in by_size.items():
        pattern = rf"^(<{{{size}}}( |$)|\|{{{size}}}( |$)|={{{size}}}$|>{{{size}}}( |$))"
        res = git.run("grep", "-l", "-I", "-z", "-E", pattern, head, "--", *_literal(group), ok=(0, 1))
        found += [p.partition(":")[2] for p in res.out.split("\0") if p]
    return sorted(found, key=paths.index)


def verify(git: Git, repo: Repo, worktree: str, old: str, target_tip: str, conflicted: list[str],
           sizes: dict[str, int] | None = None) -> str | None:
    """Why the resolver's result is refused, or None when it is a proper resolution.

    `sizes`: the conflict-marker length of each conflicted path (marker_sizes, read when the merge started).
    """
    if git.merge_in_progress():
        left = _unmerged(git)
        if left:
            return f"unmerged paths remain: {', '.join(left)}"
        return "the merge was not committed"
    head = git("rev-parse", "HEAD")
    if head == old:
        return "the merge was not committed"
    parents = git("rev-parse", f"{head}^@").split()
    if parents != [old, target_tip]:
        return "HEAD is not the merge of the target into the task branch (a merge commit with parents " \
               "<old task tip> <target tip>)"
    present = [p for p in conflicted if git.run("cat-file", "-e", f"{head}:{p}", ok=range(0, 256)).code == 0]
    if present:
        marked = _marked(git, head, present, sizes or {})
        if marked:
            return f"conflict markers left in {', '.join(marked)}"
    # Trees compared, path by path: the plain merge's (markers and all) against the resolution's.
    _, plain = merge_trees(git, old, target_tip)
    changed = [p for p in git.run("diff-tree", "-r", "--no-renames", "--name-only", "-z", plain.tree,
                                  f"{head}^{{tree}}").out.split("\0") if p]
    others = [p for p in changed if p not in conflicted]
    if others:
        return f"it changed files that did not conflict: {', '.join(others)}"
    left_over = unsaved_work(repo, worktree)
    if left_over:
        return f"it left uncommitted work: {', '.join(e[3:] for e in left_over[:3])}"
    return None


def _log_tail(directory: str) -> str:
    try:
        with open(agent.log_path(directory), "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip("\n").splitlines()[-LOG_TAIL:])


def _wait(directory: str, pid: int, pid_start: str) -> int:
    """Wait for the resolver to end; its exit status (the supervisor records it)."""
    while True:
        if _signalled:  # it came before the wait began: stop as if it had come now
            raise KeyboardInterrupt
        record = agent.read_exit(directory)
        if record is not None:
            return record.code
        if not agent.is_alive(str(pid), pid_start):
            record = agent.read_exit(directory)  # it may have written it just now
            return record.code if record else -1
        time.sleep(POLL_SECONDS)


def resolve_conflict(repo: Repo, task: Task, target: str, *, command: str, launch: Launcher,
                     attempts: int = 1, pending: Sequence[str] = ()) -> Resolution:
    """Have an agent resolve the conflict between the task branch and `target`'s tip; see the module doc.

    On success the task branch has gained the merge commit; on failure it is exactly as before.
    Call it under the "merge" lock (the target must not move meanwhile). `pending`: the tasks the
    run would merge after this one (an interrupted run's `--continue` merges them).
    """
    worktree = task.worktree
    if not worktree or not os.path.isdir(worktree):
        return Resolution(False, command, 0, "it has no worktree to resolve in")
    git = repo.git.at(worktree)
    if git.head_branch() != task.branch:
        return Resolution(False, command, 0, f"its worktree is not on '{task.branch}'")
    if unsaved_work(repo, worktree):
        return Resolution(False, command, 0, "its worktree has uncommitted or untracked work")
    old = git("rev-parse", "HEAD")
    isolation.refresh_target(repo, task, target)  # a clone task merges the target as it is here
    target_tip = git("rev-parse", f"{branch_ref(target)}^{{commit}}")
    # Journalled from before the merge starts until the branch is settled: a run killed meanwhile
    # (SIGKILL, a reboot) leaves a journal that stops every later merge until `--continue` has
    # verified the result or `--abort` has put the branch back; the resolver may still be running.
    plan = Journal(target=target, worktree=worktree, old=target_tip, new=target_tip, entries=[], phase=PHASE,
                   pending=list(pending), conflict=Entry(task.id, TaskState.CONFLICT), tip=old,
                   options={"branch": task.branch, "command": command})
    journal_file.write(repo.state_dir, plan)
    last = Resolution(False, command, 0)
    with _stopping_on_hangup() as stopped:
        for n in range(1, max(1, attempts) + 1):
            last = _attempt(repo, git, task, target, old, target_tip, command, launch, n, plan)
            if last.ok:
                isolation.sync(repo, task)
                break
            restore(git, task.branch, old)
            if stopped:
                break
        journal_file.remove(repo.state_dir)
        if stopped:  # SIGTERM or SIGHUP came during the checks: the branch is settled, now stop
            raise KeyboardInterrupt
    return last


@contextmanager
def _stopping_on_hangup() -> Iterator[list[int]]:
    """SIGTERM and SIGHUP (the terminal closed) stop a resolution as Ctrl-C does, not the process outright.

    Their default action would end this process at once and leave the detached resolver to commit
    an unchecked result. While the resolver is waited for they raise KeyboardInterrupt (the
    resolver is stopped and the branch put back); during git calls they are only noted (the
    list), so no git command is cut off, and the caller stops once the branch is settled.
    """
    import signal
    import threading

    stopped: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield stopped
        return

    def note(signum: int, frame: object) -> None:
        stopped.append(signum)
        _signalled.append(signum)
        if _waiting:
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield stopped
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _signalled.clear()


_waiting: list[bool] = []  # non-empty while a resolver is waited for (a signal may interrupt that)
_signalled: list[int] = []  # SIGTERM/SIGHUP noted during this resolution (the wait for a resolver ends at once)


def _attempt(repo: Repo, git: Git, task: Task, target: str, old: str, target_tip: str, command: str,
             launch: Launcher, n: int, plan: Journal) -> Resolution:
    worktree = task.worktree
    res = git.run(*RERERE, "merge", "--no-ff", "--no-commit", branch_ref(target), ok=range(0, 256),
                  env={"LC_ALL": "C", "LANGUAGE": "C", "GIT_REFLOG_ACTION": "agent-merge --resolve",
                       "GIT_MERGE_AUTOEDIT": "no"})
    if not git.merge_in_progress():
        said = (res.err or res.out).strip().splitlines()
        return Resolution(False, command, n, "git merge did not start" + (f": {said[-1]}" if said else ""))
    messages = [line.strip() for line in (res.out + res.err).splitlines() if line.startswith("CONFLICT")]
    conflicted = _unmerged(git)
    # the plain merge's conflicted files (parsed, never git's informational lines): those rerere
    # settled are still the ones allowed to differ
    _, plain = merge_trees(git, old, target_tip)
    allowed = list(dict.fromkeys(conflicted + plain.conflict_paths))
    sizes = marker_sizes(git, allowed)  # the attributes this merge was made with
    if not conflicted:  # rerere's recorded resolutions settled every file
        git.run(*RERERE, "commit", "--quiet", "--no-edit", "--no-verify", ok=range(0, 256))
        refused = verify(git, repo, worktree, old, target_tip, allowed, sizes)
        return Resolution(refused is None, "rerere", n, refused or "")
    directory = run_dir(repo, task.id, n)
    os.makedirs(directory, exist_ok=True)
    prompt_file = os.path.join(directory, "prompt.md")
    earlier = earlier_tasks(repo.git, old, target_tip, set(allowed))
    with open(prompt_file, "w", encoding="utf-8") as fh:
        fh.write(prompt_text(task, target, conflicted, messages, earlier))
    plan.options.update(allowed="\0".join(allowed), run_dir=directory, pid="", pid_start="")
    journal_file.write(repo.state_dir, plan)
    pid, pid_start = launch(repo, task, command, directory, prompt_file, dict(RERERE_CONFIG))
    plan.options.update(pid=str(pid), pid_start=pid_start)
    journal_file.write(repo.state_dir, plan)
    try:
        _waiting.append(True)
        try:
            code = _wait(directory, pid, pid_start)
        finally:
            _waiting.clear()
    except BaseException:  # Ctrl-C (or SIGTERM, SIGHUP) while waiting: stop the resolver, put the branch back
        agent.stop(str(pid), pid_start)
        restore(git, task.branch, old)
        journal_file.remove(repo.state_dir)
        raise
    if code != 0:
        return Resolution(False, command, n, f"the resolver exited {code}", _log_tail(directory))
    refused = verify(git, repo, worktree, old, target_tip, allowed, sizes)
    if refused is None:
        record_resolution(git)
    return Resolution(refused is None, command, n, refused or "", "" if refused is None else _log_tail(directory))


def record_resolution(git: Git) -> None:
    """Record a verified resolution in the rerere cache (from the MERGE_RR the merge left), so it is reused."""
    git.run(*RERERE, "rerere", ok=range(0, 256))


def _settled_branch(repo: Repo, plan: Journal) -> Git:
    """The task worktree's git, once its branch is known to hold only the old tip or the resolver's merge on it."""
    assert plan.conflict is not None
    branch = plan.options.get("branch", "")
    if not plan.worktree or not os.path.isdir(plan.worktree):
        raise AgentError(f"the worktree of task {plan.conflict.task_id} ({plan.worktree}) is gone",
                         hint="remove the journal by hand: " + journal_file.path(repo.state_dir))
    git = repo.git.at(plan.worktree)
    head = git("rev-parse", "HEAD")
    parents = git.run("rev-parse", f"{head}^@", ok=range(0, 256)).out.split()
    if head != plan.tip and parents[:1] != [plan.tip] or \
            git.head_branch() != branch:
        raise AgentError(f"'{branch}' in {plan.worktree} moved on since its resolver started "
                         f"(now {head[:12]}, the resolution started at {plan.tip[:12]}); not touching it",
                         hint="put it back (git reset --keep " + plan.tip[:12] + "), then run the same command again")
    return git


def _stop_resolver(plan: Journal, *, still_running_is_an_error: bool) -> None:
    pid, start = plan.options.get("pid", ""), plan.options.get("pid_start", "")
    if not pid or not agent.is_alive(pid, start):
        return
    if still_running_is_an_error:
        assert plan.conflict is not None
        raise AgentError(f"the resolver of task {plan.conflict.task_id} (process {pid}) is still running",
                         hint="wait for it to end, then: git agent-merge --continue\n"
                              "or stop it and put the branch back: git agent-merge --abort")
    agent.stop(pid, start)


def left_running(plan: Journal) -> str:
    """The pid of the resolver an interrupted merge left running ("" when it has ended)."""
    pid, start = plan.options.get("pid", ""), plan.options.get("pid_start", "")
    return pid if pid and agent.is_alive(pid, start) else ""


def wait_for_resolver(plan: Journal) -> None:
    """Wait until the resolver an interrupted merge left running has ended (its work is then checked)."""
    while left_running(plan):
        time.sleep(0.1)


def abandon(repo: Repo, plan: Journal) -> None:
    """--abort of an interrupted resolution: stop its resolver, put the task branch back, forget the journal."""
    _stop_resolver(plan, still_running_is_an_error=False)
    git = _settled_branch(repo, plan)
    restore(git, plan.options.get("branch", ""), plan.tip)
    journal_file.remove(repo.state_dir)


def finish(repo: Repo, plan: Journal) -> str | None:
    """--continue of an interrupted resolution: verify what its resolver left; keep it, or put the branch back.

    Returns why the result was refused (the branch is then back at its old tip), or None when it
    was verified (and recorded for rerere). The journal is removed either way.
    """
    _stop_resolver(plan, still_running_is_an_error=True)
    git = _settled_branch(repo, plan)
    allowed = [p for p in plan.options.get("allowed", "").split("\0") if p]
    refused = verify(git, repo, plan.worktree, plan.tip, plan.old, allowed, marker_sizes(git, allowed)) \
        if allowed else "its resolver never started"
    if refused is None:
        record_resolution(git)
    else:
        restore(git, plan.options.get("branch", ""), plan.tip)
    journal_file.remove(repo.state_dir)
    return refused
