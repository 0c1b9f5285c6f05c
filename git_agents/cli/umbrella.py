"""`git agent`: lists the commands, runs `git agent <verb> ...` as `git agent-<verb> ...`, and
prints the shell completion script (`git agent completion bash`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from git_agents.cli.dispatch import COMMANDS
from git_agents.cli.dispatch import main as run_command
from git_agents.core.errors import ExitCode

USAGE = """\
git agent <command> [<args>]
git agent completion (bash | zsh)
git agent hook (claude-worktree-create | claude-worktree-remove)
git agent hook install claude [--dry-run]
git agent mcp [--restricted]
"""

DESCRIPTION = """\
git agent runs one of the git agent-<command> commands: `git agent spawn 48` is the same as
`git agent-spawn 48`. Without a command it lists the commands. `git agent completion bash`
prints the bash completion script, for `eval "$(git agent completion bash)"` in ~/.bashrc;
`git agent completion zsh` prints the zsh one, for `eval "$(git agent completion zsh)"` in
~/.zshrc after compinit.

`git agent hook claude-worktree-create` and `claude-worktree-remove` are handlers for Claude
Code's WorktreeCreate and WorktreeRemove hooks: create reads the hook's JSON on stdin, records
a task for the worktree's name (taking a pool slot when a pool exists, else a new worktree as
git agent-spawn makes), makes it ready (copied and linked files, port block, agent.setup) and
prints only its path; remove removes that task as git agent-clean does, and refuses (exit 1,
the reason on stderr) when its work would be lost. `git agent hook install claude` adds both
to the repository's .claude/settings.local.json, keeping what is there; --dry-run shows the
change without writing it.

`git agent mcp` serves spawn, status, wait, merge (with dry_run), conflicts, diff, log and clean
as MCP tools over stdio (the MCP Python SDK, `pip install 'git-agents[mcp]'`), each returning
the command's exit code and JSON, for a lead agent that drives git-agents with typed calls.
Ids are only ever ids (passed after --). spawn's agent and merge's check run any shell command,
by design; with --restricted the server allows only presets (built-in or agent.preset.<name>)
as agents and no check but the configured agent.mergeCheck.
"""

EXAMPLES = """\
git agent                                   # list the commands
git agent status                            # the same as git agent-status
eval "$(git agent completion bash)"         # in ~/.bashrc: complete git agent-* commands
"""


def listing() -> str:
    """The usage line and one line per command."""
    width = max(len(verb) for verb in [*COMMANDS, "completion"])
    lines = ["usage: git agent <command> [<args>]", "", "These are the git agent commands:", ""]
    lines += [f"   {verb.ljust(width)}   {summary}" for verb, summary in COMMANDS.items()]
    lines += ["", f"   {'completion'.ljust(width)}   Print the shell completion script "
                  '(eval "$(git agent completion bash)")',
              f"   {'hook'.ljust(width)}   Claude Code's worktree hooks (git agent hook install claude)",
              f"   {'mcp'.ljust(width)}   Serve the commands as MCP tools over stdio, for a lead agent"]
    lines += ["", "'git agent <command> -h' prints a command's options; 'git help agent-<command>' its manual.",
              "'man git-agents' explains the concepts, configuration and exit codes."]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> int:
    """Run the umbrella command; return its exit code."""
    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(listing())
        return ExitCode.OK
    verb, rest = argv[0], argv[1:]
    if verb == "completion":
        return _completion(rest)
    if verb == "hook":
        return _hook(rest)
    if verb == "mcp":
        from git_agents.cli.mcp_server import main as serve

        return serve(rest)
    if verb not in COMMANDS:
        sys.stderr.write(f"error: '{verb}' is not a git agent command\n"
                         "hint: 'git agent' lists the commands\n")
        return ExitCode.USAGE
    return run_command(verb, rest)


def _completion(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("bash", "zsh"):
        sys.stderr.write("usage: git agent completion (bash | zsh)\n")
        return ExitCode.USAGE
    from git_agents.cli.completion import bash_script
    from git_agents.cli.completion_zsh import zsh_script

    sys.stdout.write(bash_script() if argv[0] == "bash" else zsh_script())
    return ExitCode.OK


HOOK_USAGE = ("usage: git agent hook (claude-worktree-create | claude-worktree-remove)\n"
              "   or: git agent hook install claude [--dry-run]\n")


def _hook(argv: list[str]) -> int:
    """`git agent hook ...`: Claude Code's worktree hooks, and installing them."""
    from git_agents.cli.dispatch import report
    from git_agents.core.errors import AgentError

    if argv in (["claude-worktree-create"], ["claude-worktree-remove"]):
        from git_agents.lifecycle import hooks

        event = "WorktreeCreate" if argv[0].endswith("create") else "WorktreeRemove"
        try:
            payload = hooks.read_payload(sys.stdin.read(), event)
            if event == "WorktreeCreate":
                path = hooks.create_worktree(payload)
                sys.stdout.write(path + "\n")  # the hook contract: the path, alone, last
            else:
                task_id = hooks.remove_worktree(payload)
                sys.stderr.write(f"Removed task {task_id}\n")  # stdout stays empty
        except AgentError as error:
            report(error)
            return ExitCode.FAILED if event == "WorktreeRemove" else error.code
        return ExitCode.OK
    if argv[:2] == ["install", "claude"] and argv[2:] in ([], ["--dry-run"]):
        import difflib
        import os

        from git_agents.core.repo import Repo
        from git_agents.lifecycle import hooks

        try:
            repo = Repo.discover()
            path, old, new = hooks.install_claude(repo)
        except AgentError as error:
            report(error)
            return error.code
        if old == new:
            print(f"{path}: the hooks are already installed")
            return ExitCode.OK
        if argv[2:] == ["--dry-run"]:
            shown = os.path.relpath(path, repo.main_worktree)  # as git diff names it: a/.claude/...
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                                       f"a/{shown}", f"b/{shown}"))
            return ExitCode.OK
        hooks.save_claude(repo, path, new)
        print(f"Installed the WorktreeCreate and WorktreeRemove hooks in {path}")
        return ExitCode.OK
    sys.stderr.write(HOOK_USAGE)
    return ExitCode.USAGE


def entry() -> None:
    """Entry point of the umbrella command git-agent (`git agent <verb> ...`)."""
    sys.exit(main(sys.argv[1:]))
