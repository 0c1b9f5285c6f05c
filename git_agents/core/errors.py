"""The one exception type every command raises for user-facing failures, and the exit codes."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Exit codes shared by every command (git's own conventions where git has one)."""

    OK = 0
    FAILED = 1  # some tasks failed (a conflict, an agent that exited non-zero, a timeout)
    FATAL = 128  # git-style fatal error: nothing was done
    USAGE = 129  # bad options or arguments, as git exits for usage errors
    INTERRUPTED = 130


# What each exit code means, for git-agents(7).
EXIT_CODES: dict[ExitCode, str] = {
    ExitCode.OK: "Success.",
    ExitCode.FAILED: "Some tasks failed: a merge conflict, an agent that exited non-zero or died, "
                     "a timeout, or a task kept back to protect unsaved work.",
    ExitCode.FATAL: "Fatal error (printed as fatal: ...); nothing was changed.",
    ExitCode.USAGE: "Bad options or arguments; the short usage is printed on standard error.",
    ExitCode.INTERRUPTED: "Interrupted (Ctrl-C).",
}


class AgentError(Exception):
    """A failure to report to the user as `fatal: <message>` plus an optional `hint:` line."""

    def __init__(self, message: str, *, hint: str | None = None, code: int = ExitCode.FATAL) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = int(code)


class UsageError(AgentError):
    """Bad command-line usage: printed with the short usage, exit 129."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint, code=ExitCode.USAGE)


class GitError(AgentError):
    """A git command failed; carries the command line, exit status and output."""

    def __init__(self, argv: list[str], retcode: int, stdout: str, stderr: str) -> None:
        detail = stderr.strip() or stdout.strip() or f"exit status {retcode}"
        # git's own message already starts with fatal:/error:; keep only its text.
        for prefix in ("fatal: ", "error: "):
            if detail.startswith(prefix):
                detail = detail[len(prefix):]
        super().__init__(f"{detail}\n(while running: {' '.join(argv)})")
        self.argv = argv
        self.retcode = retcode
        self.stdout = stdout
        self.stderr = stderr
