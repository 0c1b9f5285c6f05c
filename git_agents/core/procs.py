"""Processes as /proc shows them: start stamps (to tell a reused pid apart) and command lines."""

from __future__ import annotations

import os
from collections.abc import Iterator


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the program name (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()


def process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (to tell a reused pid apart), or None if it is gone."""
    fields = stat_fields(pid)
    if fields is None:
        return None
    if fields and fields[0] in ("Z", "X"):
        return None  # a zombie has ended; nobody reaped it yet
    return fields[19] if len(fields) > 19 else None


def argvs() -> Iterator[tuple[int, list[bytes]]]:
    """(pid, argv) of every process whose command line can be read."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                yield int(name), fh.read().split(b"\0")
        except OSError:
            continue
