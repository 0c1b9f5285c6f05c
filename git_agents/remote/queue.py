"""The task queue kept on a shared git remote: ref names, records, fetching and compare-and-swap pushes.

Everything lives in refs on the remote, so any git server is the coordinator:

    refs/agents/queue/<id>    a commit whose tree holds spec.json and prompt.md (published once)
    refs/agents/claims/<id>   a commit whose message carries the claiming worker and its heartbeat
    refs/agents/results/<id>  a commit (parent: the task branch tip) with exit code, times, log tail
    refs/agents/merged/<id>   the merge commit that brought the task into its target branch
    refs/agents/rejected/<id> a commit (parent: the result) saying the merged result failed the merge check

Every change is a push with an expected old value (`--force-with-lease=<ref>:<old>`, empty =
must not exist), which the server's receive-pack checks under its ref lock: two workers can
never both create a claim, and only the holder of a claim can publish its result. Refs under
refs/agents are not fetched by default; `fetch` maps them to refs/agents/remote/<name>/ and the
remote's branches to refs/agents/remote-heads/<name>/ (pruned, so deleted claims disappear).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from git_agents.core.errors import AgentError
from git_agents.core.lock import RepoLock
from git_agents.core.refs import HEADS, branch_ref
from git_agents.core.repo import Repo
from git_agents.core.settings import parse_bool

FORMAT_VERSION = 1
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
KINDS = ("queue", "claims", "results", "merged", "rejected")


@dataclass
class RemoteTask:
    """What the remote says about one task id."""

    id: str
    queue: str = ""  # commit of refs/agents/queue/<id>
    title: str = ""
    claim: str = ""  # commit of refs/agents/claims/<id>, "" when unclaimed
    claim_info: dict[str, object] = field(default_factory=dict)
    result: str = ""
    result_info: dict[str, object] = field(default_factory=dict)
    merged: str = ""
    rejected: str = ""  # commit of refs/agents/rejected/<id>: the last merge attempt failed its check
    rejected_info: dict[str, object] = field(default_factory=dict)
    # Records that cannot be read (kind -> why): each affects only its own task (see `problems`).
    bad: dict[str, str] = field(default_factory=dict)
    newer: set[str] = field(default_factory=set)  # kinds whose record a newer git-agents wrote

    def problems(self) -> list[str]:
        """One sentence per unreadable record of this task, for a warning line."""
        return [f"task {self.id}: {why}" for why in self.bad.values()]

    def heartbeat_age(self, now: float | None = None) -> float | None:
        """Seconds since the claim's last heartbeat (by the claimer's clock), None when unclaimed."""
        beat = self.claim_info.get("heartbeat")
        if not self.claim or not isinstance(beat, (int, float)):
            return None
        return max(0.0, (now if now is not None else time.time()) - beat)

    def state(self) -> str:
        """queued, claimed, done, failed, check-failed, merged or invalid (a record cannot be read)."""
        if self.merged:
            return "merged"
        if "queue" in self.bad or "results" in self.bad:
            return "invalid"
        if self.rejected:
            return "check-failed"
        if self.result:
            return "done" if self.result_info.get("exit") == 0 else "failed"
        return "claimed" if self.claim else "queued"


@dataclass(frozen=True)
class Update:
    """One ref update of a push: set `ref` to `new` (None deletes it) if it is now `expect` ("" = absent)."""

    ref: str
    new: str | None
    expect: str


@dataclass(frozen=True)
class PushResult:
    """How the remote answered each ref of a push."""

    refs: dict[str, tuple[bool, str]]  # ref -> (updated?, git's summary such as "[rejected] (stale info)")
    moved: frozenset[str] = frozenset()  # refused refs whose value on the remote is not the one expected

    @property
    def ok(self) -> bool:
        """Whether every ref was updated."""
        return all(done for done, _ in self.refs.values())

    def lost(self, ref: str) -> bool:
        """Whether `ref` was refused because its value was not the expected one (someone else moved it).

        Decided by the remote's value after the push (push() asks for it), never by the server's
        `remote:` messages, whose language is the server's: in an atomic push every ref is marked
        "atomic transaction failed" and only those messages name the culprit.
        """
        return ref in self.moved

    def reason(self) -> str:
        """Why the push failed, in git's words (the first refusal that is not just "atomic ... failed")."""
        refused = [s for done, s in self.refs.values() if not done]
        return next((s for s in refused if "atomic" not in s), refused[0] if refused else "")


def message_json(message: str) -> dict[str, object]:
    """The JSON record after the subject line of one of our commits ({} when there is none)."""
    _, _, body = message.partition("\n\n")
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class BadRecord(Exception):
    """A record on the remote that this git-agents cannot use; `newer`: a newer git-agents wrote it."""

    def __init__(self, message: str, *, newer: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.newer = newer


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
# What each kind of record must hold to be used (a field: the test its value must pass).
_REQUIRED: dict[str, dict[str, Callable[[object], bool]]] = {
    "claims": {"heartbeat": _number},
    "results": {"exit": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)),
                "tip": lambda v: isinstance(v, str) and (v == "" or bool(_SHA.fullmatch(v))),
                "branch": lambda v: isinstance(v, str)},
    "rejected": {},
}
_NAMES = {"claims": "claim", "results": "result", "rejected": "check record", "queue": "queue entry"}


def parse_record(data: object, kind: str, task_id: str) -> dict[str, object]:
    """A record checked for what `kind` needs; BadRecord (saying why) when it cannot be used."""
    what = f"its {_NAMES.get(kind, kind)}"
    if not isinstance(data, dict):
        raise BadRecord(f"{what} is not a git-agents record (not a JSON object)")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BadRecord(f"{what} has no format version")
    if version > FORMAT_VERSION:
        raise BadRecord(f"{what} has format version {version}; this git-agents reads version {FORMAT_VERSION}"
                        " (upgrade git-agents to handle it)", newer=True)
    for key, valid in _REQUIRED.get(kind, {}).items():
        if key not in data or not valid(data[key]):
            raise BadRecord(f"{what} has no valid '{key}'")
    if "task" in data and data["task"] != task_id:
        raise BadRecord(f"{what} names another task ({str(data['task'])!r})")
    return data


def _record(message: str, kind: str, task_id: str) -> dict[str, object]:
    """The JSON record of a claim, result or check record (BadRecord when unreadable)."""
    _, _, body = message.partition("\n\n")
    try:
        data = json.loads(body)
    except ValueError:
        raise BadRecord(f"its {_NAMES[kind]} is not a git-agents record (not JSON)") from None
    return parse_record(data, kind, task_id)


def check_version(record: dict[str, object], what: str) -> None:
    """Refuse records written by a newer git-agents (they may mean something else)."""
    version = record.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise AgentError(f"{what} has format version {version!r}; this git-agents reads version {FORMAT_VERSION}",
                         hint="upgrade git-agents on this machine")


@dataclass(frozen=True)
class Spec:
    """A queued task as published: spec.json and prompt.md, checked."""

    id: str
    title: str
    agent: str
    base: str
    prompt: str


def parse_spec(task_id: str, raw: str, prompt: str) -> Spec:
    """spec.json and prompt.md of a queue entry, checked field by field (BadRecord saying why)."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise BadRecord("its spec.json is not JSON") from None
    data = parse_record(data, "queue", task_id)
    fields = {}
    for key in ("id", "title", "agent", "base"):
        value = data.get(key, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise BadRecord(f"its spec.json field '{key}' is not a string")
        if "\0" in value or (key != "agent" and any(c in value for c in "\n\r")):
            raise BadRecord(f"its spec.json field '{key}' holds a NUL or line break")
        fields[key] = value
    if fields["id"] and fields["id"] != task_id:
        raise BadRecord(f"its spec.json names another task ({fields['id']!r})")
    if not fields["base"]:
        raise BadRecord("its spec.json names no base branch")
    if "\0" in prompt:
        raise BadRecord("its prompt.md holds a NUL byte")
    return Spec(task_id, fields["title"], fields["agent"], fields["base"], prompt)


class RemoteQueue:
    """The queue on one remote, seen from a local clone."""

    def __init__(self, repo: Repo, remote: str | None = None) -> None:
        self.repo = repo
        self.git = repo.git
        self.remote = remote or repo.setting("agent.remote")
        configured = f"remote.{self.remote}.url" in repo.config
        if not configured and "/" not in self.remote and ":" not in self.remote:
            raise AgentError(f"'{self.remote}' is not a configured remote",
                             hint="pass --remote <name-or-url>, or set agent.remote (git remote -v lists them)")
        # Tracking refs need a name safe in a ref: the remote's own, or a digest of its URL.
        self.name = self.remote if configured else "url-" + hashlib.sha1(self.remote.encode()).hexdigest()[:12]
        self.track = f"refs/agents/remote/{self.name}"
        self.heads = f"refs/agents/remote-heads/{self.name}"
        self._have_empty_tree = False

    # -- reading -------------------------------------------------------------------------------
    def fetch(self, *extra: str) -> None:
        """Bring the remote's refs/agents/*, its branches and `extra` refspecs into tracking refs."""
        # One fetch per clone at a time: concurrent fetches race on the same tracking refs.
        with RepoLock(self.repo.common_dir, "remote"):
            self.git.run("fetch", "--prune", "--no-tags", "--quiet", "--no-write-fetch-head", self.remote,
                         f"+refs/agents/*:{self.track}/*", f"+{HEADS}*:{self.heads}/*", *extra)

    def tasks(self) -> dict[str, RemoteTask]:
        """Every task id the remote knows (as of the last fetch), in id order."""
        from git_agents.tasks.ids import id_problem, sort_key

        out = self.git.run("for-each-ref", "--format=%(refname)%00%(objectname)%00%(contents)%00%00",
                           f"{self.track}/").out
        tasks: dict[str, RemoteTask] = {}
        for record in out.split("\0\0\n"):
            if not record:
                continue
            ref, sha, message = (record.split("\0", 2) + ["", ""])[:3]
            kind, _, task_id = ref[len(self.track) + 1:].partition("/")
            if kind not in KINDS or not task_id:
                continue
            task = tasks.setdefault(task_id, RemoteTask(task_id))
            if id_problem(task_id):  # a ref name that cannot be a task here (it could not be a branch or a key)
                task.bad["queue"] = f"its id is not a valid task id ({id_problem(task_id)})"
            if kind == "queue":
                task.queue = sha
                task.title = message.split("\n", 1)[0].partition(" - ")[2]
            elif kind == "merged":
                task.merged = sha
            else:
                try:
                    info = _record(message, kind, task_id)
                except BadRecord as bad:
                    info = {}
                    task.bad[kind] = bad.message
                    if bad.newer:
                        task.newer.add(kind)
                if kind == "claims":
                    task.claim, task.claim_info = sha, info
                elif kind == "results":
                    task.result, task.result_info = sha, info
                else:
                    task.rejected, task.rejected_info = sha, info
        return {k: tasks[k] for k in sorted(tasks, key=sort_key)}

    def head(self, branch: str) -> str | None:
        """The remote's `branch` tip as of the last fetch."""
        return self.git.rev_parse(f"{self.heads}/{branch}^{{commit}}")

    def exists(self, ref: str) -> bool:
        """Whether the remote has `ref` now (asked of the server, not of the last fetch)."""
        return bool(self.git.run("ls-remote", self.remote, ref).out.strip())

    def spec(self, task: RemoteTask) -> Spec:
        """The checked spec of a queued task (BadRecord saying why it cannot be used)."""
        if "queue" in task.bad:
            raise BadRecord(task.bad["queue"])
        blobs = {}
        for name in ("spec.json", "prompt.md"):
            res = self.git.run("cat-file", "blob", f"{task.queue}:{name}", ok=range(0, 256))
            if res.code != 0:
                raise BadRecord(f"its queue entry has no {name}")
            blobs[name] = res.out
        if "\0" in blobs["spec.json"]:
            raise BadRecord("its spec.json holds a NUL byte")
        spec = parse_spec(task.id, blobs["spec.json"], blobs["prompt.md"])
        if not self.git.ok("check-ref-format", branch_ref(spec.base)):
            raise BadRecord(f"its base {spec.base!r} is not a valid branch name")
        return spec

    # -- writing -------------------------------------------------------------------------------
    def signs(self) -> bool:
        """Whether result commits made here are signed: a signing key is configured (user.signingkey,
        gpg.ssh.defaultKeyCommand) or commit.gpgsign is true."""
        config = self.repo.config
        gpgsign = config.get("commit.gpgsign")
        return bool(config.get("user.signingkey") or config.get("gpg.ssh.defaultkeycommand")
                    or (gpgsign and parse_bool(gpgsign[-1])))

    def record_commit(self, subject: str, record: Mapping[str, object], *, tree: str = EMPTY_TREE,
                      parents: tuple[str, ...] = (), sign: bool = False) -> str:
        """A commit whose message is `subject` and a JSON record (with our format version).

        With `sign`, signed with git's signing (`commit-tree -S`, the configured key) when
        `signs()`: results are what `merge --remote --verify-signatures` checks.
        """
        if tree == EMPTY_TREE and not self._have_empty_tree:
            self.git.run("hash-object", "-w", "-t", "tree", "--stdin", input="")
            self._have_empty_tree = True
        body = json.dumps({"version": FORMAT_VERSION, **record}, indent=1, sort_keys=True)
        args = ["commit-tree", tree]
        if sign and self.signs():
            args.append("-S")
        for parent in parents:
            args += ["-p", parent]
        return self.git(*args, "-F", "-", input=f"{subject}\n\n{body}\n")

    def push(self, updates: list[Update], *, atomic: bool) -> PushResult:
        """Push ref updates, each guarded by its expected old value; report how each ref fared."""
        args = ["push", "--porcelain", "--no-verify"]
        if atomic:
            args.append("--atomic")
        args += [f"--force-with-lease={u.ref}:{u.expect}" for u in updates]
        args.append(self.remote)
        args += [f"{u.new or ''}:{u.ref}" for u in updates]
        res = self.git.run(*args, ok=range(0, 256))
        refs: dict[str, tuple[bool, str]] = {}
        for line in res.out.splitlines():
            flag, sep, rest = line.partition("\t")
            if not sep or len(flag) != 1:
                continue
            spec, _, summary = rest.partition("\t")
            refs[spec.rpartition(":")[2]] = (flag in " +-*=", summary)
        missing = [u.ref for u in updates if u.ref not in refs]
        if missing:  # no per-ref answer: the remote could not be reached or refused the whole push
            from git_agents.core.errors import GitError

            raise GitError(["git", *args], res.code, res.out, res.err)
        refused = [u for u in updates if not refs[u.ref][0]]
        if not refused:
            return PushResult(refs)
        now = dict(line.split("\t")[::-1] for line in self.git.run(
            "ls-remote", self.remote, *(u.ref for u in refused)).out.splitlines() if "\t" in line)
        return PushResult(refs, frozenset(u.ref for u in refused if now.get(u.ref, "") != (u.expect or "")))


def ref(kind: str, task_id: str) -> str:
    """The remote ref of one task record: ref("claims", "48") = refs/agents/claims/48."""
    return f"refs/agents/{kind}/{task_id}"
