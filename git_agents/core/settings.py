"""Every `git config` key git-agents reads, with its default and meaning: the one table.

The man page git-agents(7) and the README's table are generated from `SETTINGS`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    """One configuration key."""

    key: str
    default: str
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("agent.worktreeRoot", "../<repo>-worktrees",
            "Directory that holds the task worktrees; a relative path is taken from the main worktree."),
    Setting("agent.branchPrefix", "task-", "Prefix of task branch names: task 48 works on branch task-48."),
    Setting("agent.command", "",
            "Agent command run in each new worktree when spawn is given no --agent (a shell command line)."),
    Setting("agent.tmux", "false",
            "When true, spawn and run start each agent interactively in its own window of the repository's "
            "tmux session (as spawn --tmux; see git agent-attach)."),
    Setting("agent.shell", "/bin/sh", "Shell that runs agent commands (as `<shell> -c <command>`)."),
    Setting("agent.promptTemplate", "",
            "Path of a file that replaces the built-in prompt template; placeholders {id}, {title}, "
            "{branch}, {worktree}, {base} and {prompt}."),
    Setting("agent.pool", "false",
            "When true, spawn takes a free slot of the worktree pool instead of creating a worktree "
            "(as --pool does; see git agent-pool)."),
    Setting("agent.poolMax", "0",
            "Most slots spawn --pool may grow the pool to when no slot is free; 0: no limit."),
    Setting("agent.mergeMessage", "feat: Task {id} - {title}",
            "Message of each task's merge commit; placeholders {id}, {title}, {branch}."),
    Setting("agent.preset.<name>", "",
            "Adds or overrides an agent preset: `--agent <name>` runs this command line (it should read "
            "the prompt from \"$GIT_AGENT_PROMPT_FILE\"). Built in: claude, codex, gemini, aider, opencode."),
    Setting("agent.sealWorktrees", "true",
            "When true, a task worktree is sealed when its agent exits: a watcher (inotify) keeps the result of "
            "one full uncommitted-work check true until anything in the worktree changes, so merge and status "
            "need not run git status there again. Removal always checks in full."),
    Setting("agent.guard", "true",
            "When true, an agent's git may move only its task branch and its worktree's own refs (a "
            "reference-transaction hook given through the environment; the user's hooks still run): see "
            "GUARDED WORKTREES in the README. It guards against mistakes, not an agent set on escaping."),
    Setting("agent.isolation", "worktree",
            "Where a new task's agent works: worktree (a linked worktree, guarded: see agent.guard), clone "
            "(a self-contained local clone at the same path, its branch fetched back when the agent exits) or "
            "sandbox (that clone, the agent run under bubblewrap with the rest of the filesystem read-only). "
            "Applies to spawn, run, `pool claim --task` and workers; with the pool, the clone is made from a "
            "slot's checkout."),
    Setting("agent.sandboxNetwork", "true",
            "With --isolation=sandbox: false cuts the agent off the network (it then cannot reach its API)."),
    Setting("agent.sandboxWritable", "",
            "With --isolation=sandbox: more paths the agent may write (whitespace-separated; more than one "
            "entry allowed), besides its clone, a private temp directory and its preset's own state."),
    Setting("agent.autoCommit", "false",
            "When an agent exits 0 leaving uncommitted work and no commits, commit that work on the task "
            "branch with the task's title (git agent-run) instead of reporting \"work not committed\"."),
    Setting("agent.copy", "",
            "Glob (relative to the main worktree; may be given several times) of files to copy into each "
            "new worktree, copy-on-write where the filesystem supports it. Ignored files listed in "
            "`.worktreeinclude` (gitignore syntax) are copied too."),
    Setting("agent.link", "",
            "Path or glob (may be given several times), e.g. node_modules: symlinked into each new worktree "
            "from the main worktree instead of copied."),
    Setting("agent.sparse", "",
            "Directories (relative to the top of the repository; several in one value separated by spaces, "
            "or the key given several times) that each new task worktree checks out as a cone-mode sparse "
            "checkout, as `git agent-spawn --sparse` does; empty: full checkouts."),
    Setting("agent.submodules", "auto",
            "Submodules of new task worktrees: auto initialises those initialised in the main worktree, "
            "cloned from its own submodule repositories (no network), and logs a warning for one that fails; "
            "required fails the task instead; none leaves them all uninitialised."),
    Setting("agent.setup", "",
            "Command run with the shell in each new worktree before its agent starts (e.g. `npm ci`); if it "
            "fails, the task fails with its output shown and the agent is not started."),
    Setting("agent.portRange", "20000-29999",
            "Ports from which each task leases a block (GIT_AGENT_PORT is its first port), as <low>-<high>."),
    Setting("agent.portBlock", "10", "Number of consecutive ports in each task's block."),
    Setting("agent.mergeStyle", "merge",
            "How git agent-merge lands a task: merge (a --no-ff merge commit), squash (one commit of the "
            "task's changes) or rebase (the task's commits replayed onto the target). --style overrides it."),
    Setting("agent.mergeCheck", "",
            "Command (run with agent.shell in a scratch worktree) that each merged result must pass before "
            "`git agent-merge` lets the target advance; empty: no check. --check overrides it."),
    Setting("agent.resolveAgent", "",
            "Agent (a preset or a shell command) that `git agent-merge --resolve` starts to resolve a task's "
            "conflict with its target; empty: the task's own agent. `--resolve=<agent>` overrides it."),
    Setting("agent.resolveAttempts", "1",
            "How many times `--resolve` (and `resolve = true` in a task file) lets a resolver try one task's "
            "conflict before the task is reported as a conflict."),
    Setting("color.agent", "",
            "Colour in git agent output: always, never, or auto/true (on a terminal); falls back to color.ui."),
    Setting("agent.remote", "origin",
            "The shared remote that holds the task queue (git agent-queue, git agent-worker, merge --remote)."),
    Setting("agent.lease", "600",
            "Seconds without a heartbeat after which another worker may take over a claimed task."),
    Setting("agent.pollInterval", "5", "Seconds between two looks at the remote queue by an idle worker."),
    Setting("agent.workerJobs", "1", "How many tasks one git agent-worker runs at once."),
    Setting("agent.workerName", "", "This worker's name in the queue (default: <hostname>:<pid>)."),
    Setting("agent.trustQueueCommands", "false",
            "When true, git agent-worker without --agent runs the agent command a queued task names (any "
            "shell command line, written by whoever could push to the remote). When false, such a task is "
            "left unclaimed with a message; a task naming one of this machine's presets runs either way."),
    Setting("agent.verifyResults", "true",
            "When true (the default), git agent-merge --remote merges only results whose commit carries a good "
            "signature by a trusted key (git verify-commit; for SSH keys gpg.ssh.allowedSignersFile); other "
            "results are skipped with a warning. false trusts unsigned results, which anyone who can push to "
            "the remote can forge (--trust-unsigned does so once)."),
)

DEFAULTS = {s.key.lower(): s.default for s in SETTINGS}


def parse_bool(value: str | None, default: bool = False) -> bool:
    """git's boolean spelling: yes/on/true/1 and no/off/false/0 (an empty or missing value: default)."""
    if value is None or value == "":
        return default
    return value.strip().lower() in ("yes", "on", "true", "1")
