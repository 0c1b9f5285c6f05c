"""The steps of starting a task, shared by `git agent-spawn` and `git agent-run`.

create (metadata, worktree, prompt file) -> prepare.make_ready (copies, links, port, setup)
-> start (the agent, detached under its supervisor).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from git_agents.core.errors import AgentError, UsageError
from git_agents.core.refs import branch_ref
from git_agents.core.repo import Repo
from git_agents.core.settings import parse_bool
from git_agents.core.worktrees import add_worktree, config_shared, prune_worktrees, sparse_dirs
from git_agents.pool import slots as pool
from git_agents.tasks import isolation, ports  # agent, guard, seal: where agents start (not claim --task)
from git_agents.tasks.ids import check_id
from git_agents.tasks.prepare import SetupFailed, check_patterns, make_ready
from git_agents.tasks.prompt import (
    DEFAULT_TEMPLATE,
    decode_text,
    default_title,
    prompt_hash,
    read_task_texts,
    render_prompt,
)
from git_agents.tasks.selection import branch_exists_error, resolve_base
from git_agents.tasks.store import (
    Task,
    TaskExists,
    TaskState,
    create_task,
    delete_task,
    load_tasks,
    next_number,
    now_iso,
    write_task,
)

SETUP_TAIL = 20  # lines of a failed setup's output shown on the terminal


def prompt_path(repo: Repo, task_id: str) -> str:
    """The file holding the prompt a task's agent is given."""
    return os.path.join(repo.task_dir(task_id), "prompt.md")


# How far start_tasks takes each task.
CREATE = "create"  # record it and give it its worktree and prompt (git agent-run makes it ready later)
READY = "ready"  # and make its worktree ready (pool claim --task, the Claude Code hook)
START = "start"  # and start its agent (spawn, the remote worker)
CONCURRENT_STARTS = 4  # new worktrees checked out side by side by one start_tasks call (spawn of many ids)


@dataclass(frozen=True)
class StartRequest:
    """What one call of spawn, `pool claim --task`, run, the remote worker or the Claude Code hook starts.

    Creation is one step (`_create`): a new worktree, or a pool slot with `pool`; other ways of
    isolating a task belong there, chosen by a field of this request.
    """

    ids: tuple[str, ...]
    prompt: str | None = None  # the task text, or
    prompt_file: str | None = None  # a file holding it ({id}: the task's id; "-": standard input, read as bytes)
    title: str = ""  # default: the text's first line (tasks.prompt.default_title)
    base: str | None = None  # the branch to start from and merge into (default: the main worktree's)
    base_commit: str = ""  # the base's commit when the caller knows it (the worker: the remote's tip)
    command: str = ""  # the agent command line, expanded ("" prepares only); checked from READY on
    in_tmux: bool = False  # the agent runs in a tmux window (tasks/tmux.py)
    pool: pool.PoolRequest | None = None  # a slot of the worktree pool instead of a new worktree (or clone)
    owner: tuple[int, str] | None = None  # the process holding the slot until the agent starts (pool.claim)
    sparse: Sequence[str] | None = None  # cone-mode directories; None: agent.sparse
    isolation: str = ""  # "" (a guarded worktree), "clone" or "sandbox" (tasks/isolation.py)
    until: str = START  # CREATE, READY or START


@dataclass
class Started:
    """What start_tasks did with one task."""

    task: Task
    pid: int = 0  # the agent's pid, when it was started
    why: NotStarted | None = None  # why it was not made ready or started (the task is recorded as failed)
    error: AgentError | None = None  # its creation failed: nothing of it is left


def start_tasks(repo: Repo, request: StartRequest) -> Iterator[Started]:
    """Start each task of `request`, in order, as far as `request.until` says; yield each outcome
    as soon as it is known.

    Everything that can be refused (the text, the base, ids, branches and paths in use) is checked
    for every task before the first is created. A task whose creation fails leaves nothing behind
    and its outcome holds the error; the others go on. A failed setup or a missing agent program
    is recorded on the task (its worktree is kept) and said by the outcome's `why`.
    """
    if request.base_commit:
        base, base_commit = request.base or "", request.base_commit
    else:
        base, base_commit = resolve_base(repo, request.base)
    pooled = request.pool is not None and not request.isolation  # a slot's path (a pooled clone has its own)
    numbered = not request.ids  # no ids: the next free number (spawn --prompt ...)
    first = _plan_numbered(repo, base, base_commit, pooled) if numbered else None
    ids = (first.id,) if first is not None else request.ids
    texts = read_task_texts(ids, request.prompt, request.prompt_file)
    template = load_template(repo)
    # a numbered task is not planned twice: another spawn may take its branch meanwhile, which
    # its creation meets as a taken number (TaskExists) and plans again
    branches = None
    if len(ids) > 1:  # the branches in the way of any of the tasks, in one git call
        branches = set(repo.git("for-each-ref", "--format=%(refname)",
                                *(branch_ref(repo.branch_prefix + i) for i in ids)).split("\n"))
    planned = [first] if first is not None else [
        plan_task(repo, task_id, base, base_commit, pooled=pooled, branches=branches,
                  check_branch=not pooled or len(ids) > 1)  # a lone claim checks it itself
        for task_id in ids]
    sparse = sparse_setting(repo, request.sparse)
    if len(planned) > 1 and not pooled and not request.isolation:
        yield from _start_many(repo, planned, texts, template, request, sparse)
        return
    for task in planned:
        text = texts[task.id]
        while True:
            task.title = request.title or default_title(task.id, text)
            if request.until == START:
                task.agent = request.command
            task.created = now_iso()
            task.isolation = request.isolation
            try:
                _create(repo, task, text, template, request, sparse)
            except TaskExists as error:
                if not numbered:
                    yield Started(task, error=error)
                    break
                # another spawn took this number meanwhile: the next one (a prompt file may name {id})
                task = _plan_numbered(repo, base, base_commit, pooled)
                if request.prompt_file and request.prompt_file != "-":
                    text = read_task_texts((task.id,), request.prompt, request.prompt_file)[task.id]
                continue
            except AgentError as error:
                yield Started(task, error=error)
                break
            yield _advance(repo, task, request)
            break


def _start_many(repo: Repo, planned: list[Task], texts: dict[str, str], template: str, request: StartRequest,
                sparse: Sequence[str]) -> Iterator[Started]:
    """start_tasks for many new worktrees: each step done for all tasks at once where git allows it.

    The records are written one by one (each takes its id atomically: TaskExists for one another
    process took), then the branches are made in one `update-ref --stdin` transaction and the port
    blocks leased in another; the worktrees are then added (one at a time, as git needs: see
    add_worktree), checked out and made ready by CONCURRENT_STARTS threads side by side, and each
    agent is started from this thread as soon as its task is ready, in the order of the ids. A task
    that fails leaves nothing of itself and the others go on; a kill at any moment leaves
    recorded tasks that `git agent-clean` removes (a branch made for one is still at its base).
    """
    recorded: list[Task] = []
    refused: dict[str, AgentError] = {}
    for task in planned:
        task.title = request.title or default_title(task.id, texts[task.id])
        if request.until == START:
            task.agent = request.command
        task.created = now_iso()
        try:
            create_task(repo, task)
        except AgentError as error:
            refused[task.id] = error
            continue
        recorded.append(task)
    made = _make_branches(repo, recorded)
    if request.until != CREATE and len(recorded) > 1:
        ports.lease_all(repo, recorded)
    launch = request.until == START and bool(request.command)
    from concurrent.futures import ThreadPoolExecutor

    identity: dict[str, str] | None = None
    workers = ThreadPoolExecutor(max(1, min(len(recorded), CONCURRENT_STARTS)))
    try:
        futures = {task.id: workers.submit(_prepare, repo, task, texts[task.id], template, request, sparse, made)
                   for task in recorded}
        for task in planned:
            if task.id in refused:
                yield Started(task, error=refused[task.id])
                continue
            outcome = futures[task.id].result()
            if launch and outcome.error is None and outcome.why is None:
                if identity is None:  # asked once for all, when every worktree sees the same config
                    identity = identity_env(repo, task.worktree) if config_shared(repo) else {}
                outcome.pid = start(repo, task, request.command, in_tmux=request.in_tmux, identity=identity or None)
            yield outcome
    finally:  # on a Ctrl-C, the tasks not begun are left as recorded (git agent-clean removes them)
        workers.shutdown(cancel_futures=True)


def _make_branches(repo: Repo, tasks: list[Task]) -> bool:
    """Make every task's branch at its base commit in one transaction (each only if it does not
    exist: all or none); False when one is in the way (add_worktree then makes each on its own)."""
    if len(tasks) < 2:
        return False
    lines = "".join(f"create {branch_ref(task.branch)} {task.base_commit}\n" for task in tasks)
    return repo.git.run("update-ref", "--stdin", input=lines, ok=range(0, 256)).code == 0


def _prepare(repo: Repo, task: Task, text: str, template: str, request: StartRequest, sparse: Sequence[str],
             branch_made: bool) -> Started:
    """Give a recorded task its worktree and prompt and make it ready, as far as `request.until`
    says (not its agent): one thread of _start_many. A failed creation leaves nothing of the task."""
    try:
        try:
            add_worktree(repo, task.worktree, task.branch, task.base_commit, sparse=sparse, post_checkout=True,
                         branch_made=branch_made)
        except BaseException:
            if branch_made:  # add_worktree takes it back too, unless it failed before trying (make_parent)
                repo.git.run("update-ref", "-d", branch_ref(task.branch), task.base_commit, ok=range(0, 256))
            if task.port:
                ports.release(repo, task)
            delete_task(repo, task.id)
            raise
        write_prompt(repo, task, text, template)
    except AgentError as error:
        return Started(task, error=error)
    if request.until == CREATE:
        return Started(task)
    return Started(task, why=ready_to_start(repo, task, request.command, leased=True))


def _plan_numbered(repo: Repo, base: str, base_commit: str, pooled: bool) -> Task:
    """The task of a start without ids: the next number free of a task, a branch and a directory
    (tasks.store.next_number). The number is claimed only when create_task records it, atomically;
    a start that loses that race plans again (start_tasks)."""
    number = next_number(repo)
    for _ in range(100):
        try:
            return plan_task(repo, str(number), base, base_commit, pooled=pooled)
        except AgentError:  # a leftover worktree directory or branch of that name: the next one
            number += 1
    return plan_task(repo, str(number), base, base_commit, pooled=pooled)  # its error says why


def start_task(repo: Repo, request: StartRequest) -> Started:
    """start_tasks for a request of one task, whose failed creation is raised (AgentError)."""
    (outcome,) = start_tasks(repo, request)
    if outcome.error is not None:
        raise outcome.error
    return outcome


def _advance(repo: Repo, task: Task, request: StartRequest) -> Started:
    """Make a created task ready and start its agent, as far as `request.until` says."""
    if request.until == CREATE:
        return Started(task)
    why = ready_to_start(repo, task, request.command)
    if why is not None or request.until != START or not request.command:
        return Started(task, why=why)
    return Started(task, pid=start(repo, task, request.command, in_tmux=request.in_tmux))


def _create(repo: Repo, task: Task, text: str, template: str, request: StartRequest, sparse: Sequence[str]) -> None:
    """Record the task, give it its worktree on a new branch, write its prompt.

    The worktree is a new one, or with a pool request a claimed pool slot switched to the task's
    branch. With `sparse` directories it is a cone-mode sparse checkout of them. A failure
    leaves nothing of the task (a prompt that could not be written says how to remove it).
    """
    if request.pool is None or request.isolation:
        create_task(repo, task)
        try:
            make_checkout(repo, task, sparse, slots=request.pool, owner=request.owner)
        except BaseException:
            delete_task(repo, task.id)
            raise
    else:
        wanted = dataclasses.replace(request.pool, sparse=tuple(sparse)) if sparse else request.pool
        # the branch, and the hold of the port lease make_ready takes, are made with the claim (one
        # transaction: a kill leaves all three or none)
        held = pool.claim(repo, task=task.id, owner=request.owner, request=wanted, base_commit=task.base_commit,
                          branch=task.branch, make_branch=True,
                          hold=ports.hold_for(repo, task) if request.until != CREATE else None)
        task.worktree, task.slot = held.path, held.slot
        try:
            create_task(repo, task)
        except BaseException:
            pool.undo_claim(repo, held)  # the slot was not touched yet
            raise
        try:
            pool.switch_to_branch(repo, held, task.branch, task.base_commit, sparse=wanted.sparse)
        except BaseException:
            delete_task(repo, task.id)
            pool.release(repo, held.slot, force=True, task=task.id)  # detaches the slot: the branch may go
            pool.forget_made(repo, held)
            raise
    write_prompt(repo, task, text, template)


def make_checkout(repo: Repo, task: Task, sparse: Sequence[str] = (), *, slots: pool.PoolRequest | None = None,
                  owner: tuple[int, str] | None = None) -> None:
    """The one step that makes a new task's directory on its new branch at its base commit: a
    linked worktree, or with `task.isolation` a clone of its own (tasks/isolation.py), made from
    a warm pool slot's checkout with `slots` (pool.clone_from_slot)."""
    if isolation.is_clone(task) and slots is not None:
        pool.clone_from_slot(repo, task.worktree, task.branch, task.base_commit, task=task.id, owner=owner,
                             request=slots, sparse=sparse)
    elif isolation.is_clone(task):
        isolation.make_clone(repo, task.worktree, task.branch, task.base_commit, sparse=sparse)
    else:
        add_worktree(repo, task.worktree, task.branch, task.base_commit, sparse=sparse, post_checkout=True)


def finish_create(repo: Repo, task: Task, text: str, template: str, *, sparse: Sequence[str] = ()) -> None:
    """Complete the creation of a recorded task whose agent never started, cut short by a kill
    between recording it and writing its prompt (`run --resume`): make its worktree again when it
    is missing (the branch, made by the killed `worktree add`, taken back only while it is still at
    the task's base commit), and write its prompt when that is missing. A clone a kill left
    half-made while it was made from a pool slot is finished first (pool.repair_clone)."""
    pool.repair_clone(repo, task)
    if not task.slot and task.worktree and not os.path.lexists(task.worktree):
        if not isolation.is_clone(task):
            prune_worktrees(repo)  # the killed add's entry, whose directory never came to be
        ref = branch_ref(task.branch)
        if repo.git.has_ref(ref):
            tip = repo.git("rev-parse", ref)
            if tip != task.base_commit:
                raise AgentError(f"task {task.id}: its worktree {task.worktree} is missing and branch"
                                 f" {task.branch} has moved on",
                                 hint=f"look at the branch, then remove the task with: git agent-clean {task.id}")
            repo.git.run("update-ref", "-d", ref, task.base_commit)
        make_checkout(repo, task, sparse)
    if not os.path.exists(prompt_path(repo, task.id)):
        if not task.slot and repo.git.at(task.worktree)("rev-parse", "HEAD") == task.base_commit:
            # Killed before the checkout of a `--no-checkout` add: fill the index from HEAD and write
            # the files that are missing (checkout-index never overwrites one that is there).
            wt = repo.git.at(task.worktree)
            wt.run("reset", "--quiet")
            wt.run("checkout-index", "--all")
        write_prompt(repo, task, text, template)


def write_prompt(repo: Repo, task: Task, text: str, template: str) -> str:
    """Write a task's prompt file (the template around its text) and record its hash; return its path."""
    prompt = render_prompt(template, {"id": task.id, "title": task.title, "branch": task.branch,
                               "worktree": task.worktree, "base": task.base, "prompt": text})
    prompt_file = prompt_path(repo, task.id)
    try:
        os.makedirs(repo.task_dir(task.id), exist_ok=True)
        with open(prompt_file, "w", encoding="utf-8") as fh:
            fh.write(prompt)
    except OSError as exc:
        # A prompt cut short (a full disk) must not be given to an agent: no prompt file means
        # "not created yet", which `run --resume` finishes (finish_create).
        try:
            os.unlink(prompt_file)
        except OSError:
            pass
        raise AgentError(f"cannot write the prompt of task {task.id} to {prompt_file}: {exc.strerror}",
                         hint=f"free some space, then remove the task with: git agent-clean {task.id}"
                              " (or continue a run with: git agent-run --resume <taskfile>)") from exc
    write_task(repo, task.id, prompt_hash=prompt_hash(prompt))
    return prompt_file


def start(repo: Repo, task: Task, command: str, *, in_tmux: bool = False, prompt_file: str = "",
          record: dict[str, str | None] | None = None, identity: dict[str, str] | None = None) -> int:
    """Start the task's agent (in a tmux window with `in_tmux`, see tasks/tmux.py) on `prompt_file`
    (default: the task's prompt); record its pid, and `record`'s keys with it; return the pid.
    `identity`: identity_env's answer for this worktree, when the caller has it already.

    Refuses while a process of the task's previous launch still runs in the worktree. The
    launch id is recorded before the fork, so a starter killed before it records the pid
    leaves a launch that is found again by its id (agent.find_launch), not a second copy.
    """
    from git_agents.tasks import agent, guard, seal

    previous = agent.running(task)
    if previous is not None:
        raise AgentError(f"task {task.id}: its previous agent still runs (pid {previous[0]})",
                         hint=f"wait for it (git agent-wait {task.id}) or stop it (git agent-stop {task.id})")
    from git_agents.tasks import tmux  # only what starts an agent pays for these (not `pool claim --task`)
    from git_agents.tasks.presets import exclude_tool_files, preset_env, preset_for

    task.agent = command
    preset = preset_for(repo, command)
    if preset is not None:
        exclude_tool_files(repo, preset.exclude)
    env = {**(identity if identity is not None else identity_env(repo, task.worktree)), **preset_env(preset)}
    launched = command  # what the supervisor runs (the task records `command`)
    if isolation.is_clone(task):  # its own repository: nothing shared to guard, its own exclude
        if preset is not None:
            exclude_tool_files(repo, preset.exclude, os.path.join(task.worktree, ".git"))
        guard.install(repo, task, env)  # the fingerprint: an agent writing into the repository by its path
        if task.isolation == "sandbox":
            launched = isolation.sandbox_command(repo, task, command, repo.setting("agent.shell"),
                                                 preset.state if preset is not None else ())
    else:
        env = guard.guarded_env(repo, task, env)
    # One git call before the fork (the record is written key by key): the launch id, and the
    # previous launch's pid forgotten only when there is one (a re-run).
    task.launch = agent.new_launch_id()
    write_task(repo, task.id, launch=task.launch, **({"pid": None} if task.pid else {}))
    task.pid, task.pid_start = "", ""
    args = (launched, repo.setting("agent.shell"), repo.task_dir(task.id),
            prompt_file or prompt_path(repo, task.id), env)
    window_keys: dict[str, str | None] = {}
    sealed = parse_bool(repo.setting("agent.sealWorktrees"), True)
    seal.forget(repo.task_dir(task.id))  # the previous launch's seal (and its watcher): this one will change it
    if in_tmux:
        from git_agents.tasks import waiting

        env.update(waiting.session_env(repo.task_dir(task.id)))  # the CLI's own signals that it waits
        pid, pid_start, window = tmux.launch(repo, task, *args, launch_id=task.launch, seal=sealed)
        window_keys = tmux.record_keys(window)
    else:
        from git_agents.tasks import rounds, usage

        counted = (usage.usage_path(repo.task_dir(task.id), task.launch), str(rounds.number(task)), "agent") \
            if preset is not None else None  # a preset's CLI reports its usage (tasks/usage.py)
        pid, pid_start = agent.launch(task, *args, launch_id=task.launch, seal=sealed, usage=counted)
        if task.tmux_pane:  # an earlier round ran in tmux: this one does not
            window_keys = tmux.record_keys(None)
    task.pid, task.pid_start, task.started, task.state, task.reason = str(pid), pid_start, now_iso(), "", ""
    for key, value in window_keys.items():
        setattr(task, key, value or "")
    write_task(repo, task.id, agent=command, pid=task.pid, pid_start=pid_start, started=task.started,
               state=None, reason=None, **window_keys, **(record or {}))
    if task.slot:  # the agent now holds the slot: `git agent-pool list` shows its pid
        pool.set_owner(repo, task.slot, task.id, pid, pid_start)
    return pid


def launch_resolver(repo: Repo, task: Task, command: str, run_dir: str, prompt_file: str,
                    config: dict[str, str]) -> tuple[int, str]:
    """Start a conflict resolver for the task (merging.resolver) in its worktree, as `start` starts an agent.

    The same preset handling and identity as the task's own agent, with its log and exit record
    in `run_dir` (the task's own stay as they are) and `config` passed as GIT_CONFIG_* entries
    (rerere, so the resolver's commit records its resolution). The task record is not changed.
    """
    from git_agents.tasks import agent, guard
    from git_agents.tasks.presets import exclude_tool_files, preset_env, preset_for

    preset = preset_for(repo, command)
    if preset is not None:
        exclude_tool_files(repo, preset.exclude)
    env = guard.config_env({**identity_env(repo, task.worktree), **preset_env(preset)}, config)
    attempt = os.path.basename(run_dir).rpartition("-")[2]  # resolve-<n>
    counted = (os.path.join(run_dir, "usage.json"), attempt, "resolve") if preset is not None else None
    return agent.launch(task, command, repo.setting("agent.shell"), run_dir, prompt_file, env, usage=counted)


def resolve_options(repo: Repo, value: str | None, invoked_from: str) -> tuple[str | None, int]:
    """--resolve[=<agent>] (or a task file's resolve) as merging.queue.Options wants it: (resolve, attempts).

    None: no resolving. "" (--resolve alone): agent.resolveAgent, or each task's own agent when
    that is empty. A name: that preset or shell command (a leading ./ taken from `invoked_from`).
    """
    if value is None:
        return None, 1
    from git_agents.tasks import agent
    from git_agents.tasks.presets import expand

    written = value or repo.setting("agent.resolveAgent")
    command = agent.absolutise_program(expand(repo, written), invoked_from) if written.strip() else ""
    raw = repo.setting("agent.resolveAttempts")
    try:
        attempts = int(raw)
    except ValueError:
        attempts = 0
    if attempts < 1:
        raise AgentError(f"agent.resolveAttempts must be a number of at least 1, not '{raw}'",
                         hint="fix it with: git config agent.resolveAttempts <n>")
    return command, attempts


def adopt(repo: Repo, task: Task) -> None:
    """Record the pid of a launch that was started but whose pid was not recorded (found by its id)."""
    if task.launch and not task.pid:
        from git_agents.tasks import agent

        found = agent.find_launch(task.launch)
        if found is not None:
            task.pid, task.pid_start = found
            write_task(repo, task.id, pid=task.pid, pid_start=task.pid_start)


@dataclass(frozen=True)
class NotStarted:
    """Why a task's agent cannot be started (the task is recorded as failed)."""

    reason: str  # the task's recorded reason
    setup: SetupFailed | None = None  # the failed setup, for setup_failure_text


def ready_to_start(repo: Repo, task: Task, command: str, *, leased: bool = False) -> NotStarted | None:
    """The one check before any agent starts (spawn, pool claim, run, worker, hooks): make the
    worktree ready, then see that the agent's program exists. None when it can start; else the
    task is marked failed and the outcome says why. `leased`: see make_ready."""
    try:
        make_ready(repo, task, prompt_path(repo, task.id), leased=leased)
    except SetupFailed as exc:
        fail(repo, task, exc.message)
        return NotStarted(exc.message, exc)
    if not command:
        return None
    from git_agents.tasks import agent

    missing = agent.missing_program(command, task.worktree)
    if missing:
        fail(repo, task, f"agent command not found: {missing}")
        return NotStarted(f"agent command not found: {missing}")
    return None


def fail(repo: Repo, task: Task, reason: str) -> None:
    """Mark a task that could not start its agent as failed."""
    task.state, task.reason = TaskState.FAILED, reason
    write_task(repo, task.id, state=TaskState.FAILED, reason=reason)


def setup_failure_text(task: Task, error: SetupFailed) -> str:
    """What the user sees when a task's setup failed: the message and the tail of the output."""
    lines = error.output.rstrip("\n").splitlines()
    shown = lines[-SETUP_TAIL:]
    head = f"error: task {task.id}: {error.message}; the agent was not started\n"
    if len(lines) > len(shown):
        head += f"  ... ({len(lines) - len(shown)} earlier lines: git agent-logs {task.id})\n"
    return head + "".join(f"  | {line}\n" for line in shown)


def load_template(repo: Repo) -> str:
    """The prompt template: agent.promptTemplate, or the built-in one."""
    path = repo.setting("agent.promptTemplate")
    if not path:
        return DEFAULT_TEMPLATE
    path = os.path.join(repo.main_worktree, os.path.expanduser(path))
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise AgentError(f"cannot read agent.promptTemplate '{path}': {exc.strerror}",
                         hint="fix the path with: git config agent.promptTemplate <file>") from exc
    return decode_text(data, f"agent.promptTemplate '{path}'")


def plan_task(repo: Repo, task_id: str, base: str, base_commit: str, *, pooled: bool = False,
              check_branch: bool = True, branches: set[str] | None = None) -> Task:
    """The task `spawn` would create, after checking that nothing is in its way.

    A pooled task gets its worktree (a pool slot) only when it is created; its claim checks
    again that the branch does not exist, in the git call that lists the slots, so a caller
    that creates the task at once may leave that check to it (`check_branch=False`). `branches`:
    the full names of the branches that exist, when the caller read them for many tasks at once.
    """
    check_id(task_id)
    check_patterns(repo)
    branch = repo.branch_prefix + task_id
    worktree = "" if pooled else os.path.join(repo.worktree_root, branch.replace("/", "-"))
    if task_id in load_tasks(repo):
        raise AgentError(f"task '{task_id}' already exists",
                         hint=f"pick another id, or remove it first with: git agent-clean {task_id}")
    if (check_branch or not pooled) and \
            (branch_ref(branch) in branches if branches is not None else repo.git.has_branch(branch)):
        raise branch_exists_error(branch)
    if worktree and os.path.lexists(worktree):
        raise AgentError(f"'{worktree}' already exists", hint="move it away, or pick another id")
    return Task(task_id, branch=branch, worktree=worktree, base=base, base_commit=base_commit)


def pool_request(repo: Repo, enabled: bool | None, pool_max: int | None) -> pool.PoolRequest | None:
    """How spawn takes worktrees: None for a new worktree per task, else from the pool, growing it."""
    if pool_max is not None and pool_max < 0:
        raise UsageError("--pool-max must be 0 (no limit) or more")
    if enabled is None:
        enabled = pool_max is not None or parse_bool(repo.setting("agent.pool"))
    if not enabled:
        return None
    limit = pool_max if pool_max is not None else repo.setting_int("agent.poolMax", minimum=0, meaning="slots")
    return pool.PoolRequest(grow=limit)


def sparse_setting(repo: Repo, given: Sequence[str] | None) -> list[str]:
    """The directories of a sparse task worktree: `given` (--sparse), else agent.sparse; [] for a full one."""
    if given is None:
        given = [v for v in repo.config.get("agent.sparse", []) if v.strip()]
    return sparse_dirs(given)


def identity_env(repo: Repo, worktree: str) -> dict[str, str]:
    """The user's identity as git would use it in `worktree`, in the agent's environment.

    Some agents run their shell with the user's global config hidden (gemini sets
    GIT_CONFIG_GLOBAL=/dev/null), so the identity from ~/.gitconfig is passed on twice:
    as GIT_AUTHOR_*/GIT_COMMITTER_* (which git reads first) and as user.name/user.email in
    GIT_CONFIG_COUNT entries (which survive tools that drop variables whose names mention
    AUTH, as gemini's redaction does). An identity git cannot work out is left alone.
    """
    env: dict[str, str] = {}
    for role in ("AUTHOR", "COMMITTER"):
        res = repo.git.at(worktree).run("var", f"GIT_{role}_IDENT", ok=range(0, 256))
        name, sep, rest = res.out.partition(" <")
        email = rest.partition(">")[0]
        if res.code == 0 and sep and email:
            env[f"GIT_{role}_NAME"], env[f"GIT_{role}_EMAIL"] = name, email
    if "GIT_AUTHOR_NAME" in env:
        count = os.environ.get("GIT_CONFIG_COUNT", "")
        n = int(count) if count.isdigit() else 0
        env.update({f"GIT_CONFIG_KEY_{n}": "user.name", f"GIT_CONFIG_VALUE_{n}": env["GIT_AUTHOR_NAME"],
                    f"GIT_CONFIG_KEY_{n + 1}": "user.email", f"GIT_CONFIG_VALUE_{n + 1}": env["GIT_AUTHOR_EMAIL"],
                    "GIT_CONFIG_COUNT": str(n + 2)})
    return env
