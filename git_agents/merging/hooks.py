"""The hooks `git merge --no-ff` runs, run around the merges made in memory.

git merge runs, for each merge commit, pre-merge-commit (no arguments; skipped by --no-verify),
prepare-commit-msg <message file> merge, commit-msg <message file> (skipped by --no-verify),
with GIT_INDEX_FILE naming the index that holds the merge result and GIT_EDITOR=:, and after
the merge post-merge 0 (1 after a squash). They run through `git hook run` in the worktree
that has the target checked out (the main worktree when none has), so git finds them as it
does for its own merge (core.hooksPath, the executable bit) and sets GIT_DIR and GIT_PREFIX
as for its own hooks. Differences, because the merges are made in memory: the index is a
temporary one holding the merge result (a hook that stages changes there changes the merge
commit, as with git merge), the message file is a private one, and post-merge runs once per
landing, after the target's worktree moved, with ORIG_HEAD at where the target was.
"""

from __future__ import annotations

import os
import tempfile

from git_agents.core.git import Git

COMMIT_HOOKS = ("pre-merge-commit", "prepare-commit-msg", "commit-msg")
SKIPPED_BY_NO_VERIFY = ("pre-merge-commit", "commit-msg")


def cleanup_message(text: str) -> str:
    """The message as git's default cleanup without an editor ("whitespace") leaves it.

    Trailing whitespace goes from every line, runs of blank lines become one, leading and
    trailing blank lines go, and the message ends with one newline ("" when nothing is left).
    """
    lines: list[str] = []
    blank = False
    for line in text.split("\n"):
        line = line.rstrip()
        if not line:
            blank = bool(lines)
            continue
        if blank:
            lines.append("")
        lines.append(line)
        blank = False
    return "\n".join(lines) + "\n" if lines else ""


class MergeHooks:
    """Which of git merge's hooks exist for one target, and running them as git merge would.

    `hooks_dir`: the hooks directory, when the caller knows it (else git is asked).
    """

    def __init__(self, git: Git, worktree: str, scratch_dir: str, *, verify: bool = True,
                 squash: bool = False, hooks_dir: str = "") -> None:
        self.wt = git.at(worktree)
        self.worktree = worktree
        self.scratch_dir = scratch_dir
        self.verify = verify
        self.squash = squash
        hooks = hooks_dir or self.wt("rev-parse", "--git-path", "hooks")  # honours core.hooksPath
        hooks = os.path.join(worktree, hooks)  # a relative one is relative to the worktree, as for git
        skip = () if verify else SKIPPED_BY_NO_VERIFY
        self.present = {name for name in (*COMMIT_HOOKS, "post-merge") if name not in skip
                        and os.path.isfile(os.path.join(hooks, name))
                        and os.access(os.path.join(hooks, name), os.X_OK)}

    @property
    def any_commit_hook(self) -> bool:
        """Whether a hook runs before each merge commit (else the commit is made as before, for nothing)."""
        return any(name in self.present for name in COMMIT_HOOKS)

    def _run(self, name: str, *args: str, env: dict[str, str] | None = None) -> int:
        """Run one hook as git does (its output on stderr); its exit status (0 when it does not exist)."""
        if name not in self.present:
            return 0
        return self.wt.passthrough("hook", "run", "--ignore-missing", name, "--", *args, env=env,
                                   stdout_to_stderr=True)

    def before_commit(self, tree: str, message: str, branch: str) -> tuple[str, str, str]:
        """Run the commit hooks on a merge result: (tree, cleaned-up message, "" or why it is refused).

        The tree is the index the hooks leave (pre-merge-commit may stage changes); the message
        is what prepare-commit-msg and commit-msg leave in the message file.
        """
        os.makedirs(self.scratch_dir, exist_ok=True)
        fd, index = tempfile.mkstemp(prefix="hook-index-", dir=self.scratch_dir)
        os.close(fd)
        fd, msg_file = tempfile.mkstemp(prefix="MERGE_MSG-", dir=self.scratch_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as fh:
                fh.write(message)  # as `git merge -m` writes it: no newline added
            os.unlink(index)  # read-tree wants to create it (an empty file is not an index)
            env = {"GIT_INDEX_FILE": index, "GIT_EDITOR": ":", "GIT_REFLOG_ACTION": f"merge {branch}"}
            self.wt.run("read-tree", tree, env=env)
            if self._run("pre-merge-commit", env=env):
                return tree, message, self.refusal("pre-merge-commit")
            if "pre-merge-commit" in self.present:
                tree = self.wt.run("write-tree", env=env).out.strip()
            if self._run("prepare-commit-msg", msg_file, "merge", env=env):
                return tree, message, self.refusal("prepare-commit-msg")
            if self._run("commit-msg", msg_file, env=env):
                return tree, message, self.refusal("commit-msg")
            with open(msg_file, encoding="utf-8", errors="surrogateescape") as fh:
                cleaned = cleanup_message(fh.read())
            if not cleaned:
                return tree, message, "its merge message is empty after the hooks ran (Empty commit message.)"
            return tree, cleaned, ""
        finally:
            for path in (index, msg_file):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass

    def refusal(self, name: str) -> str:
        """Why a task is not merged when hook `name` exited non-zero."""
        skip = ("skip it with --no-verify, as with git merge" if name in SKIPPED_BY_NO_VERIFY
                else "--no-verify does not skip it, as with git merge")
        return f"the {name} hook refused it (its output is above; {skip})"

    def post_merge(self, old: str) -> None:
        """After the target's worktree moved from `old`: ORIG_HEAD there, then post-merge 0 (1 for a squash)."""
        if "post-merge" not in self.present:
            return
        self.wt.run("update-ref", "--no-deref", "ORIG_HEAD", old)
        self._run("post-merge", "1" if self.squash else "0")
