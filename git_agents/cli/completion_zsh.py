"""The zsh completion script, generated from the commands' parsers like the bash one.

zsh's own `_git` completes `git agent-<command>` by calling a function `_git-agent-<command>`
when one exists; `compdef` makes the same functions complete `git-agent-<command>` typed
directly. Values complete by kind, as in bash (see completion.py), reading git directly.
"""

from __future__ import annotations

import argparse

from git_agents.cli.completion import value_kind
from git_agents.cli.dispatch import (
    COMMANDS,
    build_parser,
    documented_actions,
    load,
    subcommands,
)

HELPERS = r"""
__git_agent_zsh_tasks () {
	local -a ids expl
	ids=(${(u)${${(f)"$(git config --name-only --get-regexp '^agent-task\.' 2>/dev/null)"}#agent-task.}%.*})
	_wanted tasks expl 'task id' compadd -a ids
}

__git_agent_zsh_slots () {
	local -a slots expl
	slots=(${(f)"$(git for-each-ref --format='%(refname:strip=3)' refs/agents/pool/ 2>/dev/null)"}
		${${(M)${(f)"$(git worktree list --porcelain 2>/dev/null)"}:#worktree */pool-*}##*/})
	_wanted slots expl 'pool slot' compadd -a slots
}

__git_agent_zsh_branches () {
	local -a branches expl
	branches=(${(f)"$(git for-each-ref --format='%(refname:short)' refs/heads 2>/dev/null)"})
	_wanted branches expl 'branch' compadd -a branches
}

__git_agent_zsh_refs () {
	local -a refs expl
	refs=(${(f)"$(git for-each-ref --format='%(refname:short)' refs/heads refs/tags 2>/dev/null)"})
	_wanted refs expl 'ref' compadd -a refs
}
"""


def _quote(text: str) -> str:
    """A single-quoted shell word."""
    return "'" + text.replace("'", "'\\''") + "'"


def _describe(text: str) -> str:
    """Help text as an _arguments description (inside [...])."""
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]").replace(":", "\\:")


def _action(kind: str) -> str:
    if kind.startswith("words:"):
        return "(" + " ".join(kind[len("words:"):].split(",")) + ")"
    return {"task": "__git_agent_zsh_tasks", "slot": "__git_agent_zsh_slots", "ref": "__git_agent_zsh_refs",
            "branch": "__git_agent_zsh_branches",
            "file": "_files"}.get(kind, " ")


def _message(action: argparse.Action) -> str:
    name = action.metavar if isinstance(action.metavar, str) else action.dest
    return _describe((name or action.dest).strip("<>")) or "value"


def specs(parser: argparse.ArgumentParser, *, with_help: bool = True) -> list[str]:
    """The _arguments specs of one parser's options and positional arguments."""
    out = [_quote("-h[print a short usage summary]")] if with_help else []
    for action in documented_actions(parser):
        text = _describe(action.help or "")
        for flag in action.option_strings:
            if action.nargs == 0:
                out.append(_quote(f"{flag}[{text}]"))
            elif action.nargs == "?":  # --color[=<when>]: the value only after '='
                out.append(_quote(f"{flag}=-[{text}]::{_message(action)}:{_action(value_kind(action))}"))
            else:
                sep = "=" if flag.startswith("--") else "+"
                out.append(_quote(f"{flag}{sep}[{text}]:{_message(action)}:{_action(value_kind(action))}"))
    position = 1
    for action in parser._actions:
        if action.option_strings or isinstance(action, argparse._SubParsersAction):
            continue
        where = "*" if action.nargs in ("*", "+", argparse.REMAINDER) else str(position)
        out.append(_quote(f"{where}:{_message(action)}:{_action(value_kind(action))}"))
        if where == "*":
            break
        position += 1
    return out


def _arguments(spec_list: list[str], indent: str) -> str:
    return f"_arguments -S \\\n{indent}\t" + f" \\\n{indent}\t".join(spec_list)


def function(verb: str, parser: argparse.ArgumentParser) -> str:
    """`_git-agent-<verb>`."""
    name = f"_git-agent-{verb}"
    subs = subcommands(parser)
    if not subs:
        return f"{name} () {{\n\t{_arguments(specs(parser), chr(9))}\n}}\n"
    described = " ".join(_quote(f"{n}:{_describe(p.description or '')}") for n, p in subs.items())
    lines = [f"{name} () {{", "\tlocal curcontext=$curcontext state line ret=1",
             f"\t{_arguments([*specs(parser), _quote(': :->command'), _quote('*:: :->args')], chr(9))} && ret=0",
             "\tcase $state in",
             f"\tcommand) local -a commands; commands=({described}); "
             "_describe -t commands command commands && ret=0 ;;",
             "\targs)", "\t\tcase $words[1] in"]
    for sub_name, sub in subs.items():
        lines.append(f"\t\t{sub_name}) {_arguments(specs(sub, with_help=False), chr(9) * 2)} && ret=0 ;;")
    lines += ["\t\tesac ;;", "\tesac", "\treturn ret", "}", ""]
    return "\n".join(lines)


def umbrella_function() -> str:
    """`_git-agent`: the command names, then the command's own completion."""
    described = " ".join(_quote(f"{verb}:{_describe(summary)}") for verb, summary in COMMANDS.items())
    return f"""_git-agent () {{
	local curcontext=$curcontext state line ret=1
	_arguments -C ': :->command' '*:: :->args' && ret=0
	case $state in
	command)
		local -a commands
		commands=({described} 'completion:print the shell completion script')
		_describe -t commands 'git agent command' commands && ret=0 ;;
	args)
		if [[ $words[1] == completion ]]; then
			_values shell bash zsh && ret=0
		elif (( $+functions[_git-agent-$words[1]] )); then
			_git-agent-$words[1] && ret=0
		fi ;;
	esac
	return ret
}}
"""


def zsh_script() -> str:
    """The whole zsh script: helpers, one function per command, and the compdef lines."""
    parts = ["# zsh completion for git-agents: git agent and git agent-<command>.\n"
             "# Generated by `python -m git_agents.cli.manpage` from the commands' parsers: do not edit.\n"
             "# In ~/.zshrc, after compinit: eval \"$(git agent completion zsh)\"\n", HELPERS]
    parts += [function(verb, build_parser(verb, load(verb))) for verb in COMMANDS]
    parts.append(umbrella_function())
    names = " ".join(f"git-agent-{verb}" for verb in COMMANDS)
    parts.append("if (( $+functions[compdef] )); then\n\tcompdef _git-agent git-agent\n"
                 f"\tfor __git_agent_cmd in {names}; do compdef _$__git_agent_cmd $__git_agent_cmd; done\n"
                 "\tunset __git_agent_cmd\nfi\n")
    return "\n".join(parts)
