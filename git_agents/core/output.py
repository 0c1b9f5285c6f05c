"""Terminal output: colour (through colorama, only when wanted) and aligned tables."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence

# C0 controls but tab and newline, DEL, and C1 controls: they move the cursor, clear the screen,
# set the window title (ESC ] ... BEL) or start such sequences on terminals that honour 8-bit C1.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_AND_NEWLINE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def _escape(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def printable(text: str, *, newlines: bool = True) -> str:
    """`text` safe to print on a terminal: each control character but tab (and, with `newlines`,
    line feed) becomes a visible `\\xNN` escape, so `\\e[2J` prints as `\\x1b[2J` instead of
    clearing the screen. For human-readable output only: JSON output stays exact.

    Text from tasks and the remote (titles, reasons, check output, paths) passes through this
    before it is printed; `newlines=False` for one-line fields such as a title in a table.
    """
    pattern = _CONTROL if newlines else _CONTROL_AND_NEWLINE
    return pattern.sub(_escape, text) if pattern.search(text) else text


_STATE_COLOURS = {
    "running": "YELLOW", "exited 0": "GREEN", "merged": "GREEN", "not started": "",
    "conflict": "RED", "failed": "RED", "died": "RED", "check-failed": "RED", "worktree missing": "RED",
    "invalid": "RED", "free": "GREEN", "claimed": "YELLOW", "stale": "RED", "missing": "RED",  # pool slots
}


_OFF = ("false", "never", "no", "off", "0")


def use_colour(choice: str | None = None, stream: object = None, config: dict[str, list[str]] | None = None) -> bool:
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
    from colorama import (  # type: ignore[import-untyped]  # ~9 ms: only when colouring
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
    # Cells may hold titles and other text from tasks or the remote: no control characters reach the terminal.
    rows = [[printable(str(cell), newlines=False) for cell in row] for row in rows]
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

