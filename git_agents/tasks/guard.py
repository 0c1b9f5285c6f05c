"""The guard: what keeps one task's agent from changing what the user and the other tasks share.

Linked worktrees share every ref but HEAD, and the config, `hooks/` and `info/exclude`. An
agent's git is given (through the environment only: GIT_CONFIG_COUNT entries, never the user's
config) `core.hooksPath` pointing at a hooks directory of the task's own, `<task dir>/guard-hooks`:

- `reference-transaction` refuses, in its "prepared" state, any ref update but the task's own
  branch, the worktree's own refs (HEAD and the other pseudo-refs, refs/worktree|bisect|rewritten)
  and remote-tracking refs (what `git fetch` writes: they mirror the remote, nothing merges
  them, and agents fetch all the time). refs/stash is refused with what to do instead.
- `pre-push` refuses to push anything but the task's own branch.
- every hook the user had when the task was spawned runs as before: its wrapper chains to a
  copy of the user's hooks taken then (`<task dir>/guard/hooks`), so a hook another agent writes
  into the shared `hooks/` is not run for this one. A relative core.hooksPath (hooks tracked in
  the repository) is chained to as it is, in the agent's own worktree.

The same copy, with the shared config (less git-agents' own records) and `info/exclude`, is the
fingerprint `changes` compares against when the agent has exited and before merging.

This guards against mistakes, not against an agent that sets out to escape it
(`git -c core.hooksPath=...`, or writing ref files directly): that is what `--isolation=clone`
and `sandbox` are for.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from collections.abc import Mapping, Sequence

from git_agents.core.refs import HEADS
from git_agents.core.repo import Repo, parse_config_list
from git_agents.tasks.store import SECTION, Task

IDENTITY = ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL")
HOOKS = "guard-hooks"  # in the task dir: the hooks directory the agent's git is given
SNAPSHOT = "guard"  # in the task dir: the fingerprint taken at spawn (config, exclude, hooks/)
ZEROS = "0" * 40

_REFERENCE_TRANSACTION = r"""#!/bin/sh
# git-agents guard of task {task}: generated at spawn (git_agents/tasks/guard.py)
branch={branch}
input=
refused=0
refuse() {{
  echo "git-agents: refusing to $*" >&2
  refused=1
}}
while read -r old new ref; do
  input="$input$old $new $ref
"
  [ "$1" = prepared ] || continue
  case $ref in
    "{heads}$branch")
      case $new in
        *[!0]*) ;;
        *) refuse "delete your branch $branch: it holds this task's work" ;;
      esac ;;
    refs/worktree/*|refs/bisect/*|refs/rewritten/*|refs/remotes/*) ;;
    refs/stash)
      refuse "update refs/stash: stash is shared between tasks:" \
        "commit a work-in-progress commit on your branch (git commit -am wip) instead" ;;
    {heads}*)
      refuse "update $ref: branches are shared with the user and the other tasks;" \
        "this task may move only its own branch $branch (commit there; do not create, reset or delete others)" ;;
    refs/tags/*)
      refuse "update $ref: tags are shared with the user; leave tagging to them" ;;
    refs/notes/*)
      refuse "update $ref: notes are shared with the user and git-agents; say it in a commit message instead" ;;
    refs/*)
      refuse "update $ref: refs are shared with the user and the other tasks;" \
        "this task may move only its own branch $branch" ;;
  esac
done
[ "$refused" = 0 ] || exit 1
{chain}"""

_PRE_PUSH = r"""#!/bin/sh
# git-agents guard of task {task}: generated at spawn (git_agents/tasks/guard.py)
branch={branch}
input=
refused=0
while read -r local_ref local_oid remote_ref remote_oid; do
  input="$input$local_ref $local_oid $remote_ref $remote_oid
"
  if [ "$remote_ref" != "{heads}$branch" ]; then
    echo "git-agents: refusing to push to $remote_ref: pushing is left to the user;" \
      "this task may push only its own branch $branch" >&2
    refused=1
  fi
done
[ "$refused" = 0 ] || exit 1
{chain}"""

# The chain to the user's hook of the same name, with the arguments (and stdin, as read) git gave.
_CHAIN_STDIN = """hook={hook}
[ -x "$hook" ] || exit 0
printf '%s' "$input" | "$hook" "$@"
"""
_CHAIN = """#!/bin/sh
# git-agents guard of task {task}: runs the user's hook (generated at spawn, see git_agents/tasks/guard.py)
hook={hook}
[ -x "$hook" ] || exit 0
exec "$hook" "$@"
"""


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def user_hooks(repo: Repo) -> tuple[str, bool]:
    """(the user's hooks directory, whether it is relative to the worktree git runs a hook in)."""
    configured = repo.config.get("core.hookspath")
    if configured and configured[-1]:
        path = os.path.expanduser(configured[-1])
        return path, not os.path.isabs(path)
    return os.path.join(repo.common_dir, "hooks"), False


def _user_hook_names(directory: str) -> list[str]:
    try:
        entries = os.listdir(directory)
    except OSError:
        return []
    return sorted(n for n in entries if not n.endswith(".sample") and os.access(os.path.join(directory, n), os.X_OK)
                  and os.path.isfile(os.path.join(directory, n)))


def _write(path: str, text: str, mode: int = 0o755) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def snapshot_dir(repo: Repo, task_id: str) -> str:
    """Where the fingerprint of task `task_id` (taken at spawn) is kept."""
    return os.path.join(repo.task_dir(task_id), SNAPSHOT)


def install(repo: Repo, task: Task, env: Mapping[str, str]) -> str:
    """Take the fingerprint of what the task's agent shares (the config, info/exclude, a copy of
    the hooks, and the identity in `env`, the agent's) and write the task's guard hooks
    directory; return that directory (for core.hooksPath)."""
    snap = snapshot_dir(repo, task.id)
    user_dir, relative = user_hooks(repo)
    copy = os.path.join(snap, "hooks")
    if not os.path.isdir(copy):  # taken once, at the first launch: a later round is compared with the spawn
        tmp = snap + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        if relative:
            os.makedirs(os.path.join(tmp, "hooks"))
        else:
            _copy_hooks(user_dir, os.path.join(tmp, "hooks"))
        for name, data in _shared_files(repo).items():
            with open(os.path.join(tmp, name), "wb") as fh:
                fh.write(data)
        _write(os.path.join(tmp, "identity"),
               "".join(f"{key}={env[key]}\n" for key in IDENTITY if key in env), 0o644)
        shutil.rmtree(snap, ignore_errors=True)
        os.replace(tmp, snap)
    hooks = os.path.join(repo.task_dir(task.id), HOOKS)
    shutil.rmtree(hooks, ignore_errors=True)
    os.makedirs(hooks)
    chain_dir = user_dir if relative else copy
    names = set(_user_hook_names(user_dir if not relative else os.path.join(task.worktree or ".", user_dir)))
    names |= {"reference-transaction", "pre-push"}
    branch = _quote(task.branch)
    for name in sorted(names):
        target = _quote(os.path.join(chain_dir, name))
        if name == "reference-transaction":
            text = _REFERENCE_TRANSACTION.format(task=task.id, branch=branch, heads=HEADS,
                                                 chain=_CHAIN_STDIN.format(hook=target))
        elif name == "pre-push":
            text = _PRE_PUSH.format(task=task.id, branch=branch, heads=HEADS, chain=_CHAIN_STDIN.format(hook=target))
        else:
            text = _CHAIN.format(task=task.id, hook=target)
        _write(os.path.join(hooks, name), text)
    return hooks


def _copy_hooks(source: str, dest: str) -> None:
    """Copy the user's hooks directory (its samples left out), keeping modes and symlinks."""
    if not os.path.isdir(source):
        os.makedirs(dest)
        return
    shutil.copytree(source, dest, symlinks=True, ignore=lambda _d, names: [n for n in names if n.endswith(".sample")])


def _shared_files(repo: Repo) -> dict[str, bytes]:
    """The shared config file (git-agents' task records left out) and info/exclude (the block
    git-agents adds for the agents' tools left out), as they are now: read, no git call."""
    from git_agents.core.configfile import without_sections

    try:
        with open(os.path.join(repo.common_dir, "config"), "rb") as fh:
            config = fh.read()
    except OSError:
        config = b""
    # extensions.worktreeConfig: set by a sparse spawn (core.worktrees).
    return {"config": without_sections(config, [SECTION], ["extensions.worktreeConfig"]), "exclude": _exclude(repo)}


# The line that starts the block git-agents adds to the shared info/exclude for the files the agents'
# tools leave (tasks.presets writes it): here, so that a merge's check of that file imports no presets.
EXCLUDE_MARK = "# git-agents: files coding agents leave in their worktrees"


def _exclude(repo: Repo) -> bytes:
    """The shared info/exclude as it is now, the block git-agents adds for the agents' tools left out."""
    try:
        with open(os.path.join(repo.common_dir, "info", "exclude"), "rb") as fh:
            return fh.read().split(EXCLUDE_MARK.encode() + b"\n", 1)[0]
    except OSError:
        return b""


def hooks_fingerprint(directory: str) -> dict[str, bytes]:
    """Each file under a hooks directory (samples left out) with its mode and contents."""
    found: dict[str, bytes] = {}
    for top, dirs, files in os.walk(directory):
        dirs.sort()
        for name in files:
            if name.endswith(".sample"):
                continue
            path = os.path.join(top, name)
            rel = os.path.relpath(path, directory)
            try:
                st = os.lstat(path)
                if stat.S_ISLNK(st.st_mode):
                    found[rel] = b"symlink -> " + os.fsencode(os.readlink(path)) + b"\n"
                    continue
                with open(path, "rb") as fh:
                    data = fh.read()
            except OSError:
                continue
            mode = "executable" if st.st_mode & 0o111 else "not executable"
            found[rel] = f"({mode})\n".encode() + data
    return found


def changes(repo: Repo, task: Task) -> list[str]:
    """What changed in the shared config, `hooks/` and `info/exclude` since the task was spawned,
    as unified diffs (one per file); [] when nothing did, or the task has no fingerprint."""
    snap = snapshot_dir(repo, task.id)
    if not os.path.isdir(snap):
        return []
    diffs: list[str] = []
    now = _shared_files(repo)
    for name, label in (("config", "config"), ("exclude", "info/exclude")):
        try:
            with open(os.path.join(snap, name), "rb") as fh:
                before = fh.read()
        except OSError:
            continue
        diffs += _diff(label, before, now[name])
    user_dir, relative = user_hooks(repo)
    if not relative:
        old, new = hooks_fingerprint(os.path.join(snap, "hooks")), hooks_fingerprint(user_dir)
        for rel in sorted(set(old) | set(new)):
            diffs += _diff(f"hooks/{rel}", old.get(rel, b""), new.get(rel, b""))
    return diffs


def changes_warning(repo: Repo, task: Task) -> str:
    """`changes` as the one warning that wait and status give of it (after "warning: task <id>: ";
    no final newline), or "" when nothing changed."""
    diffs = changes(repo, task)
    if not diffs:
        return ""
    return ("the shared config, hooks/ or info/exclude changed since it was spawned (by its agent, another agent,"
            " or you):\n" + "".join(diffs)).rstrip("\n")


def _diff(label: str, before: bytes, after: bytes) -> list[str]:
    if before == after:
        return []
    a = before.decode("utf-8", "replace").splitlines(keepends=True)
    b = after.decode("utf-8", "replace").splitlines(keepends=True)
    import difflib  # only when something changed: not on every merge's path

    text = "".join(difflib.unified_diff(a, b, f"{label} (at spawn)", f"{label} (now)"))
    return [text if text.endswith("\n") else text + "\n"]


def spawn_identity(repo: Repo, task: Task) -> dict[str, str]:
    """The identity keys (user.*, author.*, committer.*) of the shared config as they were when
    the task was spawned, when they changed since: {key: value} to pass over the current ones
    ("" for a key that was not set then)."""
    snap = os.path.join(snapshot_dir(repo, task.id), "config")
    try:
        with open(snap, "rb") as fh:
            if fh.read() == _shared_files(repo)["config"]:
                return {}
    except OSError:
        return {}
    values = []
    for path in (snap, os.path.join(repo.common_dir, "config")):
        raw = repo.git.run("config", "--file", path, "-z", "--list", ok=(0, 1)).out
        values.append({k: v[-1] for k, v in parse_config_list(raw).items()
                       if k.startswith(("user.", "author.", "committer."))})
    then, now = values
    if then == now:
        return {}
    return {k: then.get(k, "") for k in set(then) | set(now)}


def config_env(env: dict[str, str], entries: dict[str, str]) -> dict[str, str]:
    """`env` with `entries` appended as GIT_CONFIG_KEY_n/VALUE_n (after those in `env`, or in the
    process's environment when `env` has none)."""
    count = env.get("GIT_CONFIG_COUNT", os.environ.get("GIT_CONFIG_COUNT", ""))
    n = int(count) if count.isdigit() else 0
    out = dict(env)
    for key, value in entries.items():
        out[f"GIT_CONFIG_KEY_{n}"], out[f"GIT_CONFIG_VALUE_{n}"] = key, value
        n += 1
    out["GIT_CONFIG_COUNT"] = str(n)
    return out


def guarded_env(repo: Repo, task: Task, env: dict[str, str]) -> dict[str, str]:
    """`env` for the task's agent with the guard given (agent.guard, on by default): its hooks
    directory as core.hooksPath, in GIT_CONFIG_* entries."""
    from git_agents.core.settings import parse_bool

    if not parse_bool(repo.setting("agent.guard"), True):
        return env
    return config_env(env, {"core.hooksPath": install(repo, task, env)})


def _read_lines(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            return dict(line.partition("=")[::2] for line in fh.read().splitlines())
    except OSError:
        return {}


def protect_merge(repo: Repo, tasks: Sequence[Task]) -> None:
    """Before merging `tasks`: when the shared config, hooks/ or info/exclude changed since the
    first of them was spawned, say so on stderr with the diff, and make this process's git use
    the identity and the hooks as they were then (repo.git's environment): a merge never runs a
    hook, or signs with an identity, an agent put there. Nothing is restored: the change may be
    yours; the copy taken at spawn is named for it."""
    spawned = sorted((t for t in tasks if os.path.isdir(os.path.join(snapshot_dir(repo, t.id), "hooks"))),
                     key=lambda t: t.created)
    if not spawned:
        return
    task = spawned[0]
    diffs = changes(repo, task)
    if not diffs:
        return
    snap = snapshot_dir(repo, task.id)
    env: dict[str, str] = {}
    used = []
    if spawn_identity(repo, task):
        identity = _read_lines(os.path.join(snap, "identity"))
        env.update({k: v for k, v in identity.items() if k in IDENTITY})
        used.append("the identity")
    if any(d.startswith("--- hooks/") or "hookspath" in d.lower() for d in diffs):
        res = repo.git.run("config", "--file", os.path.join(snap, "config"), "--get", "core.hooksPath", ok=(0, 1))
        then = os.path.expanduser(res.out.strip())
        env = config_env(env, {"core.hooksPath": then if then and not os.path.isabs(then)
                               else os.path.join(snap, "hooks")})
        used.append("the hooks")
    from git_agents.core.git import Git

    if env:
        repo.git = Git(repo.toplevel, {**(repo.git.env or {}), **env})
    kept = f"; this merge uses {' and '.join(used)} as they were then" if used else ""
    sys.stderr.write(f"warning: the shared config, hooks/ or info/exclude changed since task {task.id} was spawned"
                     f" (by an agent, or by you){kept}; as they were: {snap}\n" + "".join(diffs))


def hidden_by_exclude(repo: Repo, task: Task) -> list[str]:
    """Untracked files of the task's worktree that lines added to the shared info/exclude since
    it was spawned hide (work a merge would leave out and a clean would delete)."""
    try:
        with open(os.path.join(snapshot_dir(repo, task.id), "exclude"), "rb") as fh:
            then = set(fh.read().decode("utf-8", "surrogateescape").splitlines())
    except OSError:
        return []
    now = _exclude(repo).decode("utf-8", "surrogateescape").splitlines()  # not the config: it grows with the tasks
    added = [line for line in now if line not in then and line.strip() and not line.startswith(("#", "!"))]
    if not added or not task.worktree or not os.path.isdir(task.worktree):
        return []
    return repo.git.at(task.worktree).z("ls-files", "-z", "--others", "--ignored", *(f"--exclude={p}" for p in added))
