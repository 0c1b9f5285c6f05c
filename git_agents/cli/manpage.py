"""Man pages, the completion script and the README's configuration table, generated from one source.

    python -m git_agents.cli.manpage            # rewrite man/, completion/ and the README table
    python -m git_agents.cli.manpage --check    # exit 1 if any of them is out of date

Each `git-agent-<verb>(1)` comes from the command's parser (options and their help) and its
module's USAGE, DESCRIPTION and EXAMPLES; `git-agents(7)` from `cli.COMMANDS`,
`settings.SETTINGS`, `errors.EXIT_CODES` and the text below. The tests regenerate everything
and fail when a committed file differs, so documentation cannot drift from the code.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterable
from types import ModuleType

from git_agents import __version__
from git_agents.cli.dispatch import (
    COMMANDS,
    build_parser,
    documented_actions,
    load,
    option_label,
    subcommands,
    usage_lines,
)
from git_agents.core.errors import EXIT_CODES
from git_agents.core.settings import SETTINGS
from git_agents.tasks.notes import NOTE_FIELDS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANUAL = "Git Agents Manual"

# -- roff ------------------------------------------------------------------------------------


def esc(text: str) -> str:
    """Text escaped for roff: backslashes, hyphens (so options copy and paste), leading dots."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in text.split("\n"))


def _inline(text: str) -> str:
    """Escaped prose where `code` spans become bold."""
    return re.sub(r"`([^`]+)`", lambda m: f"\\fB{m.group(1)}\\fR", esc(text))


def paragraphs(text: str) -> list[str]:
    """Prose: paragraphs separated by blank lines; lines starting with "- " become bullets."""
    out: list[str] = []
    for para in re.split(r"\n\s*\n", text.strip()):
        if para.lstrip().startswith("- "):
            for item in re.split(r"\n(?=\s*- )", para.strip()):
                body = " ".join(line.strip() for line in item.strip()[2:].splitlines())
                out += [".IP \\(bu 2", _inline(body)]
        else:
            out += [".PP", _inline(" ".join(line.strip() for line in para.splitlines()))]
    return out


def verbatim(text: str) -> list[str]:
    """An indented block printed as is (examples)."""
    return [".PP", ".RS 4", ".nf", esc(text.strip("\n")), ".fi", ".RE"]


def header(name: str, section: int, summary: str) -> list[str]:
    """.TH and NAME (no date, so regenerating changes nothing)."""
    return [f'.TH "{esc(name.upper())}" "{section}" "" "git\\-agents {esc(__version__)}" "{MANUAL}"',
            ".nh", ".ad l", ".SH NAME", f"{esc(name)} \\- {esc(summary)}"]


def synopsis(usage: str) -> list[str]:
    """SYNOPSIS written as git does: `'git agent-spawn' [<options>] <id>...`."""
    lines = [".SH SYNOPSIS", ".nf"]
    for line in usage_lines(usage):
        words = line.split(" ", 2)
        count = 2 if words[0] == "git" else 1
        command, rest = " ".join(words[:count]), " ".join(words[count:])
        lines.append(f"\\fI{esc(command)}\\fR {esc(rest)}".rstrip())
    return lines + [".fi"]


def option_entries(parser: argparse.ArgumentParser, *, subcommand: bool = False) -> list[str]:
    """One .TP entry per option, from the parser (for a subcommand: without -h and --color,
    which the command's own OPTIONS describe)."""
    out = [] if subcommand else [".TP", "\\fB\\-h\\fR", "Print a short usage summary on standard output and exit."]
    for action in documented_actions(parser):
        if subcommand and action.default is argparse.SUPPRESS:
            continue
        label = option_label(action)
        names, _, value = label.partition(" ") if "[=" not in label else (label, "", "")
        out += [".TP", f"\\fB{esc(names)}\\fR" + (f" \\fI{esc(value)}\\fR" if value else "")]
        out.append(_inline(_sentence((action.help or "") % {"default": action.default})))
    return out


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")) if text else text


def see_also(current: str) -> list[str]:
    """Every other git-agents page and git-worktree(1)."""
    pages = ["git-agents(7)", "git-agent(1)"] + [f"git-agent-{v}(1)" for v in COMMANDS] + ["git-worktree(1)"]
    refs = [f"\\fB{esc(p.split('(')[0])}\\fR({p.split('(')[1]}" for p in pages if p.split("(")[0] != current]
    return [".SH SEE ALSO", ",\n".join(refs)]


def footer() -> list[str]:
    """The GIT section every git page ends with."""
    return [".SH GIT", "Part of \\fBgit\\-agents\\fR, an extension of \\fBgit\\fR(1)."]


# -- pages -----------------------------------------------------------------------------------


def command_page(verb: str, module: ModuleType | None = None) -> str:
    """git-agent-<verb>(1)."""
    module = module or load(verb)
    parser = build_parser(verb, module)
    lines = header(f"git-agent-{verb}", 1, COMMANDS[verb])
    lines += synopsis(getattr(module, "USAGE", "") or f"git agent-{verb} [<options>]")
    lines += [".SH DESCRIPTION", *paragraphs(module.DESCRIPTION)]
    lines += [".SH OPTIONS", *option_entries(parser)]
    for name, sub in subcommands(parser).items():
        lines += [f'.SS "{esc(name)}"']
        if sub.description:
            lines += paragraphs(sub.description)
        lines += option_entries(sub, subcommand=True)
    for attribute, title in (("JSON", "JSON OUTPUT"), ("PORCELAIN", "PORCELAIN OUTPUT")):
        if getattr(module, attribute, None):
            lines += [f".SH {title}", *paragraphs(getattr(module, attribute))]
    if getattr(module, "EXAMPLES", None):
        lines += [".SH EXAMPLES", *verbatim(module.EXAMPLES)]
    lines += see_also(f"git-agent-{verb}") + footer()
    return "\n".join(lines) + "\n"


def umbrella_page() -> str:
    """git-agent(1): the umbrella command."""
    from git_agents.cli import umbrella

    lines = header("git-agent", 1, "Run a git agent command; list them; print the completion script")
    lines += synopsis(umbrella.USAGE)
    lines += [".SH DESCRIPTION", *paragraphs(umbrella.DESCRIPTION)]
    lines += [".SH COMMANDS", *_command_list()]
    lines += [".SH EXAMPLES", *verbatim(umbrella.EXAMPLES)]
    lines += see_also("git-agent") + footer()
    return "\n".join(lines) + "\n"


def _command_list() -> list[str]:
    out = []
    for verb, summary in COMMANDS.items():
        out += [".TP", f"\\fBgit\\-agent\\-{esc(verb)}\\fR(1)", esc(summary) + "."]
    return out


CONCEPTS = """\
git-agents runs many coding agents (Claude Code, Codex, aider, or any command) in parallel on one
git repository without them stepping on each other. Each task gets its own worktree on its own
branch; its agent runs there; the branches are merged back one by one, each as a --no-ff merge
commit, with conflicts reported instead of lost.

Every command is a git extension: `git agent-spawn` runs the executable git-agent-spawn from
PATH, in the current directory, which may be a subdirectory or a linked worktree. `git agent
<command>` is the same as `git agent-<command>`.

Nothing is ever lost: no command deletes a branch with unmerged commits, a worktree with
uncommitted or untracked work, or stops a running agent without --force. A failed or interrupted
merge leaves the target branch as it was. Several git agent commands may run at once: their
writes to git config, notes and worktrees are serialised with lock files.
"""

LIFE_CYCLE = """\
- spawn: the task is recorded (git config agent-task.<id>.*), its branch task-<id> is created at
  the base branch, its worktree is added under agent.worktreeRoot, its prompt file is written, and
  its agent (if any) starts detached. State: running, or not started without an agent, or failed
  when the agent command cannot be started.
- The agent works and commits on the task branch. When it ends, its exit status is recorded:
  state exited <n>. An agent that disappears without a record is died.
- merge: finished tasks are merged into their target branch one by one. A task that conflicts is
  marked conflict (its branch and worktree are untouched); a merged task is marked merged and its
  merge commit gets a note in refs/notes/agents. With --resolve (or resolve = true in a task file)
  a conflicting task is first handed to a resolver agent in its worktree; if the resolution passes
  the checks it merges in the same run, else it is marked conflict with its branch as it was.
- git agent-run with after = [...]: the task is recorded (state waiting for <ids>) and starts
  once those tasks have merged, from the target as it is then; if one of them does not merge it
  is marked blocked, and so are the tasks that wait for it.
- clean: the worktree, branch and live metadata of finished tasks are removed; the notes stay.
"""

OUTPUT = """\
Colour: task states and headings are coloured when standard output is a terminal. Colour is off
when NO_COLOR is set, with --color=never, or when git config color.agent (or else color.ui) is
false or never; --color=always (or color.agent=always) forces it.

Listing commands accept --json and then print one JSON object with a "version" field; the
version changes only when a field is removed or changes meaning (new fields may appear).

Paths: a path may hold any byte but NUL. In text output a path that needs it is quoted as git
quotes paths (core.quotePath): in double quotes, with C escapes (\\n, \\t, \\", \\\\) and
each byte that is not printable ASCII as three octal digits, e.g. "caf\\351.txt"; with
core.quotePath=false, valid UTF-8 is printed as it is and only the other bytes are escaped. In
JSON a path is a string decoded as UTF-8 in which each byte that is not valid UTF-8, 0xNN, is
the lone surrogate U+DCNN, written \\udcNN (Python's "surrogateescape"): "caf\\udce9.txt" is the
bytes caf, 0xe9, .txt. Python gives the exact bytes back with os.fsencode(value) or
value.encode("utf-8", "surrogateescape"); elsewhere, map each \\udc80-\\udcff to its low byte
and encode the rest as UTF-8.

`git agent-spawn --porcelain` prints one "key value" line per fact (id, branch, worktree, pid),
with a blank line between tasks.

Errors are printed on standard error as git prints them: "fatal: ..." when nothing was done,
"error: ..." when some of the work failed or the command line is wrong, followed by "hint: ..."
lines saying what to do.
"""

ENVIRONMENT = """\
- GIT_AGENTS_TRACE: 1 (or true, 2) prints every git call with its duration and exit status on
  standard error; an absolute path appends those lines to that file instead, as GIT_TRACE does.
- NO_COLOR: when set (to anything), no colour unless --color=always.
- GIT_AGENT_TASK, GIT_AGENT_BRANCH, GIT_AGENT_WORKTREE, GIT_AGENT_TITLE, GIT_AGENT_PROMPT_FILE:
  set for each agent by git agent-spawn: the task id, its branch, its worktree, its title and the
  file holding its prompt.
"""

FILES = """\
- <git-common-dir>/config, section agent-task.<id>: the live metadata of each task
  (`git config --get-regexp '^agent-task\\.'` shows it).
- refs/notes/agents: one note per merge commit (task, title, agent, base, times, exit status);
  `git log --notes=agents` shows them. A task whose conflict an agent resolved (--resolve) adds
  resolved-by (the resolver's command line, or rerere when a recorded resolution settled it)
  and resolve-attempts (how many attempts it took); other notes have neither field.
- <git-common-dir>/agents/tasks/<id>/resolve-<n>/: attempt n of --resolve: prompt.md (the
  resolver's prompt), agent.log and exit.
- <git-common-dir>/rr-cache: git's rerere records; --resolve merges with rerere on, so a
  resolution recorded once is reused when the same conflict comes back.
- <git-common-dir>/agents/tasks/<id>/: prompt.md (the agent's prompt), agent.log (its output),
  exit (its exit status and end time), usage-<launch>.json (the tokens and cost a preset's CLI
  reported for one run; a resolver's are in resolve-<n>/usage.json), and for an interactive
  agent signals/attention (the last signal of its CLI's hooks or notify program; the one
  place there an agent in the sandbox may write), claude-settings.json
  (the hooks given to Claude Code with --settings) and codex-notify (codex's notify program).
- <git-common-dir>/agents/*.lock: the locks that serialise concurrent git agent commands.
- <prefix>/share/bash-completion/completions/git-agent: the bash completion script.
"""


def concepts_page() -> str:
    """git-agents(7): concepts, life cycle, configuration, output, exit codes, environment, files."""
    lines = header("git-agents", 7, "run many coding agents in parallel on one git repository")
    lines += [".SH SYNOPSIS", ".nf", "\\fIgit agent\\fR <command> [<args>]", "\\fIgit agent\\-<command>\\fR [<args>]",
              ".fi", ".SH DESCRIPTION", *paragraphs(CONCEPTS)]
    lines += [".SH COMMANDS", *_command_list()]
    lines += [".SH TASK LIFE CYCLE", *paragraphs(LIFE_CYCLE)]
    lines += [".SH CONFIGURATION", ".PP",
              "Read with \\fBgit config\\fR (repository, global or system); defaults in parentheses."]
    for s in SETTINGS:
        default = f" (default: {esc(s.default)})" if s.default else ""
        lines += [".TP", f"\\fB{esc(s.key)}\\fR{default}", _inline(s.help)]
    lines += [".SH OUTPUT", *paragraphs(OUTPUT)]
    lines += [".SH EXIT STATUS"]
    for code, meaning in EXIT_CODES.items():
        lines += [".TP", f"\\fB{int(code)}\\fR", esc(meaning)]
    lines += [".SH ENVIRONMENT", *paragraphs(ENVIRONMENT)]
    lines += [".SH FILES", *paragraphs(FILES)]
    lines += [".SH NOTES FORMAT", ".PP",
              esc("Each merge commit's note in refs/notes/agents is a line \"git-agents-note: 1\" (the format "
                  "version) followed by one \"key: value\" line per field, in this order, the same for local "
                  "and --remote merges (\"-\" when a field does not apply):")]
    for key, meaning in NOTE_FIELDS.items():
        lines += [".TP", f"\\fB{esc(key)}\\fR", esc(meaning)]
    lines += see_also("git-agents") + footer()
    return "\n".join(lines) + "\n"


def pages() -> dict[str, str]:
    """Every man page: file name (under man/) -> content."""
    out = {"git-agents.7": concepts_page(), "git-agent.1": umbrella_page()}
    for verb in COMMANDS:
        out[f"git-agent-{verb}.1"] = command_page(verb)
    return out


# -- `-h` without importing the command ----------------------------------------------------------


def help_module() -> str:
    """git_agents/cli/help_texts.py: each command's `-h` text, so that `git agent-<verb> -h` prints it
    without importing the command's module and everything that module imports."""
    lines = ['"""Each command\'s `-h` output. Generated by `python -m git_agents.cli.manpage`: do not edit."""',
             "", "HELP = {"]
    for verb in COMMANDS:
        lines.append(f"    {verb!r}: {build_parser(verb, load(verb)).format_help()!r},")
    return "\n".join(lines + ["}", ""])


# -- README ------------------------------------------------------------------------------------

README_BEGIN = "<!-- settings table: generated by python -m git_agents.cli.manpage -->"
README_END = "<!-- end of settings table -->"


def settings_table() -> str:
    """The README's configuration table, from settings.SETTINGS."""
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    for s in SETTINGS:
        default = f"`{s.default}`" if s.default else ""
        rows.append(f"| `{s.key}` | {default} | {s.help} |")
    return "\n".join(rows)


def readme_with_table(readme: str) -> str:
    """The README with the text between the table markers replaced by `settings_table()`."""
    start, end = readme.find(README_BEGIN), readme.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"README.md lacks the markers {README_BEGIN!r} ... {README_END!r}")
    return readme[:start + len(README_BEGIN)] + "\n" + settings_table() + "\n" + readme[end:]


# -- generation --------------------------------------------------------------------------------


def completion_files() -> dict[str, str]:
    """Generated completion files: name (under completion/) -> content."""
    from git_agents.cli.completion import bash_script, loader
    from git_agents.cli.completion_zsh import zsh_script

    out = {"git-agent": bash_script()}
    out.update({f"git-agent-{verb}": loader(verb) for verb in COMMANDS})
    out["_git-agent.zsh"] = zsh_script()  # not installed: `git agent completion zsh` prints it
    return out


def generated(root: str = ROOT) -> dict[str, str]:
    """Every generated file: path relative to `root` -> content."""

    out = {f"man/{name}": text for name, text in pages().items()}
    out["git_agents/cli/help_texts.py"] = help_module()
    out.update({f"completion/{name}": text for name, text in completion_files().items()})
    with open(os.path.join(root, "README.md"), encoding="utf-8") as fh:
        out["README.md"] = readme_with_table(fh.read())
    return out


def stale(root: str = ROOT) -> list[str]:
    """Generated files that differ from (or are missing in, or left over in) `root`."""
    want = generated(root)
    bad = []
    for rel, text in want.items():
        try:
            with open(os.path.join(root, rel), encoding="utf-8") as fh:
                if fh.read() != text:
                    bad.append(rel)
        except FileNotFoundError:
            bad.append(rel)
    return bad + [rel for rel in _leftovers(root, want)]


def _leftovers(root: str, want: dict[str, str]) -> Iterable[str]:
    for folder in ("man", "completion"):
        path = os.path.join(root, folder)
        for name in sorted(os.listdir(path)) if os.path.isdir(path) else []:
            if f"{folder}/{name}" not in want:
                yield f"{folder}/{name}"


def write(root: str = ROOT) -> list[str]:
    """Rewrite every generated file; remove leftovers; return what changed."""
    changed = stale(root)
    want = generated(root)
    for rel in changed:
        path = os.path.join(root, rel)
        if rel not in want:
            os.remove(path)
            continue
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(want[rel])
    return changed


def main(argv: list[str] | None = None) -> int:
    """`python -m git_agents.cli.manpage [--check]`."""
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--check"]:
        bad = stale()
        for rel in bad:
            sys.stderr.write(f"error: {rel} is out of date\n")
        if bad:
            sys.stderr.write("hint: regenerate with: python -m git_agents.cli.manpage\n")
        return 1 if bad else 0
    if argv:
        sys.stderr.write("usage: python -m git_agents.cli.manpage [--check]\n")
        return 129
    for rel in write():
        print(f"updated {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
