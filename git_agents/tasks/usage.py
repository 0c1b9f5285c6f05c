"""What each run of an agent cost: tokens in and out, and money where its CLI reports it.

The presets run their CLIs with machine-readable output (claude's stream-json, codex's
`exec --json` events, gemini's stream-json, opencode's JSON events; aider prints a
"Tokens: … Cost: …" line per message). Such an agent runs under `filter_main`: it starts the
command, turns each event into the human text a user reads in `git agent-logs` (lines that
are not JSON pass through untouched), and keeps the running total in a usage file beside the
log, rewritten atomically whenever it changes, so `git agent-status` shows it while the agent
runs. One file per launch: `<task-dir>/usage-<launch>.json` for a round of the task's agent,
`<task-dir>/resolve-<n>/usage.json` for a conflict resolver.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KINDS = ("agent", "resolve")


@dataclass
class Usage:
    """Tokens sent to the model, tokens it produced, and the cost in US dollars (None: not reported)."""

    tokens_in: int = 0
    tokens_out: int = 0
    cost: float | None = None
    round: str = "1"
    kind: str = "agent"  # agent (a round of the task's own agent) or resolve (a conflict resolver)
    reported: bool = False  # whether the CLI reported anything at all
    # codex and claude count a session's tokens (and claude its cost) from its start, across
    # `resume`/`--continue`: the session and its totals, so that a resumed run counts only its own
    session: str = ""
    session_tokens: tuple[int, int] = (0, 0)
    session_cost: float | None = None

    def add(self, tokens_in: int, tokens_out: int, cost: float | None = None) -> None:
        """Count one report."""
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out
        if cost is not None:
            self.cost = (self.cost or 0.0) + cost
        self.reported = True

    def to_json(self) -> dict[str, Any]:
        """The figures as the usage file and --json outputs hold them."""
        out: dict[str, Any] = {"round": self.round, "kind": self.kind, "tokens_in": self.tokens_in,
                               "tokens_out": self.tokens_out, "cost_usd": self.cost}
        if self.session:
            out.update(session=self.session, session_tokens=list(self.session_tokens), session_cost=self.session_cost)
        return out


def total(usages: list[Usage]) -> Usage | None:
    """The sum of several runs' figures; None when none of them reported anything."""
    reported = [u for u in usages if u.reported]
    if not reported:
        return None
    out = Usage(round="", kind="")
    for u in reported:
        out.add(u.tokens_in, u.tokens_out, u.cost)
    return out


def describe(usage: Usage | None) -> str:
    """The figures as a person reads them: "1234 in, 56 out, $0.0123"; "-" when unknown."""
    if usage is None:
        return "-"
    text = f"{usage.tokens_in} in, {usage.tokens_out} out"
    return text + (f", ${usage.cost:.4f}" if usage.cost is not None else "")


def short(usage: Usage | None) -> str:
    """The figures for a narrow column: "1.2k/56 $0.01"; "-" when unknown."""
    if usage is None:
        return "-"
    text = f"{_k(usage.tokens_in)}/{_k(usage.tokens_out)}"
    return text + (f" ${usage.cost:.2f}" if usage.cost is not None else "")


def _k(n: int) -> str:
    if n < 1000:
        return str(n)
    return f"{n / 1000:.1f}k" if n < 100_000 else (f"{n // 1000}k" if n < 10_000_000 else f"{n // 1_000_000}M")


# -- reading what the agents recorded -------------------------------------------------------------

def usage_path(task_dir: str, launch_id: str) -> str:
    """The usage file of one launch of the task's agent."""
    return os.path.join(task_dir, f"usage-{launch_id or 'unknown'}.json")


def read(path: str) -> Usage | None:
    """One usage file, or None when it is missing or not one."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        cost = data.get("cost_usd")
        session_tokens = data.get("session_tokens") or [0, 0]
        session_cost = data.get("session_cost")
        return Usage(int(data["tokens_in"]), int(data["tokens_out"]),
                     float(cost) if cost is not None else None, str(data.get("round") or "1"),
                     str(data.get("kind") or "agent"), True, str(data.get("session") or ""),
                     (int(session_tokens[0]), int(session_tokens[1])),
                     float(session_cost) if session_cost is not None else None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _files(task_dir: str) -> list[str]:
    """The usage files of a task: its agent's rounds (oldest first), then its resolvers'."""
    paths = glob.glob(os.path.join(glob.escape(task_dir), "usage-*.json"))
    paths.sort(key=lambda p: os.stat(p).st_mtime if os.path.exists(p) else 0)
    resolvers = sorted(glob.glob(os.path.join(glob.escape(task_dir), "resolve-*", "usage.json")),
                       key=lambda p: int(re.sub(r"\D", "", os.path.basename(os.path.dirname(p))) or 0))
    return paths + resolvers


def runs(task_dir: str) -> list[Usage]:
    """Every recorded run of a task (its agent's rounds, then its resolvers), oldest first."""
    found = [read(p) for p in _files(task_dir)]
    return [u for u in found if u is not None]


def task_total(task_dir: str) -> Usage | None:
    """A task's figures over all its runs; None when no run reported any."""
    return total(runs(task_dir))


def note_fields(task_dir: str) -> dict[str, str]:
    """The merge note's usage fields: tokens-in, tokens-out, cost, and usage-rounds when the
    task had more than one run (follow-ups, resolvers)."""
    found = runs(task_dir)
    whole = total(found)
    if whole is None:
        return {}
    fields = {"tokens-in": str(whole.tokens_in), "tokens-out": str(whole.tokens_out),
              "cost": _cost_text(whole.cost)}
    if len(found) > 1:
        fields["usage-rounds"] = "; ".join(
            f"{u.kind}={u.round} in={u.tokens_in} out={u.tokens_out} cost={_cost_text(u.cost)}" for u in found)
    return fields


def _cost_text(cost: float | None) -> str:
    return "-" if cost is None else f"{cost:.6f}".rstrip("0").rstrip(".") if cost else "0"


def from_note(note: dict[str, str]) -> Usage | None:
    """The figures a merge note records, or None when it records none."""
    try:
        tokens_in, tokens_out = int(note["tokens-in"]), int(note["tokens-out"])
    except (KeyError, ValueError):
        return None
    cost_text = note.get("cost", "-")
    try:
        cost = None if cost_text in ("", "-") else float(cost_text)
    except ValueError:
        cost = None
    return Usage(tokens_in, tokens_out, cost, reported=True)


# -- turning a CLI's events into human text and figures ------------------------------------------

_AIDER = re.compile(r"^Tokens: (?P<sent>[\d.]+k?) sent(?:, (?P<write>[\d.]+k?) cache write)?"
                    r"(?:, (?P<hit>[\d.]+k?) cache hit)?, (?P<received>[\d.]+k?) received\."
                    r"(?: Cost: \$(?P<cost>[\d.]+) message)?")
_AIDER_COST = re.compile(r"^Cost: \$(?P<cost>[\d.]+) message")


def _tokens(text: str | None) -> int:
    if not text:
        return 0
    return round(float(text[:-1]) * 1000) if text.endswith("k") else int(float(text))


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class Reader:
    """Reads an agent's output line by line: `feed` returns the text to show for a line (None:
    nothing), and counts any usage the line reports into `usage`."""

    def __init__(self, usage: Usage, earlier: Callable[[str], Usage | None] | None = None) -> None:
        self.usage = usage
        self._earlier = earlier  # session id -> the earlier run of it that got furthest, if any
        self._partial = False  # a streamed message (gemini's deltas) is being shown without its newline

    def feed(self, line: str) -> str | None:
        """The human text for one line of output (without a newline it ends in, which it keeps)."""
        stripped = line.strip()
        event: Any = None
        if stripped.startswith("{") and stripped.endswith("}"):
            try:
                event = json.loads(stripped)
            except ValueError:
                event = None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            self._aider(stripped)
            return self._end_partial() + line
        text = self._event(event)
        if text is None:
            return None
        if event.get("delta") is True:
            self._partial = True
            return text
        return self._end_partial() + text + "\n"

    def finish(self) -> str:
        """Whatever must still be written when the output ends."""
        return self._end_partial()

    def _end_partial(self) -> str:
        if self._partial:
            self._partial = False
            return "\n"
        return ""

    def _aider(self, line: str) -> None:
        found = _AIDER.match(line)
        if found:
            self.usage.add(_tokens(found["sent"]) + _tokens(found["hit"]), _tokens(found["received"]),
                           float(found["cost"]) if found["cost"] else None)
            return
        cost = _AIDER_COST.match(line)  # with cache hits and writes aider puts the cost on its own line
        if cost:
            self.usage.add(0, 0, float(cost["cost"]))

    def _event(self, e: dict[str, Any]) -> str | None:
        kind = e["type"]
        part: dict[str, Any] = e["part"] if isinstance(e.get("part"), dict) else {}
        item: dict[str, Any] = e["item"] if isinstance(e.get("item"), dict) else {}
        if kind == "result":
            return self._result(e)
        if kind in ("assistant", "user") and isinstance(e.get("message"), dict):  # claude
            return _claude_message(e["message"])
        if kind == "thread.started" and isinstance(e.get("thread_id"), str):  # codex
            self.usage.session = e["thread_id"]
            return None
        if kind == "turn.completed" and isinstance(e.get("usage"), dict):  # codex: the session's totals so far
            u = e["usage"]
            self._session_totals(self.usage.session, _int(u.get("input_tokens")), _int(u.get("output_tokens")), None)
            return None
        if kind in ("item.completed", "item.started"):  # codex
            return _codex_item(kind, item)
        if kind in ("turn.failed", "error") and not part:  # codex, gemini, opencode
            err = e.get("error")
            message = err.get("message") if isinstance(err, dict) else (err or e.get("message"))
            return f"error: {message or json.dumps(e)}"
        if kind == "step_finish":  # opencode
            tokens: dict[str, Any] = part["tokens"] if isinstance(part.get("tokens"), dict) else {}
            cache: dict[str, Any] = tokens["cache"] if isinstance(tokens.get("cache"), dict) else {}
            self.usage.add(_int(tokens.get("input")) + _int(cache.get("read")) + _int(cache.get("write")),
                           _int(tokens.get("output")) + _int(tokens.get("reasoning")), _num(part.get("cost")))
            return None
        if kind == "text" and isinstance(part.get("text"), str):  # opencode
            return str(part["text"])
        if kind == "tool_use" and part:  # opencode
            state: dict[str, Any] = part["state"] if isinstance(part.get("state"), dict) else {}
            return _tool_line(str(part.get("tool", "tool")), state.get("input"), state.get("output"))
        if kind == "tool_use":  # gemini
            return _tool_line(str(e.get("tool_name", "tool")), e.get("parameters"), None)
        if kind == "tool_result":  # gemini
            output = e.get("output")
            return _indent(str(output)) if output else None
        if kind == "message" and e.get("role") == "assistant" and isinstance(e.get("content"), str):  # gemini
            return str(e["content"])
        return None

    def _session_totals(self, session: str, tokens_in: int, tokens_out: int, cost: float | None) -> None:
        """A CLI's totals for its session so far: this run's own figures are what they added to
        those an earlier run of the same session (one it resumed) had reached."""
        u = self.usage
        u.session, u.session_tokens, u.session_cost = session, (tokens_in, tokens_out), cost
        base = self._earlier(session) if self._earlier and session else None
        u.tokens_in = max(0, tokens_in - (base.session_tokens[0] if base else 0))
        u.tokens_out = max(0, tokens_out - (base.session_tokens[1] if base else 0))
        u.cost = None if cost is None else max(0.0, cost - ((base.session_cost or 0.0) if base else 0.0))
        u.reported = True

    def _result(self, e: dict[str, Any]) -> str | None:
        if isinstance(e.get("stats"), dict):  # gemini
            stats = e["stats"]
            self.usage.add(_int(stats.get("input_tokens")), _int(stats.get("output_tokens")))
            return None
        models = e.get("modelUsage")  # claude: the session's totals per model, the side requests' models too
        if isinstance(models, dict) and models:
            figures = [m for m in models.values() if isinstance(m, dict)]
            self._session_totals(str(e.get("session_id") or ""),
                                 sum(_int(m.get("inputTokens")) + _int(m.get("cacheReadInputTokens"))
                                     + _int(m.get("cacheCreationInputTokens")) for m in figures),
                                 sum(_int(m.get("outputTokens")) for m in figures), _num(e.get("total_cost_usd")))
        elif isinstance(e.get("usage"), dict):
            u = e["usage"]
            self.usage.add(_int(u.get("input_tokens")) + _int(u.get("cache_read_input_tokens"))
                           + _int(u.get("cache_creation_input_tokens")), _int(u.get("output_tokens")),
                           _num(e.get("total_cost_usd")))
        if e.get("is_error") and isinstance(e.get("result"), str):
            return f"error: {e['result']}"
        return None


def _claude_message(message: dict[str, Any]) -> str | None:
    lines = []
    for block in message.get("content") or []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and block.get("text"):
            lines.append(str(block["text"]))
        elif block.get("type") == "tool_use":
            lines.append(_tool_line(str(block.get("name", "tool")), block.get("input"), None))
        elif block.get("type") == "tool_result":
            content = block.get("content")
            if isinstance(content, list):
                content = "\n".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
            if content:
                lines.append(_indent(str(content)))
    return "\n".join(lines) if lines else None


def _codex_item(kind: str, item: dict[str, Any]) -> str | None:
    what = item.get("type")
    if kind == "item.started":
        return _tool_line("shell", {"command": item.get("command")}, None) if what == "command_execution" else None
    if what in ("agent_message", "reasoning") and item.get("text"):
        return str(item["text"])
    if what == "command_execution":
        output = item.get("aggregated_output")
        code = item.get("exit_code")
        return (_indent(str(output)) + "\n" if output else "") + f"  (exit {code})"
    if what == "error" and item.get("message"):
        return f"error: {item['message']}"
    if what == "file_change":
        changes = item.get("changes") or []
        return "edited " + ", ".join(str(c.get("path")) for c in changes if isinstance(c, dict))
    return None


def _tool_line(name: str, args: Any, output: Any) -> str:
    if isinstance(args, dict):
        shown = args.get("command") or args.get("file_path") or args.get("path") or json.dumps(args)
    else:
        shown = "" if args is None else str(args)
    text = f"● {name}({shown})"
    return text + ("\n" + _indent(str(output)) if output else "")


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.rstrip("\n").splitlines())


# -- the filter the agent runs under --------------------------------------------------------------

def write(path: str, usage: Usage) -> None:
    """Replace the usage file in one step (a reader never sees half of it). A task directory
    removed under a running agent (clean --force) loses its figures, never the agent's output."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(usage.to_json(), fh)
        os.replace(tmp, path)
    except OSError:
        pass


def filter_main(argv: list[str]) -> int:
    """Run `argv` = [usage file, round, kind, shell, command]: the command's standard output is
    shown as human text on ours and its figures kept in the usage file; exit as it exited."""
    path, round_, kind, shell, command = argv
    # Stopping the agent signals its whole group: this filter keeps reading until the command's
    # output ends, so the last figures and the last words still reach the log.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    usage = Usage(round=round_, kind=kind)
    reader = Reader(usage, lambda session: _earlier_run(path, session))
    proc = subprocess.Popen([shell, "-c", command], stdout=subprocess.PIPE,
                            preexec_fn=_default_signals)
    assert proc.stdout is not None
    out = sys.stdout.buffer
    seen: tuple[int, int, float | None] = (0, 0, None)
    for raw in proc.stdout:
        text = reader.feed(raw.decode("utf-8", "surrogateescape"))
        if text:
            out.write(text.encode("utf-8", "surrogateescape"))
            out.flush()
        now = (usage.tokens_in, usage.tokens_out, usage.cost)
        if usage.reported and now != seen:
            seen = now
            write(path, usage)
    tail = reader.finish()
    code = proc.wait()
    if usage.reported:
        write(path, usage)
        tail += f"git-agents: this run used {describe(usage)}\n"
    out.write(tail.encode())
    out.flush()
    return code if code >= 0 else 128 - code


def _earlier_run(path: str, session: str) -> Usage | None:
    """The totals an earlier run of `session` (in the same task) had reached: what a resumed
    codex session counts again."""
    task_dir = os.path.dirname(path)
    if os.path.basename(path) == "usage.json":  # a resolver's: <task dir>/resolve-<n>/usage.json
        task_dir = os.path.dirname(task_dir)
    others = (read(p) for p in _files(task_dir) if os.path.abspath(p) != os.path.abspath(path))
    seen = [u for u in others if u is not None and u.session == session]
    return max(seen, key=lambda u: u.session_tokens, default=None)


def _default_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def wrap(command: str, path: str, round_: str, kind: str, shell: str) -> str:
    """The shell command line that runs `command` under the filter (see filter_main)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    program = (f"import sys; sys.path.insert(0, {root!r}); from git_agents.tasks.usage import filter_main; "
               "sys.exit(filter_main(sys.argv[1:]))")
    return "exec " + " ".join(shlex.quote(a) for a in (sys.executable, "-E", "-c", program, path, round_, kind,
                                                       shell, command))
