"""The git gateway: the only place in the package that runs git.

Every git call goes through `Git.run`, which turns failures into `GitError` and, with
`GIT_AGENTS_TRACE` set, prints each call with its duration (to stderr for `1`/`true`/`2`,
or appended to the file when the value is an absolute path, as `GIT_TRACE` does).

git runs through plumbum, as the project specifies, imported on the first git call and not
at start-up: `-h` and the commands that run no git never pay for it. The import costs
50-130 ms on a loaded two-core machine (benchmarks/startup.py prints it); swapping the
runner is a change to `_run_git` alone. plumbum copies `os.environ` once at import and puts
that copy under the environment a command is given, so the copy is emptied and each call passes
the current environment explicitly.

Output is read as bytes. `Result.raw` holds stdout exactly as git wrote it; `Result.out` is
the same bytes decoded as UTF-8 with `surrogateescape`, so a path byte that is not UTF-8
comes back as a lone surrogate (U+DC80-U+DCFF) and `os.fsencode` gives the exact bytes again:
paths survive a trip through `str`, through argv and through `input` (encoded the same way).
Callers that print a path use `quote_path`, as git quotes paths; `--json` output keeps the
surrogates as `\\udcXX` escapes (documented in git-agents(7)).

git 2.39 is the floor: the first git call of a process checks git's version (never done by
`-h` or by commands that run no git) and stops with a clear `fatal:` on an older git. The
version is asked with `git version` (one short call) unless the version cache already holds it
for this very executable (see `_cached_version`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from git_agents.core.errors import AgentError, GitError
from git_agents.core.refs import HEADS, BranchName, Oid, branch_name, branch_ref, is_branch_ref

MIN_VERSION = (2, 39)

_GIT: Any = None
_VERSION_CHECKED = False

#: Functions called with the argv before every git call. Empty in production; the test suite
#: registers its crash hook here (tests/hooks/sitecustomize.py), so the hook costs nothing
#: outside the tests.
CALL_HOOKS: list[Callable[[list[str]], None]] = []


def add_call_hook(hook: Callable[[list[str]], None]) -> None:
    """Call `hook(argv)` before every git call of this process (for tests: crash at an exact point)."""
    CALL_HOOKS.append(hook)


def decode(raw: bytes) -> str:
    """Bytes from git as str: UTF-8, with bytes that are not UTF-8 kept as surrogates (round-trips)."""
    return raw.decode("utf-8", "surrogateescape")


def encode(text: str) -> bytes:
    """The inverse of `decode`: the exact bytes of a path read from git."""
    return text.encode("utf-8", "surrogateescape")


_QUOTE = {ord("\a"): "\\a", ord("\b"): "\\b", ord("\t"): "\\t", ord("\n"): "\\n", ord("\v"): "\\v",
          ord("\f"): "\\f", ord("\r"): "\\r", ord('"'): '\\"', ord("\\"): "\\\\"}


def quote_path(path: str, *, quote_non_ascii: bool = True) -> str:
    """`path` as git prints it (core.quotePath): unchanged when plain, else in double quotes with
    C escapes and bytes >= 0x80 as octal (`"caf\\351.txt"`). With `quote_non_ascii=False`
    (core.quotePath=false) valid UTF-8 is left as it is and only undecodable bytes are octal."""
    raw = encode(path)
    out: list[str] = []
    needs = False
    if quote_non_ascii:
        for byte in raw:
            if byte in _QUOTE:
                out.append(_QUOTE[byte])
                needs = True
            elif byte < 0x20 or byte >= 0x7F:
                out.append(f"\\{byte:03o}")
                needs = True
            else:
                out.append(chr(byte))
    else:
        for ch in path:
            code = ord(ch)
            if code in _QUOTE:
                out.append(_QUOTE[code])
                needs = True
            elif 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8
                out.append(f"\\{code - 0xDC00:03o}")
                needs = True
            elif code < 0x20 or code == 0x7F:
                out.append(f"\\{code:03o}")
                needs = True
            else:
                out.append(ch)
    return f'"{"".join(out)}"' if needs else path


_UNQUOTE = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def unquote_path(text: str) -> str:
    """The inverse of `quote_path` (also reads git's own quoted paths): the exact path again."""
    if len(text) < 2 or not (text.startswith('"') and text.endswith('"')):
        return text
    body, out, i = text[1:-1], bytearray(), 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in _UNQUOTE:
                out.append(_UNQUOTE[nxt])
                i += 2
                continue
            if body[i + 1:i + 4].isdigit() and len(body[i + 1:i + 4]) == 3:
                out.append(int(body[i + 1:i + 4], 8) & 0xFF)
                i += 4
                continue
        out += encode(ch)
        i += 1
    return decode(bytes(out))


def quote_paths(paths: Iterable[str], config: Mapping[str, list[str]] | None = None) -> str:
    """Paths for a message, comma-separated, each quoted as git would with this repository's core.quotePath."""
    values = (config or {}).get("core.quotepath") or ["true"]
    plain = values[-1].strip().lower() in ("false", "no", "off", "0")
    return ", ".join(quote_path(p, quote_non_ascii=not plain) for p in paths)


def _defer_import(name: str) -> None:
    """Put a stand-in for the module `name` into sys.modules that imports the real one when
    first asked for any of its names (unless `name` is imported already).

    For urllib.request, which plumbum imports at its own import and uses only to turn paths
    into URIs (`LocalPath.as_uri`, never called here): with it come http.client, email and ssl,
    about a third of plumbum's import (25-30 ms of 80-90 on a loaded two-core machine; measure
    with `python -X importtime`). importlib.util.LazyLoader cannot do this on Python 3.11:
    every later `import urllib.request` reads the module's `__spec__`, and any attribute of a
    lazy module loads it, so plumbum's own import statement loaded it at once. The stand-in
    keeps a real `__spec__` and loads through a module `__getattr__` (PEP 562), which runs
    only for names it does not have yet.
    """
    if name in sys.modules:
        return
    import importlib
    import importlib.util
    import types

    spec = importlib.util.find_spec(name)
    if spec is None:
        return
    parent, _, child = name.rpartition(".")
    stand_in = types.ModuleType(name)
    stand_in.__spec__ = spec

    def load(attr: str) -> Any:
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]
        real = importlib.import_module(name)
        stand_in.__dict__.update(real.__dict__)  # later look-ups through the stand-in find them at once
        return getattr(real, attr)

    stand_in.__dict__["__getattr__"] = load
    sys.modules[name] = stand_in
    if parent:
        setattr(importlib.import_module(parent), child, stand_in)


def _git_command() -> Any:
    """plumbum's `git` command, imported on first use."""
    global _GIT
    if _GIT is None:
        _defer_import("urllib.request")
        try:
            from plumbum import local  # heavy: imported only by commands that run git
        except ImportError as exc:  # bin/ run by a Python without the package's dependencies
            raise AgentError(f"plumbum, which git-agents runs git with, cannot be imported by {sys.executable}",
                             hint="install git-agents with that Python (pip install .), "
                                  "or put the Python it was installed with first on PATH") from exc

        _GIT = local["git"]
        # plumbum runs every command with its import-time copy of the environment *under* the one
        # passed (LocalMachine._popen merges both), so a variable unset since then would still reach
        # git. Emptied (after git is looked up on its PATH), it adds nothing: git gets exactly the
        # environment `_run_git` passes, os.environ as it is at the call.
        local.env.clear()
    return _GIT


def _run_git(argv: list[str], cwd: str | None, env: dict[str, str] | None,
             input: bytes | None, timeout: float | None = None) -> tuple[int, bytes, bytes]:
    """Run git once through plumbum; return (exit status, stdout, stderr) as bytes.

    With `timeout` git runs in a session of its own, so that on expiry it is killed with what it
    started (ssh, a remote helper): subprocess.TimeoutExpired."""
    stdin: Any = subprocess.DEVNULL
    if input is not None:
        stdin = tempfile.TemporaryFile("w+b")
        stdin.write(input)
        stdin.flush()
        stdin.seek(0)
    try:
        # popen + communicate, not .run(): .run() decodes with errors ignored and loses path bytes.
        proc = _git_command()[argv].popen(cwd=cwd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          env={**os.environ, **env} if env else dict(os.environ),
                                          start_new_session=timeout is not None)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    finally:
        if input is not None:
            stdin.close()
    return proc.returncode, out, err


def _trace(argv: list[str], cwd: str | None, seconds: float, code: int) -> None:
    target = os.environ.get("GIT_AGENTS_TRACE", "")
    if not target or target.lower() in ("0", "false", "no", "off"):
        return
    where = f" (in {cwd})" if cwd else ""
    line = f"trace: git-agents: {seconds * 1000:7.1f} ms exit {code}: git {' '.join(argv)}{where}\n"
    if os.path.isabs(target):
        with open(target, "a", encoding="utf-8", errors="surrogateescape") as fh:
            fh.write(line)
    else:
        sys.stderr.write(line.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
        sys.stderr.flush()


def parse_version(text: str) -> tuple[int, ...]:
    """(2, 39, 5) from `git version 2.39.5` (also `2.39.0.windows.1`, `2.40.0-rc1`)."""
    words = text.split()
    digits: list[int] = []
    for part in (words[2] if len(words) > 2 else "").split("."):
        lead = ""
        for ch in part:
            if not ch.isdigit():
                break
            lead += ch
        if not lead:
            break
        digits.append(int(lead))
    return tuple(digits)


#: The version cache: a file of lines `<executable path, hex> <size> <mtime_ns> <inode> <device> <version>`.
VERSION_CACHE = os.path.join("git-agents", "git-version")
_VERSION_CACHE_ENTRIES = 8  # a few gits (a user's, a test's fake) in turn do not push each other out


def _version_cache_path() -> str | None:
    """`${XDG_CACHE_HOME:-~/.cache}/git-agents/git-version` (None when there is no home)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative path is ignored
        home = os.path.expanduser("~")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, VERSION_CACHE)


def _executable_key() -> str | None:
    """What identifies the git executable that runs (plumbum's, resolved from PATH): its path and
    the size, mtime, inode and device of the file it names, so a git installed over it, or another
    one first on PATH, is a new key. None when it cannot be told (then git is asked)."""
    try:
        path = str(_git_command().executable)
        st = os.stat(path)
    except Exception:  # noqa: BLE001 - any doubt: ask git, as without a cache
        return None
    return f"{os.fsencode(path).hex()} {st.st_size} {st.st_mtime_ns} {st.st_ino} {st.st_dev}"


def _cached_version(key: str, cache: str) -> tuple[int, ...] | None:
    """The version the cache holds for `key`, when at the floor or newer (else None: ask git).
    Anything unreadable or malformed counts as no entry."""
    try:
        with open(cache, encoding="ascii") as fh:
            lines = fh.read(64 * 1024).splitlines()
    except (OSError, ValueError):
        return None
    for line in lines:
        entry, _, text = line.rpartition(" ")
        if entry == key:
            version = parse_version(f"git version {text}")
            return version if len(version) >= 2 and version[:2] >= MIN_VERSION else None
    return None


def _store_version(key: str, version: tuple[int, ...], cache: str) -> None:
    """Record `version` for `key`, written atomically (a temporary file renamed over the cache);
    any error leaves the cache as it was (the next process asks git again)."""
    try:
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        try:
            with open(cache, encoding="ascii") as fh:
                others = [line for line in fh.read(64 * 1024).splitlines()
                          if line.count(" ") == 5 and not line.startswith(key + " ")]
        except (OSError, ValueError):
            others = []
        lines = [f"{key} {'.'.join(map(str, version))}", *others[:_VERSION_CACHE_ENTRIES - 1]]
        fd, tmp = tempfile.mkstemp(prefix=".git-version-", dir=os.path.dirname(cache))
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write("".join(f"{line}\n" for line in lines))
            os.replace(tmp, cache)
        except BaseException:
            os.unlink(tmp)
            raise
    except (OSError, ValueError):
        pass


def _check_version(cwd: str | None, env: dict[str, str] | None) -> None:
    """Once per process: stop with a clear fatal when git is older than the floor.

    The answer of `git version` is cached per executable (`_executable_key`: os.stat costs
    microseconds, the call milliseconds) under `${XDG_CACHE_HOME:-~/.cache}/git-agents/`; only a
    version at the floor or newer is cached, so an older git is asked, and refused, every time.
    A wrapper script in place of git is cached as the script it is: replacing the git it runs
    by an older one is not noticed until the script itself changes."""
    global _VERSION_CHECKED
    _VERSION_CHECKED = True
    key = _executable_key()
    cache = _version_cache_path() if key is not None else None
    if key is not None and cache is not None and _cached_version(key, cache) is not None:
        return  # no git call: no trace line and no call hook either
    for hook in CALL_HOOKS:  # the version call counts as a git call like any other (trace, hooks)
        hook(["version"])
    start = time.perf_counter()
    try:
        code, out, _ = _run_git(["version"], cwd if cwd and os.path.isdir(cwd) else None, env, None)
    except OSError:
        return  # git missing: the real call reports it
    _trace(["version"], cwd, time.perf_counter() - start, code)
    version = parse_version(decode(out))
    if code == 0 and len(version) >= 2 and version[:2] >= MIN_VERSION and key is not None and cache is not None:
        _store_version(key, version, cache)
    if code == 0 and version and version[:2] < MIN_VERSION:
        have = ".".join(map(str, version))
        need = ".".join(map(str, MIN_VERSION))
        raise AgentError(f"git-agents needs git {need} or later; this is git {have}",
                         hint=f"install git {need} or newer (https://git-scm.com/downloads), or put one first on PATH")


#: git commands that may talk to a remote, and how long one may take before it is given up. They
#: run with GIT_TERMINAL_PROMPT=0 (git asks no username or password) and, having a timeout, in a
#: session of their own, without a controlling terminal: ssh cannot prompt for a password, a
#: passphrase or a host key either, and fails at once instead. Credential helpers, ssh keys and
#: agents, and askpass programs the user set up still answer as they do for git.
NETWORK_VERBS = frozenset({"fetch", "push", "ls-remote", "clone", "pull"})
NETWORK_TIMEOUT = 600.0


@dataclass(frozen=True)
class Result:
    """What one git call returned: `raw` is stdout's exact bytes, `out` the same decoded (see `decode`)."""

    code: int
    raw: bytes
    err: str

    @property
    def out(self) -> str:
        """stdout as str, undecodable bytes kept as surrogates."""
        return decode(self.raw)


class Git:
    """Runs git in one directory (`cwd`, default: the current one)."""

    def __init__(self, cwd: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> None:
        self.cwd = os.fspath(cwd) if cwd is not None else None
        self.env = dict(env) if env else None

    def at(self, cwd: str | os.PathLike[str]) -> Git:
        """The same gateway, running in another directory."""
        return Git(cwd, self.env)

    def run(self, *args: str, ok: Iterable[int] = (0,), input: str | bytes | None = None,
            env: Mapping[str, str] | None = None, c_locale: bool = False, timeout: float | None = None) -> Result:
        """Run `git <args>`; raise GitError unless the exit status is in `ok`, or when it runs longer
        than `timeout` seconds (killed, exit status -1).

        `c_locale=True` runs git with LC_ALL=C: use it for any call whose stderr is read (git
        translates its messages). A call that talks to a remote never waits for a password and gives
        up after NETWORK_TIMEOUT seconds unless `timeout` says otherwise (see NETWORK_VERBS)."""
        argv = [str(a) for a in args]
        extra = {**(self.env or {}), **(env or {})}
        if argv and argv[0] in NETWORK_VERBS:
            extra = {"GIT_TERMINAL_PROMPT": "0", **extra}
            timeout = NETWORK_TIMEOUT if timeout is None else timeout
        if not _VERSION_CHECKED:
            _check_version(self.cwd, extra)
        for hook in CALL_HOOKS:
            hook(argv)
        if c_locale:
            extra["LC_ALL"] = "C"
        data = encode(input) if isinstance(input, str) else input
        start = time.perf_counter()
        try:
            code, raw, err_bytes = _run_git(argv, self.cwd, extra, data, timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:  # git itself missing, cwd gone, or too slow
            _trace(argv, self.cwd, time.perf_counter() - start, -1)
            why = f"timed out after {timeout:g} s" if isinstance(exc, subprocess.TimeoutExpired) else str(exc)
            raise GitError(["git", *argv], -1, "", why) from exc
        _trace(argv, self.cwd, time.perf_counter() - start, code)
        err = err_bytes.decode("utf-8", "replace")  # messages for people: never a path we act on
        if code not in tuple(ok):
            raise GitError(["git", *argv], code, decode(raw), err)
        return Result(code, raw, err)

    def _begin(self, args: Iterable[str]) -> list[str]:
        """The argv of a call about to start, after the once-per-process version check and the call hooks."""
        argv = [str(a) for a in args]
        if not _VERSION_CHECKED:
            _check_version(self.cwd, self.env)
        for hook in CALL_HOOKS:
            hook(argv)
        return argv

    @contextmanager
    def session(self, *args: str) -> Iterator[Callable[[bytes], bytes]]:
        """Run `git <args>` as one process for many requests, for a command that answers each line
        of its standard input with one line of output (`hash-object --stdin-paths`): yields
        `ask(line) -> answer`, both without the newline. GitError when git fails or answers
        nothing; traced as one call, from start to end."""
        argv = self._begin(args)
        start = time.perf_counter()
        proc: subprocess.Popen[bytes] = _git_command()[argv].popen(
            cwd=self.cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, **(self.env or {})})
        stdin, stdout = proc.stdin, proc.stdout
        assert stdin is not None and stdout is not None

        def end() -> GitError | None:
            _, err = proc.communicate()
            _trace(argv, self.cwd, time.perf_counter() - start, proc.returncode)
            return GitError(["git", *argv], proc.returncode, "", err.decode("utf-8", "replace")) \
                if proc.returncode else None

        def ask(line: bytes) -> bytes:
            try:
                stdin.write(line + b"\n")
                stdin.flush()
            except BrokenPipeError:
                pass  # git has ended: its answer is missing, below
            answer = stdout.readline()
            if not answer.endswith(b"\n"):
                proc.kill()
                raise end() or GitError(["git", *argv], -1, "", "no answer")
            return answer[:-1]
        try:
            yield ask
        finally:
            if proc.returncode is None:
                error = end()
                if error is not None and sys.exc_info()[0] is None:
                    raise error

    def __call__(self, *args: str, input: str | None = None) -> str:
        """Run git and return its stdout with the trailing newline removed."""
        return self.run(*args, input=input).out.rstrip("\n")

    def z(self, *args: str, ok: Iterable[int] = (0,), input: str | bytes | None = None) -> list[str]:
        """Run git with NUL-separated output (pass `-z` in `args`) and return its fields, empty ones left out;
        each path is exact (see `decode`)."""
        return [decode(f) for f in self.run(*args, ok=ok, input=input).raw.split(b"\0") if f]

    def has_ref(self, ref: str) -> bool:
        """Whether the full ref name `ref` (a branch's, refs/agents/...) exists."""
        return self.ok("show-ref", "--verify", "--quiet", ref)

    def has_branch(self, name: str) -> bool:
        """Whether the branch `name` exists."""
        return self.has_ref(branch_ref(name))

    def rev_parse(self, rev: str) -> Oid | None:
        """The object id `rev` names (`rev-parse --verify`), or None when it names nothing."""
        return Oid(self.run("rev-parse", "--verify", "--quiet", rev, ok=(0, 1)).out.strip()) or None

    def tips(self, names: Iterable[str] | None = None) -> dict[str, Oid]:
        """Branch name -> commit of the branches `names` (None: every branch), in one for-each-ref."""
        patterns = [HEADS] if names is None else sorted(branch_ref(n) for n in names)
        lines = self.run("for-each-ref", "--format=%(objectname) %(refname)", *patterns).out.splitlines()
        return {branch_name(ref): Oid(sha) for sha, _, ref in (line.partition(" ") for line in lines)}

    def update_ref(self, ref: str, new: str, old: str, *, reason: str | None = None,
                   ok: Iterable[int] = (0,)) -> Result:
        """Move `ref` to `new` only if it is at `old` now ("": only if it does not exist yet), atomically."""
        return self.run("update-ref", *(["-m", reason] if reason is not None else []), ref, new, old, ok=ok)

    def head_branch(self) -> BranchName | None:
        """The branch HEAD is on here, or None when HEAD is detached."""
        ref = self.run("symbolic-ref", "--quiet", "HEAD", ok=(0, 1)).out.strip()
        return branch_name(ref) if is_branch_ref(ref) else None

    def merge_in_progress(self) -> bool:
        """Whether a merge is in progress in this worktree (it has a MERGE_HEAD)."""
        return os.path.exists(os.path.join(self.cwd or "", self("rev-parse", "--git-path", "MERGE_HEAD")))

    def write_blobs(self, contents: Iterable[str | bytes]) -> list[Oid]:
        """Write each of `contents` as a blob (exactly: no filters), in order, with one git process
        (`hash-object -w --stdin-paths` over temporary files) however many there are."""
        data = [encode(c) if isinstance(c, str) else c for c in contents]
        if not data:
            return []
        with tempfile.TemporaryDirectory(prefix="git-agents-blobs-") as tmp:
            paths = [os.path.join(tmp, str(n)) for n in range(len(data))]
            for path, body in zip(paths, data):
                with open(path, "wb") as fh:
                    fh.write(body)
            oids = self.run("hash-object", "-w", "--no-filters", "--stdin-paths",
                            input="".join(f"{p}\n" for p in paths)).out.split()
        if len(oids) != len(data):
            raise GitError(["git", "hash-object", "-w", "--no-filters", "--stdin-paths"], 0, " ".join(oids),
                           f"{len(oids)} object ids for {len(data)} blobs")
        return [Oid(o) for o in oids]

    def read_objects(self, oids: Iterable[str]) -> list[bytes | None]:
        """The exact content of each object, in order, from one `cat-file --batch` (None: missing)."""
        wanted = list(oids)
        if not wanted:
            return []
        raw = self.run("cat-file", "--batch", input="".join(f"{o}\n" for o in wanted)).raw
        found: list[bytes | None] = []
        pos = 0
        for _ in wanted:
            end = raw.index(b"\n", pos)
            header = raw[pos:end].split()  # "<oid> <type> <size>", or "<name> missing": no content then
            size = int(header[2]) if len(header) == 3 else -1
            found.append(raw[end + 1:end + 1 + size] if size >= 0 else None)
            pos = end + 1 + (size + 1 if size >= 0 else 0)  # the content and the newline after it
        return found

    def ok(self, *args: str) -> bool:
        """Run git and say whether it exited 0 (for questions such as `merge-base --is-ancestor`)."""
        return self.run(*args, ok=range(0, 256)).code == 0

    def passthrough(self, *args: str, env: Mapping[str, str] | None = None, stdout_to_stderr: bool = False) -> int:
        """Run git with this process's terminal (stdin, stdout, stderr, so git's own pager and
        colour rules apply) and return its exit status: for commands that show git's output as is.

        `stdout_to_stderr`: its standard output goes to our stderr (as git sends its hooks' output)."""
        argv = self._begin(args)
        start = time.perf_counter()
        full_env = {**os.environ, **(self.env or {}), **(env or {})}
        try:
            if stdout_to_stderr:
                sys.stdout.flush()
            code = subprocess.run(["git", *argv], cwd=self.cwd, env=full_env, check=False,
                                  stdout=sys.stderr.fileno() if stdout_to_stderr else None).returncode
        except OSError as exc:
            raise GitError(["git", *argv], -1, "", str(exc)) from exc
        _trace(argv, self.cwd, time.perf_counter() - start, code)
        return code


def _given(env: Mapping[str, str], config: Mapping[str, list[str]], role: str, what: str) -> bool:
    """Whether git takes the `what` (NAME, EMAIL) of `role` (AUTHOR, COMMITTER) from the environment or
    the configuration, as given, non-empty: then `git var` cannot refuse it (see idents)."""
    if f"GIT_{role}_{what}" in env:
        return bool(env[f"GIT_{role}_{what}"])
    for key in (f"{role.lower()}.{what.lower()}", f"user.{what.lower()}"):
        if config.get(key):
            return bool(config[key][-1])
    return False


def idents(git: Git, config: Mapping[str, list[str]]) -> tuple[str, str]:
    """(author, committer) as `git commit-tree` would record them now: `Name <email> <time> <zone>`.

    One `git var -l` when every name and email is given (environment or configuration; `config`
    is the repository's, as read by Repo.config): it prints both idents after the configuration,
    formatted by the same code as `git var GIT_AUTHOR_IDENT`, which differs only in refusing an
    identity it would have to guess (no user.email, user.useConfigOnly, an empty name). Otherwise
    one strict `git var` each, which refuses as commit-tree does (GitError with git's message).
    """
    env = {**os.environ, **(git.env or {})}
    if all(_given(env, config, role, what) for role in ("AUTHOR", "COMMITTER") for what in ("NAME", "EMAIL")):
        lines = git("var", "-l").split("\n")
        # The variables come last (GIT_EDITOR, GIT_PAGER, ... after the two idents): the last pair wins
        # over a configuration value that spans lines and happens to look like one.
        for n in range(len(lines) - 2, -1, -1):
            committer, author = lines[n], lines[n + 1]
            if committer.startswith("GIT_COMMITTER_IDENT=") and author.startswith("GIT_AUTHOR_IDENT="):
                return author.partition("=")[2], committer.partition("=")[2]
    return git("var", "GIT_AUTHOR_IDENT"), git("var", "GIT_COMMITTER_IDENT")


def redated(ident: str, variable: str) -> str:
    """`ident` (`Name <email> <time> <zone>`, read earlier by idents) as `git var` would give it now:
    the time and zone replaced with the present, unless the environment fixes them (`variable`,
    GIT_COMMITTER_DATE or GIT_AUTHOR_DATE, which git read into it; an empty one means now)."""
    if os.environ.get(variable):
        return ident
    now = time.time()
    offset = time.localtime(now).tm_gmtoff // 60  # what git's local_tzoffset gives, in minutes
    sign = "-" if offset < 0 else "+"
    return f"{ident.rsplit(' ', 2)[0]} {int(now)} {sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"
