"""What each run of an agent cost (tasks/usage.py): a preset's CLI events read into figures and text.

The real CLIs are run by the e2e suite; here scripted stand-ins print the captured formats, as
`agent.preset.<name>` overrides (a preset's command line runs under the usage filter).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from git_agents.tasks.usage import Reader, Usage

from .conftest import Project, write_script

CLAUDE_EVENTS = [
    {"type": "system", "subtype": "init", "session_id": "s"},
    {"type": "assistant", "message": {"content": [{"type": "text", "text": "Looking at it."},
                                                  {"type": "tool_use", "name": "Bash", "input": {"command": "ls"}}]}},
    {"type": "user", "message": {"content": [{"type": "tool_result", "content": "a.txt"}]}},
    {"type": "result", "subtype": "success", "result": "All done.", "total_cost_usd": 0.25,
     "usage": {"input_tokens": 1, "output_tokens": 1},
     "modelUsage": {"big": {"inputTokens": 1000, "cacheReadInputTokens": 200, "cacheCreationInputTokens": 34,
                            "outputTokens": 56},
                    "small": {"inputTokens": 10, "outputTokens": 2}}},
]


def _fake_claude(tmp_path: Path, code: int, work: str = "") -> dict[str, str]:
    """A `claude` first on PATH that prints CLAUDE_EVENTS (after running `work`); the environment to use it."""
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(e) + "\n" for e in CLAUDE_EVENTS))
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    write_script(bin_dir / "claude", f"""
        cat > /dev/null
        {work}
        cat {events}
        echo "a line that is not JSON"
        echo "progress on stderr" >&2
        exit {code}
    """)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def test_a_presets_tokens_and_cost_are_recorded_and_its_log_stays_text(project: Project, tmp_path: Path) -> None:
    env = _fake_claude(tmp_path, 3)
    project.ok("spawn", "1", "--agent", "claude", "--prompt", "do it", env=env)
    waited = project.agent("wait", "1")
    assert waited.returncode == 1  # the agent's own exit status comes through the filter
    row = json.loads(project.ok("status", "--json").stdout)["tasks"][0]
    assert row["state"] == "exited 3"
    assert (row["tokens_in"], row["tokens_out"], row["cost_usd"]) == (1244, 58, 0.25)
    assert row["runs"] == [{"round": "1", "kind": "agent", "tokens_in": 1244, "tokens_out": 58, "cost_usd": 0.25}]
    log = project.ok("logs", "1").stdout
    # stderr reaches the log directly, the CLI's standard output through the filter: in either order
    assert sorted(log.splitlines()) == sorted(["Looking at it.", "● Bash(ls)", "  a.txt", "a line that is not JSON",
                                               "progress on stderr",
                                               "git-agents: this run used 1244 in, 58 out, $0.2500"]), log
    table = project.ok("status").stdout.splitlines()
    assert table[0].split()[:6] == ["ID", "STATE", "AHEAD", "FILES", "DIRTY", "TOKENS"]
    assert "1.2k/58 $0.25" in table[1]


def test_rounds_and_totals_reach_the_note_and_agent_log(project: Project, tmp_path: Path) -> None:
    env = _fake_claude(tmp_path, 0, 'echo x >> "file-$GIT_AGENT_TASK.txt" && git add . && git commit -qm work')
    project.ok("spawn", "1", "--agent", "claude", "--prompt", "do it", env=env)
    project.ok("wait", "1")
    project.ok("continue", "1", "--prompt", "and more", env=env)
    project.ok("wait", "1")
    row = json.loads(project.ok("status", "--json").stdout)["tasks"][0]
    assert [(r["kind"], r["round"]) for r in row["runs"]] == [("agent", "1"), ("agent", "2")]
    assert (row["tokens_in"], row["tokens_out"], row["cost_usd"]) == (2488, 116, 0.5)
    project.ok("merge", "1")
    note = project.git("notes", "--ref=agents", "show", "main").splitlines()
    assert "tokens-in: 2488" in note and "tokens-out: 116" in note and "cost: 0.5" in note
    assert "usage-rounds: agent=1 in=1244 out=58 cost=0.25; agent=2 in=1244 out=58 cost=0.25" in note
    out = project.ok("log").stdout.splitlines()
    assert out[0].split()[5] == "TOKENS" and "2.5k/116 $0.50" in out[1]
    assert out[-1] == "Total: 2488 in, 116 out, $0.5000 over 1 merge"
    data = json.loads(project.ok("log", "--json").stdout)
    assert data["total"] == {"tokens_in": 2488, "tokens_out": 116, "cost_usd": 0.5}


def test_an_agent_that_is_not_a_preset_shows_no_tokens(project: Project, committing_agent: Path) -> None:
    project.ok("spawn", "1", "--agent", str(committing_agent), "--prompt", "x")
    project.ok("wait", "1")
    assert "TOKENS" not in project.ok("status").stdout
    row = json.loads(project.ok("status", "--json").stdout)["tasks"][0]
    assert (row["tokens_in"], row["tokens_out"], row["cost_usd"], row["runs"]) == (None, None, None, [])


def _read(lines: list[str]) -> tuple[Usage, str]:
    usage = Usage()
    reader = Reader(usage)
    text = "".join(t for line in lines if (t := reader.feed(line + "\n")) is not None) + reader.finish()
    return usage, text


def test_each_clis_format_is_read() -> None:
    # codex reports its session's totals so far, and a resumed session goes on counting from the
    # totals its earlier run reached: only what this run added is its own
    codex_events = [json.dumps({"type": "thread.started", "thread_id": "t-1"}),
                    json.dumps({"type": "item.completed", "item": {"type": "agent_message", "text": "hi"}}),
                    json.dumps({"type": "turn.completed", "usage": {"input_tokens": 7, "output_tokens": 2}}),
                    json.dumps({"type": "turn.completed", "usage": {"input_tokens": 12, "output_tokens": 3}})]
    codex, text = _read(codex_events)
    assert (codex.tokens_in, codex.tokens_out, codex.cost, text) == (12, 3, None, "hi\n")
    assert (codex.session, codex.session_tokens) == ("t-1", (12, 3))
    resumed = Usage()
    reader = Reader(resumed, lambda session: Usage(session="t-1", session_tokens=(7, 2)) if session == "t-1" else None)
    for line in codex_events:
        reader.feed(line + "\n")
    assert (resumed.tokens_in, resumed.tokens_out) == (5, 1)
    gemini, text = _read([json.dumps({"type": "message", "role": "assistant", "content": "Do", "delta": True}),
                          json.dumps({"type": "message", "role": "assistant", "content": "ne.", "delta": True}),
                          json.dumps({"type": "result", "stats": {"input_tokens": 30, "output_tokens": 15}})])
    assert (gemini.tokens_in, gemini.tokens_out, text) == (30, 15, "Done.\n")
    opencode, text = _read([json.dumps({"type": "text", "part": {"text": "ok"}}),
                            json.dumps({"type": "step_finish", "part": {
                                "tokens": {"input": 10, "output": 5, "reasoning": 1, "cache": {"read": 3, "write": 2}},
                                "cost": 0.01}})])
    assert (opencode.tokens_in, opencode.tokens_out, opencode.cost, text) == (15, 6, 0.01, "ok\n")
    aider, text = _read(["Tokens: 2.3k sent, 45 received. Cost: $0.0012 message, $0.0012 session.",
                         "Tokens: 12k sent, 1.1k cache write, 900 cache hit, 1.5k received.",
                         "Cost: $0.02 message, $0.0212 session."])
    assert (aider.tokens_in, aider.tokens_out, round(aider.cost or 0, 4)) == (2300 + 12000 + 900, 45 + 1500, 0.0212)
    assert text.count("\n") == 3  # aider's own text, untouched


def test_top_shows_what_each_task_cost(project: Project, tmp_path: Path) -> None:
    from git_agents.core.repo import Repo
    from git_agents.tui.app import cells
    from git_agents.tui.model import Overview

    env = _fake_claude(tmp_path, 0, 'echo x >> "file-$GIT_AGENT_TASK.txt" && git add . && git commit -qm work')
    project.ok("spawn", "1", "--agent", "claude", "--prompt", "do it", env=env)
    project.ok("wait", "1")
    rows = Overview(Repo.discover(str(project.path))).refresh()
    assert rows[0].tokens == "1.2k/58 $0.25"
    assert "1.2k/58 $0.25" in cells(rows[0])


def test_run_ends_with_the_tokens_its_agents_used(project: Project, tmp_path: Path) -> None:
    env = _fake_claude(tmp_path, 0, 'echo x >> "file-$GIT_AGENT_TASK.txt" && git add . && git commit -qm work')
    (tmp_path / "tasks.toml").write_text('agent = "claude"\n[[task]]\nid = "a"\nprompt = "A"\n'
                                         '[[task]]\nid = "b"\nprompt = "B"\n')
    lines = project.ok("run", str(tmp_path / "tasks.toml"), env=env).stdout.splitlines()
    assert lines[-2:] == ["Tokens: 2488 in, 116 out, $0.5000", "2 merged, 0 not merged"]
