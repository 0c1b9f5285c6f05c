"""`git agent doctor`: whether this machine and repository are ready, one check at a time.

Each check gives a level (ok, warn: works but something is worth knowing, fail: something
needed is missing), what it found and what to do. Secrets are never shown: only which
variable or file holds them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from git_agents.core.git import MIN_VERSION, parse_version
from git_agents.core.repo import Repo

OK, WARN, FAIL = "ok", "warn", "fail"
MIN_FREE = 1 << 30  # bytes free beside the worktrees below which a warning is given
MIN_FREE_FAIL = 100 << 20  # ... and below which a new worktree is likely to fail
VERSION_TIMEOUT = 20.0  # seconds a CLI may take to print its version


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    level: str  # ok, warn or fail
    found: str  # what the check saw
    fix: str = ""  # what to do (empty when nothing)

    def to_json(self) -> dict[str, str]:
        """The check as --json prints it."""
        return asdict(self)


def checks(repo: Repo) -> Iterator[Check]:
    """Every check after git's own (git_version, which must pass first), in the report's order."""
    yield from presets(repo)
    yield claude_dialogs(repo)
    yield tmux(repo)
    yield bubblewrap(repo)
    yield codex_sandbox()
    yield inotify()
    yield disk(repo.worktree_root)
    yield locale_check()
    yield man_pages()
    yield submodule_recurse(repo)
    yield from hooks(repo)


# --- git ----------------------------------------------------------------------------------------

def git_version() -> Check:
    """git on PATH, at 2.39 or newer (asked through the gateway, which refuses an older one)."""
    from git_agents.core.errors import AgentError
    from git_agents.core.git import Git

    floor = ".".join(map(str, MIN_VERSION))
    if shutil.which("git") is None:
        return Check("git", FAIL, "git is not on PATH", f"install git {floor} or newer")
    try:
        out = Git(None).run("version", ok=range(0, 256)).out
    except AgentError as exc:  # older than the floor, or plumbum missing (the error says which, and what to do)
        return Check("git", FAIL, exc.message, exc.hint or f"install git {floor} or newer, or put one first on PATH")
    version = parse_version(out)
    if not version:
        return Check("git", FAIL, f"cannot tell git's version ({out.strip() or 'no output'})",
                     f"install git {floor} or newer")
    return Check("git", OK, f"git {'.'.join(map(str, version))}")


# --- the agent CLIs -----------------------------------------------------------------------------

# preset -> (environment variables any of which configures its API access, files that hold a login
# or a provider's settings, relative to HOME)
_ACCESS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "claude": (("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX",
                "CLAUDE_CODE_OAUTH_TOKEN"), (".claude/.credentials.json",)),
    "codex": (("OPENAI_API_KEY", "CODEX_API_KEY"), (".codex/auth.json",)),
    "gemini": (("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_APPLICATION_CREDENTIALS"),
               (".gemini/oauth_creds.json",)),
    "aider": (("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "DEEPSEEK_API_KEY", "OPENROUTER_API_KEY",
               "OLLAMA_API_BASE"), (".aider.conf.yml",)),
    "opencode": (("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENROUTER_API_KEY"),
                 (".local/share/opencode/auth.json", ".config/opencode/opencode.json")),
}


def _program(command: str) -> str:
    """The program a command line starts (its first word that is not an assignment)."""
    for word in command.split():
        if "=" not in word and word not in ("exec", "env"):
            return word.strip("'\"")
    return ""


def wanted(repo: Repo) -> set[str]:
    """The preset names this repository asks for: agent.command, agent.resolveAgent, agent.preset.*."""
    from git_agents.tasks.presets import PRESETS

    names = {repo.setting("agent.command").strip().lower(), repo.setting("agent.resolveAgent").strip().lower()}
    names |= {k[len("agent.preset."):].lower() for k in repo.config if k.startswith("agent.preset.")}
    return {n for n in names if n in PRESETS}


def presets(repo: Repo) -> Iterator[Check]:
    """Each preset's CLI: found, its version, its login or API settings. Missing is a failure
    only for a preset this repository is configured to use (wanted)."""
    from git_agents.tasks.presets import presets as commands

    needed = wanted(repo)
    home = os.path.expanduser("~")
    for name, command in commands(repo).items():
        if name not in _ACCESS:
            continue
        program = _program(command)
        path = shutil.which(program) if program else None
        label = f"preset {name}"
        if path is None:
            level = FAIL if name in needed else WARN
            why = " (this repository uses it)" if name in needed else ""
            yield Check(label, level, f"{program or name} is not on PATH{why}",
                        f"install it to use --agent {name} (see README, Agent presets)")
            continue
        version = (_output([path, "--version"]) or "").strip().splitlines()
        shown = version[0] if version else "version unknown"
        env_vars, files = _ACCESS[name]
        via = [v for v in env_vars if os.environ.get(v)] + [f"~/{f}" for f in files
                                                           if os.path.exists(os.path.join(home, f))]
        if name == "codex" and _codex_provider(home):
            via.append("~/.codex/config.toml (model_provider)")
        if via:
            yield Check(label, OK, f"{program} {shown}; access from {', '.join(via)}")
        else:
            yield Check(label, FAIL if name in needed else WARN, f"{program} {shown}; not logged in, no API settings",
                        f"log in once by running `{program}`, or set {env_vars[0]}")


def _codex_provider(home: str) -> bool:
    try:
        with open(os.path.join(os.environ.get("CODEX_HOME") or os.path.join(home, ".codex"), "config.toml"),
                  encoding="utf-8", errors="replace") as fh:
            return bool(re.search(r"^\s*model_provider\s*=", fh.read(), re.MULTILINE))
    except OSError:
        return False


def claude_dialogs(repo: Repo) -> Check:
    """Claude Code's one-time dialogs (interactive claude in tmux stops at each): onboarding,
    trust for this repository, the custom API key, bypass-permissions mode."""
    if shutil.which("claude") is None:
        return Check("claude dialogs", OK, "claude is not installed: nothing to answer")
    home = os.path.expanduser("~")
    state = _json(os.path.join(os.environ.get("CLAUDE_CONFIG_DIR") or home, ".claude.json"))
    settings = _json(os.path.join(os.environ.get("CLAUDE_CONFIG_DIR") or os.path.join(home, ".claude"),
                                  "settings.json"))
    missing = []
    if not state.get("hasCompletedOnboarding"):
        missing.append("onboarding")
    projects: dict[str, object] = state["projects"] if isinstance(state.get("projects"), dict) else {}
    top = os.path.realpath(repo.main_worktree)
    trusted = [p for p, v in projects.items() if isinstance(v, dict) and v.get("hasTrustDialogAccepted")
               and (top == os.path.realpath(p) or top.startswith(os.path.realpath(p).rstrip("/") + "/"))]
    if not trusted:
        missing.append("trust this folder")
    key = os.environ.get("ANTHROPIC_API_KEY", "")
    responses = state.get("customApiKeyResponses")
    approved = responses.get("approved") if isinstance(responses, dict) else None
    if key and key[-20:] not in (approved if isinstance(approved, list) else []):
        missing.append("use the custom API key")
    if not (settings.get("skipDangerousModePermissionPrompt") or state.get("bypassPermissionsModeAccepted")):
        missing.append("bypass-permissions mode")
    if not missing:
        return Check("claude dialogs", OK, "answered for this repository")
    return Check("claude dialogs", WARN, f"not answered: {', '.join(missing)} (claude --tmux would stop there)",
                 f"run `claude --dangerously-skip-permissions` once in {repo.main_worktree} and accept each")


def _json(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


# --- the machine --------------------------------------------------------------------------------

def tmux(repo: Repo) -> Check:
    """tmux, for --tmux (needed when agent.tmux is true)."""
    path = shutil.which("tmux")
    if path is None:
        from git_agents.core.settings import parse_bool

        level = FAIL if parse_bool(repo.setting("agent.tmux"), False) else WARN
        return Check("tmux", level, "tmux is not on PATH (needed for --tmux"
                     + ("; agent.tmux is true)" if level == FAIL else ")"),
                     "install tmux (e.g. apt-get install tmux)")
    return Check("tmux", OK, (_output([path, "-V"]) or "tmux").strip())


def bubblewrap(repo: Repo) -> Check:
    """bwrap, which --isolation=sandbox runs agents in (needed when agent.isolation is sandbox)
    and codex's own sandbox (the codex preset's workspace-write mode) needs."""
    sandboxed = repo.setting("agent.isolation").strip().lower() == "sandbox"
    level = FAIL if sandboxed else WARN
    why = " (agent.isolation is sandbox)" if sandboxed else ""
    path = shutil.which("bwrap")
    if path is None:
        return Check("bubblewrap", level, f"bwrap is not on PATH: --isolation=sandbox and codex's sandbox cannot "
                     f"start{why}", "install bubblewrap (e.g. apt-get install bubblewrap)")
    try:
        probe = subprocess.run([path, "--ro-bind", "/", "/", "--dev", "/dev", "--unshare-user", "true"],
                               capture_output=True, text=True, check=False, timeout=VERSION_TIMEOUT)
        said = (probe.stderr.strip().splitlines() or ["no message"])[-1] if probe.returncode != 0 else ""
    except (OSError, subprocess.TimeoutExpired) as exc:
        said = str(exc)
    if said:
        return Check("bubblewrap", level, f"bwrap cannot make a sandbox here: {said}{why}",
                     "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1); in a "
                     "container, use --isolation=clone and the codex preset with "
                     "--dangerously-bypass-approvals-and-sandbox")
    return Check("bubblewrap", OK, f"{path} makes sandboxes")


def codex_sandbox() -> Check:
    """codex's home outside TMPDIR: under it codex refuses to set up its sandbox helpers and
    its agents fail to run commands, without saying so in their exit status."""
    if shutil.which("codex") is None:
        return Check("codex sandbox", OK, "codex is not installed")
    home = os.path.realpath(os.environ.get("CODEX_HOME") or os.path.expanduser("~/.codex"))
    tmp = os.path.realpath(tempfile.gettempdir())
    if home == tmp or home.startswith(tmp.rstrip("/") + "/"):
        return Check("codex sandbox", FAIL, f"codex's home {home} is under the temporary directory {tmp}: "
                     "codex will not set up its sandbox there",
                     "set CODEX_HOME to a directory outside $TMPDIR (e.g. ~/.codex)")
    # the proof: a command run in codex's own sandbox, as its agents' shell calls are
    said = _output(["codex", "sandbox", "--", "sh", "-c", f"echo {_MARK}"]) or ""
    if _MARK not in said:
        last = [line for line in said.strip().splitlines() if line.strip()][-1:] or ["no output"]
        return Check("codex sandbox", FAIL, f"a command in codex's sandbox did not run ({last[0].strip()}): its "
                     "agents' shell calls would fail while codex exits 0",
                     "install bubblewrap and allow user namespaces, or override the codex preset with "
                     "--dangerously-bypass-approvals-and-sandbox")
    return Check("codex sandbox", OK, f"a command runs in codex's sandbox (its home {home} is outside {tmp})")


_MARK = "git-agents-doctor-sandbox-ok"


def inotify(limits: Callable[[], tuple[int, int]] | None = None,
            used: Callable[[], tuple[int, int]] | None = None) -> Check:
    """inotify instances and watches free for this user (worktree seals take at most half)."""
    max_instances, max_watches = (limits or _inotify_limits)()
    instances, watches = (used or _inotify_used)()
    free_instances, free_watches = max_instances - instances, max_watches - watches
    found = (f"{free_instances} of {max_instances} instances and {free_watches} of {max_watches} watches free")
    if free_instances < 8 or free_watches < 8192:
        return Check("inotify", WARN, found + ": worktrees will not be sealed (status checks them in full)",
                     "raise fs.inotify.max_user_instances / max_user_watches (sysctl), or close other watchers")
    return Check("inotify", OK, found)


def _inotify_limits() -> tuple[int, int]:
    values = []
    for name, default in (("max_user_instances", 128), ("max_user_watches", 8192)):
        try:
            with open(f"/proc/sys/fs/inotify/{name}", encoding="ascii") as fh:
                values.append(int(fh.read()))
        except (OSError, ValueError):
            values.append(default)
    return values[0], values[1]


def _inotify_used() -> tuple[int, int]:
    """(instances, watches) this user's processes hold, from /proc/<pid>/fd and fdinfo."""
    instances = watches = 0
    uid = os.getuid()
    for pid in (p for p in os.listdir("/proc") if p.isdigit()) if os.path.isdir("/proc") else ():
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:inotify":
                    continue
                instances += 1
                with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii", errors="replace") as fh:
                    watches += sum(line.startswith("inotify wd:") for line in fh)
            except OSError:
                continue
    return instances, watches


def disk(root: str, free: Callable[[str], int] | None = None) -> Check:
    """Space free on the filesystem that holds (or will hold) the task worktrees."""
    where = root
    while where and not os.path.exists(where):
        parent = os.path.dirname(where)
        if parent == where:
            break
        where = parent
    try:
        available = (free or _free)(where)
    except OSError as exc:
        return Check("disk", WARN, f"cannot tell the space free at {where}: {exc.strerror}")
    found = f"{available / (1 << 30):.1f} GiB free at {where} (the worktree root is {root})"
    if available < MIN_FREE_FAIL:
        return Check("disk", FAIL, found, "free some space, or set agent.worktreeRoot to a larger filesystem")
    if available < MIN_FREE:
        return Check("disk", WARN, found, "free some space before spawning many tasks (git agent-clean --merged)")
    return Check("disk", OK, found)


def _free(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def locale_check() -> Check:
    """A UTF-8 locale: agents and their tools print and read UTF-8 (git-agents itself works in any)."""
    name = next((os.environ[v] for v in ("LC_ALL", "LC_CTYPE", "LANG") if os.environ.get(v)), "")
    if not re.search(r"utf-?8", name, re.IGNORECASE):
        return Check("locale", WARN, f"the locale ({name or 'unset, so POSIX'}) is not a UTF-8 one: agents may "
                     "garble non-ASCII text", "set LANG=C.UTF-8 (or another UTF-8 locale)")
    return Check("locale", OK, name)


def man_pages() -> Check:
    """The man pages where `git help agent-spawn` (man) finds them."""
    man = shutil.which("man")
    if man is None:
        return Check("man pages", WARN, "man is not installed: git help agent-<command> cannot show the manuals",
                     "install man (e.g. apt-get install man-db), or read git agent-<command> -h")
    try:
        found = subprocess.run([man, "-w", "git-agent-spawn"], capture_output=True, text=True, check=False,
                               timeout=VERSION_TIMEOUT, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        found = None
    if found is None or found.returncode != 0:
        return Check("man pages", WARN, "man does not find git-agent-spawn(1): git help agent-<command> fails",
                     "installed with uv tool install: export MANPATH=\":$(uv tool dir)/git-agents/share/man\"; "
                     "from a checkout: export MANPATH=\":<checkout>/man\"")
    return Check("man pages", OK, found.stdout.strip())


# --- the repository -----------------------------------------------------------------------------

def submodule_recurse(repo: Repo) -> Check:
    """submodule.recurse: git-agents initialises submodules its own way (agent.submodules)."""
    value = (repo.config.get("submodule.recurse") or [""])[-1]
    from git_agents.core.settings import parse_bool

    if value and parse_bool(value, False):
        return Check("submodule.recurse", WARN, "submodule.recurse is true: every checkout and merge in a task "
                     "worktree also updates its submodules, on top of what agent.submodules does when it is made",
                     "leave it if you want that; else unset it for this repository "
                     "(git config --unset submodule.recurse) and let agent.submodules set them up")
    return Check("submodule.recurse", OK, "not set: agent.submodules sets up each new worktree's submodules")


# hook -> how git-agents treats it
_HOOKS = {
    "pre-merge-commit": "merges are made with merge-tree and commit-tree: it does not run (use agent.mergeCheck)",
    "prepare-commit-msg": "merge commits are made with commit-tree: it does not run for them",
    "commit-msg": "merge commits are made with commit-tree: it does not run for them",
    "post-merge": "merges are made with commit-tree and update-ref: it does not run",
    "post-checkout": "runs in each new worktree (not for sparse ones, made with --no-checkout); agent.setup "
                     "is the place for set-up",
    "pre-push": "git agent-queue and git agent-worker push with --no-verify: it does not run",
    "reference-transaction": "runs for every ref git-agents moves, in each task worktree too",
}


def hooks(repo: Repo) -> Iterator[Check]:
    """The repository's hooks that git-agents runs differently from plain git."""
    configured = (repo.config.get("core.hookspath") or [""])[-1]
    where = os.path.join(repo.main_worktree, os.path.expanduser(configured)) if configured else \
        os.path.join(repo.common_dir, "hooks")
    found = [name for name in _HOOKS if os.access(os.path.join(where, name), os.X_OK)]
    if not found:
        yield Check("hooks", OK, f"none in {where} that git-agents runs differently")
        return
    for name in found:
        yield Check(f"hook {name}", WARN, f"{os.path.join(where, name)}: {_HOOKS[name]}")


def _output(argv: list[str]) -> str | None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, errors="replace", check=False,
                              timeout=VERSION_TIMEOUT, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout or proc.stderr
