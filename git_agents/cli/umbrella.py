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
"""

DESCRIPTION = """\
git agent runs one of the git agent-<command> commands: `git agent spawn 48` is the same as
`git agent-spawn 48`. Without a command it lists the commands. `git agent completion bash`
prints the bash completion script, for `eval "$(git agent completion bash)"` in ~/.bashrc;
`git agent completion zsh` prints the zsh one, for `eval "$(git agent completion zsh)"` in
~/.zshrc after compinit.
"""

EXAMPLES = """\
git agent                                   # list the commands
git agent status                            # the same as git agent-status
eval "$(git agent completion bash)"         # in ~/.bashrc: complete git agent-* commands
"""


def listing() -> str:
    """The usage line and one line per command."""
    width = max(len(verb) for verb in COMMANDS)
    lines = ["usage: git agent <command> [<args>]", "", "These are the git agent commands:", ""]
    lines += [f"   {verb.ljust(width)}   {summary}" for verb, summary in COMMANDS.items()]
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


def entry() -> None:
    """Entry point of the umbrella command git-agent (`git agent <verb> ...`)."""
    sys.exit(main(sys.argv[1:]))
