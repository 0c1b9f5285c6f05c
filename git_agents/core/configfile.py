"""Editing one git config file in one step, without a git process, as `git config --file` would.

`git config` writes one key per process: recording a task took about ten of them, and a kill
between two left half a record. `edit_config_file` applies any number of sets, unsets and
section removals at once, following git's own lock protocol so that it never races a
`git config` run beside it: take `<file>.lock` with O_CREAT|O_EXCL (git fails at once when it
exists; we wait up to 10 s for it to go), write the whole new file into the lock, fsync it,
give it the old file's mode, and rename it over the file. Readers (git included) see the old
file or the new one, never a mixture. Callers hold the repository lock (core.lock) as well, so
git-agents writers queue instead of failing.

The file is handled as bytes: every line not edited is kept exactly (comments, includes,
other sections, odd spacing); values are written with git's quoting, so `git config` reads
back exactly what was set (newlines, tabs, quotes, bytes that are not UTF-8 through
surrogateescape).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from git_agents.core.errors import AgentError

LOCK_WAIT = 10.0  # seconds to wait for a config.lock held by another program

_HEADER = re.compile(rb'^\s*\[\s*([A-Za-z0-9.-]+)(?:\s+"((?:[^"\\\n]|\\.)*)")?\s*\]')
_KEY = re.compile(rb"^\s*([A-Za-z][A-Za-z0-9-]*)\s*(?:=|$|[;#])")


def _split_key(key: str) -> tuple[str, str | None, str]:
    """`section.sub.name` -> (section lower-cased, sub or None, name lower-cased)."""
    section, _, rest = key.partition(".")
    if "." in rest:
        sub, _, name = rest.rpartition(".")
        return section.lower(), sub, name.lower()
    return section.lower(), None, rest.lower()


def _unescape_sub(raw: bytes) -> str:
    return re.sub(rb"\\(.)", rb"\1", raw).decode("utf-8", "surrogateescape")


def _quote_value(value: str) -> bytes:
    """A value as git writes it: quoted when it has edge spaces or comment characters; escapes inside."""
    raw = value.encode("utf-8", "surrogateescape")
    body = (raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"').replace(b"\n", b"\\n")
            .replace(b"\t", b"\\t").replace(b"\b", b"\\b"))
    if raw != raw.strip() or b";" in raw or b"#" in raw:
        return b'"' + body + b'"'
    return body


def _quote_sub(sub: str) -> bytes:
    return sub.encode("utf-8", "surrogateescape").replace(b"\\", b"\\\\").replace(b'"', b'\\"')


def _header(section: str, sub: str | None) -> bytes:
    return b"[" + section.encode() + (b' "' + _quote_sub(sub) + b'"' if sub is not None else b"") + b"]\n"


def _logical_lines(data: bytes) -> list[bytes]:
    """The file's lines, a value continued with a trailing backslash kept with its continuation."""
    lines = data.splitlines(keepends=True)
    out: list[bytes] = []
    for line in lines:
        if out and _continues(out[-1]):
            out[-1] += line
        else:
            out.append(line)
    return out


def _continues(line: bytes) -> bool:
    body = line.rstrip(b"\r\n")
    if body == line:  # no newline: the last line
        return False
    trailing = len(body) - len(body.rstrip(b"\\"))
    return trailing % 2 == 1


def _parse(data: bytes) -> list[tuple[tuple[str, str | None] | None, str | None, bytes]]:
    """Each logical line with the section it is in and, for a key line, its (lower-cased) name."""
    result: list[tuple[tuple[str, str | None] | None, str | None, bytes]] = []
    section: tuple[str, str | None] | None = None
    for line in _logical_lines(data):
        header = _HEADER.match(line)
        if header:
            name = header.group(1).decode().lower()
            sub = _unescape_sub(header.group(2)) if header.group(2) is not None else None
            if sub is None and "." in name:  # the old [section.sub] form: sub lower-cased
                name, _, sub = name.partition(".")
            section = (name, sub)
            result.append((section, None, line))
            continue
        key = _KEY.match(line)
        result.append((section, key.group(1).decode().lower() if key else None, line))
    return result


def has_subsection(path: str, section: str, sub: str) -> bool:
    """Whether the file has any key in `[section "sub"]`."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return False
    wanted = (section.lower(), sub)
    return any(where == wanted and name is not None for where, name, _ in _parse(data))


def without_sections(data: bytes, names: Iterable[str], keys: Iterable[str] = ()) -> bytes:
    """The file's contents with every section of these names (all their subsections) and these
    `section.name` keys left out."""
    drop = {n.lower() for n in names}
    drop_keys = {tuple(k.lower().split(".", 1)) for k in keys}
    return b"".join(line for where, name, line in _parse(data)
                    if where is None or (where[0] not in drop and (where[0], name) not in drop_keys))


def apply_edits(data: bytes, values: Mapping[str, str | None],
                remove_sections: Iterable[tuple[str, str | None]] = ()) -> bytes:
    """The file's new contents: keys set (replacing every old value) or, for None, unset; sections removed."""
    lines = _parse(data)
    drop_sections = {(s.lower(), sub) for s, sub in remove_sections}
    edits: dict[tuple[str, str | None, str], str | None] = {}
    spelled: dict[tuple[str, str | None, str], str] = {}  # the name as the caller wrote it, as git keeps it
    for key, value in values.items():
        section, sub, lower = _split_key(key)
        edits[(section, sub, lower)] = value
        spelled[(section, sub, lower)] = key.rpartition(".")[2]
    kept: list[tuple[tuple[str, str | None] | None, str | None, bytes]] = []
    for where, name, line in lines:
        if where in drop_sections:
            continue
        if where is not None and name is not None and (where[0], where[1], name) in edits:
            continue  # replaced below (or unset)
        kept.append((where, name, line))
    # New values go at the end of the last section of their name, else into a new section at the end.
    out = [line for _, _, line in kept]
    if out and not out[-1].endswith(b"\n"):
        out[-1] += b"\n"
    last_index: dict[tuple[str, str | None], int] = {}
    for i, (where, _, _) in enumerate(kept):
        if where is not None:
            last_index[where] = i
    inserts: dict[int, list[bytes]] = {}
    appended: dict[tuple[str, str | None], list[bytes]] = {}
    for (section, sub, name), value in edits.items():
        if value is None:
            continue
        line = b"\t" + spelled[(section, sub, name)].encode() + b" = " + _quote_value(value) + b"\n"
        where = (section, sub)
        if where in last_index:
            inserts.setdefault(last_index[where], []).append(line)
        else:
            appended.setdefault(where, []).append(line)
    result: list[bytes] = []
    for i, line in enumerate(out):
        result.append(line)
        result.extend(inserts.get(i, []))
    for (section, sub), new_lines in appended.items():
        result.append(_header(section, sub))
        result.extend(new_lines)
    return b"".join(result)


def _joined(section: str, sub: str | None, name: str) -> str:
    return f"{section}.{sub}.{name}" if sub is not None else f"{section}.{name}"


def config_after_edit(config: Mapping[str, list[str]], before: bytes, values: Mapping[str, str | None],
                      remove_sections: Iterable[tuple[str, str | None]] = ()) -> dict[str, list[str]] | None:
    """`config` (all of git's configuration, parsed: key -> values, as core.repo reads it) as it is after
    `apply_edits(before, values, remove_sections)` of a config file that held `before` when `config`
    was read. None when that cannot be told without asking git again: an edited key also has
    values from another file (the global config, an included file, config.worktree, `-c`)."""
    in_file: dict[str, int] = {}
    for where, name, _ in _parse(before):
        if where is not None and name is not None:
            key = _joined(where[0], where[1], name)
            in_file[key] = in_file.get(key, 0) + 1
    new = dict(config)
    dropped = {(section.lower(), sub) for section, sub in remove_sections}
    for key in list(new) if dropped else []:
        section, sub, _ = _split_key(key)
        if (section, sub) in dropped:
            if len(new[key]) != in_file.get(key, 0):
                return None
            del new[key]
    for key, value in values.items():
        joined = _joined(*_split_key(key))
        if len(new.get(joined, [])) != in_file.get(joined, 0):
            return None
        if value is None:
            new.pop(joined, None)
        else:
            new[joined] = [value]
    return new


#: Called with the keys of every write before it starts. Empty in production; the test suite
#: registers its crash hook here too (tests/hooks/sitecustomize.py), to kill a command at the
#: moment it would record a given key, now that records are written without a git call.
WRITE_HOOKS: list[Callable[[list[str]], None]] = []


def edit_config_file(path: str, values: Mapping[str, str | None],
                     remove_sections: Iterable[tuple[str, str | None]] = ()) -> tuple[bytes, bytes]:
    """Apply `apply_edits` to the config file at `path` in one atomic step (git's config.lock protocol);
    return the file's contents before and after (for `config_after_edit`)."""
    for hook in WRITE_HOOKS:
        hook(list(values))
    with WRITING:
        return _edit_config_file(path, values, remove_sections)


#: Held while a thread of this process writes a config file (spawn's threads do); the test suite's
#: crash hook takes it, so that a kill at one thread's git call falls between two writes.
WRITING = threading.Lock()


def _edit_config_file(path: str, values: Mapping[str, str | None],
                      remove_sections: Iterable[tuple[str, str | None]]) -> tuple[bytes, bytes]:
    lock = path + ".lock"
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            # Every git-agents writer holds our own lock here, so a config.lock that stays this
            # long was left by a git process that was killed, or is held by another program.
            if time.monotonic() > deadline:
                raise AgentError(f"could not lock {path}: {lock} has existed for over {LOCK_WAIT:.0f} seconds",
                                 hint=f"if no other git process is running, remove {lock}") from None
            time.sleep(0.01)
    try:
        try:
            with open(path, "rb") as fh:
                data = fh.read()
                mode: int | None = os.fstat(fh.fileno()).st_mode & 0o7777
        except FileNotFoundError:
            data, mode = b"", None
        new = apply_edits(data, values, remove_sections)
        view = memoryview(new)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if mode is not None:
            os.fchmod(fd, mode)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.rename(lock, path)
        return data, new
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(lock)
        except FileNotFoundError:
            pass
        raise
