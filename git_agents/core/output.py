"""Terminal output: colour (through colorama, only when wanted) and aligned tables."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

_STATE_COLOURS = {
    "running": "YELLOW", "exited 0": "GREEN", "merged": "GREEN", "not started": "",
    "conflict": "RED", "failed": "RED", "died": "RED", "check-failed": "RED", "worktree missing": "RED",
    "free": "GREEN", "claimed": "YELLOW", "stale": "RED", "missing": "RED",  # pool slots
}


_OFF = ("false", "never", "no", "off", "0")


def use_colour(choice: str | None = None, stream=None, config: dict[str, list[str]] | None = None) -> bool:
    """Whether to colour output, as git decides: --color=always/never first, then NO_COLOR, then
    git config color.agent (else color.ui): false/never off, always on; else only on a terminal."""
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    if choice != "auto" and config:
        values = config.get("color.agent") or config.get("color.ui")
        setting = values[-1].strip().lower() if values else ""
        if setting in _OFF:
            return False
        if setting == "always":
            return True
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


def paint(text: str, colour: str, enabled: bool) -> str:
    """`text` in `colour` (a colorama Fore name) when enabled."""
    if not enabled or not colour:
        return text
    from colorama import (  # ~9 ms: only when colouring
        Fore,
        Style,
        just_fix_windows_console,
    )

    just_fix_windows_console()  # ANSI codes work on Windows consoles too (a no-op elsewhere)
    return f"{getattr(Fore, colour)}{text}{Style.RESET_ALL}"


def state_colour(state: str) -> str:
    """The colour of a task state word."""
    if state.startswith("exited ") and state != "exited 0":
        return "RED"
    for key, colour in _STATE_COLOURS.items():
        if state.startswith(key):
            return colour
    return ""


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, colour: bool = False,
          state_column: int | None = None) -> str:
    """Rows aligned in columns under bold headers (the last column is not padded)."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    head = "  ".join(h.ljust(widths[i]) if i < len(headers) - 1 else h for i, h in enumerate(headers))
    lines.append(paint(head.rstrip(), "WHITE", colour))
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            padded = cell.ljust(widths[i]) if i < len(row) - 1 else cell
            if i == state_column:
                padded = paint(padded, state_colour(cell), colour)
            cells.append(padded)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x09), *range(0x0b, 0x20), 0x7f, *range(0x80, 0xa0)]}


def printable(text: str) -> str:
    """`text` safe for a terminal: control characters (escape sequences, bells, carriage returns;
    all but tab and newline) shown as \\xNN, as git shows them in paths, so text from a task or a
    shared remote cannot move the cursor, clear the screen or retitle the terminal."""
    return text.translate(_CONTROL)
