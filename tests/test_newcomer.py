"""A newcomer's trip-ups (issue 24): each message says what happened and what to do next, and agrees
with what the command then does."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .conftest import Project
from .test_merge_queue import SHARED_CLASH, SHARED_EDIT, make_tasks


def test_a_conflict_in_merge_all_names_the_next_steps(project: Project) -> None:
    make_tasks(project, {"1": SHARED_EDIT, "2": SHARED_CLASH})
    merged = project.agent("merge", "--all")
    first = project.git("rev-parse", "main")
    assert (merged.returncode, merged.stdout, merged.stderr) == (1, (
        f"Merged task 1 ({first[:12]})\n"
        "Conflict in task 2: shared.txt (not merged; branch and worktree kept)\n"
        "1 merged, 1 not merged\n"), (
        "hint: to merge task 2 anyway: git agent-merge 2 --rebase (replayed onto 'main'), --resolve (an agent\n"
        "hint: resolves it) or --interactive (you resolve it); `git agent-conflicts` shows which tasks overlap\n"))


def test_interactive_conflict_markers_name_the_task_branch_and_the_target(project: Project) -> None:
    make_tasks(project, {"2": SHARED_CLASH})
    project.commit_file("shared.txt", "line 1\nline two (main)\nline 3\n")
    assert project.agent("merge", "2", "--interactive").returncode == 1
    assert (project.path / "shared.txt").read_text() == (
        "line 1\n<<<<<<< main\nline two (main)\n=======\nline II (task 2)\n>>>>>>> task-2\nline 3\n")


def test_continue_of_the_last_conflict_reports_the_merge_it_made(project: Project) -> None:
    make_tasks(project, {"1": SHARED_EDIT, "2": SHARED_CLASH})
    assert project.agent("merge", "--all", "--interactive").returncode == 1
    (project.path / "shared.txt").write_text("line 1\nline two and II\nline 3\n")
    project.git("add", "shared.txt")
    cont = project.agent("merge", "--continue")
    assert (cont.returncode, cont.stdout, cont.stderr) == (
        0, f"Merged task 2 ({project.git('rev-parse', 'main')[:12]})\n1 merged, 0 not merged\n", "")


def test_dry_run_predicts_the_refusal_of_a_dirty_target_worktree(project: Project) -> None:
    make_tasks(project, {"40": {"a.txt": "a\n"}, "42": {"b.txt": "b\n"}})
    (project.path / "README").write_text("edited, not committed\n")
    before = project.snapshot()
    dry = project.agent("merge", "--dry-run", "40", "42")
    real = project.agent("merge", "40", "42")
    refusal = (f"fatal: the worktree at {project.path} has uncommitted changes; merging would mix them in\n"
               "hint: commit or stash them first (git stash)\n")
    assert (real.returncode, real.stdout, real.stderr) == (128, "", refusal)
    assert (dry.returncode, dry.stdout, dry.stderr) == (128, "", refusal)
    assert project.snapshot() == before


def test_a_one_line_prompt_is_not_said_twice(project: Project) -> None:
    project.ok("spawn", "40", "--no-agent", "--prompt", "Fix the login redirect")
    prompt = project.ok("prompt", "40").stdout
    assert prompt.endswith("\nYour task: Fix the login redirect\n")
    assert prompt.count("Fix the login redirect") == 1
    project.ok("spawn", "41", "--no-agent", "--title", "login", "--prompt", "Fix the login redirect")
    assert project.ok("prompt", "41").stdout.endswith("\nYour task: login\n\nFix the login redirect\n")


def test_watch_with_a_number_for_a_task_that_does_not_exist_says_to_write_watch_equals(project: Project) -> None:
    proc = project.agent("status", "--watch", "5")
    assert (proc.returncode, proc.stdout, proc.stderr) == (128, "", (
        "fatal: no such task: '5'\n"
        "hint: --watch takes its interval only after '=': to redraw every 5 seconds, write --watch=5\n"))


def test_git_agent_lists_completion_which_the_readme_uses(project: Project) -> None:
    from .conftest import ROOT, run

    assert "eval \"$(git agent completion bash)\"" in (ROOT / "README.md").read_text()
    listing = run(["git", "agent"], project.path, check=True).stdout.splitlines()
    extra = listing[listing.index("", 4):]  # after the git agent-<command> commands
    assert extra[:4] == [
        "",
        "   completion   Print the shell completion script (eval \"$(git agent completion bash)\")",
        "   hook         Claude Code's worktree hooks (git agent hook install claude)",
        "   mcp          Serve the commands as MCP tools over stdio, for a lead agent"]


def test_log_h_shows_each_option_with_its_description_on_its_line(project: Project) -> None:
    proc = project.agent("log", "-h")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == (
        "usage: git agent-log [--json] [-n <n>] [<revision>]\n\n"
        "    --json                print a JSON object\n"
        "    -n, --max-count <n>   show at most <n> merges (the newest)\n"
        "    --color[=<when>]      colour the output: always, never or auto (default: auto)\n\n")


def test_no_option_of_any_command_shows_its_description_on_a_line_of_its_own() -> None:
    import re

    from git_agents.cli.help_texts import HELP

    alone = [(verb, line) for verb, text in HELP.items() for line in text.splitlines()
             if line.startswith("    -") and not re.search(r"\S {2,}\S", line.strip())]
    assert alone == []


def test_ci_installs_every_program_a_test_module_skips_without_saying_ci_installs_it() -> None:
    import re

    from .conftest import ROOT

    promised = set()
    for module in (ROOT / "tests").glob("test_*.py"):
        promised |= set(re.findall(r'shutil\.which\("([a-z0-9-]+)"\)[^\n]*\.ci/run installs it', module.read_text()))
        promised |= {"zsh"} if 'reason="zsh is not installed (.ci/run installs it)"' in module.read_text() else set()
    ci = (ROOT / ".ci" / "run").read_text()
    installed = set(re.search(r"apt-get install -y -qq ([^>]*)>", ci).group(1).split())  # type: ignore[union-attr]
    assert promised == {"tmux", "zsh"}
    assert promised <= installed


def test_spawn_without_ids_takes_the_next_free_number_and_path_prints_its_directory(project: Project) -> None:
    project.ok("spawn", "7", "fix-login", "--no-agent", "--prompt", "x")
    project.git("branch", "task-9")  # a branch of that name is in the way too
    proc = project.agent("spawn", "--no-agent", "--prompt", "Fix the typo")
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        0, "Prepared task 10 on branch task-10 in ../project-worktrees/task-10\n", "")
    path = project.agent("path", "10")
    assert (path.returncode, path.stdout, path.stderr) == (0, f"{project.worktrees / 'task-10'}\n", "")
    shell = subprocess.run(["sh", "-c", 'cd "$(git agent-path 10)" && git branch --show-current'],
                           cwd=project.path, capture_output=True, text=True)
    assert (shell.returncode, shell.stdout) == (0, "task-10\n")
    porcelain = project.ok("spawn", "--no-agent", "--porcelain", "--prompt-file", "-", input="from {id}\n")
    assert porcelain.stdout.splitlines()[0] == "id 11"
    assert project.ok("prompt", "11").stdout.endswith("Your task: from {id}\n")
    missing = project.agent("path", "12")
    assert (missing.returncode, missing.stdout, missing.stderr) == (
        128, "", "fatal: no such task: '12'\nhint: `git agent-status` lists the tasks\n")


def test_concurrent_spawns_without_ids_each_take_their_own_number(project: Project) -> None:
    procs = [subprocess.Popen(["git", "agent-spawn", "--no-agent", "--porcelain", "--prompt", f"job {n}"],
                              cwd=project.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in range(12)]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    assert [(code, err) for code, _, err in results] == [(0, "")] * 12
    ids = sorted(int(out.splitlines()[0].removeprefix("id ")) for _, out, _ in results)
    assert ids == list(range(1, 13))
    assert sorted(int(b.removeprefix("task-")) for b in project.git(
        "for-each-ref", "--format=%(refname:short)", "refs/heads/task-*").split()) == ids


def test_spawn_says_that_sparse_took_the_id_as_a_directory(project: Project) -> None:
    project.commit_file("src/flask/app.py", "app\n")
    before = project.snapshot()
    proc = project.agent("spawn", "--sparse", "src/flask", "86", "--prompt", "x", "--no-agent")
    assert (proc.returncode, proc.stdout) == (129, "")
    assert proc.stderr.startswith(
        "error: --sparse took '86' as directory (the base has none of that name), so no id was given\n"
        "hint: put the ids first: git agent-spawn 86 --sparse src/flask, or end the directories with --\n"
        "usage: git agent-spawn")
    assert project.snapshot() == before


def test_the_demo_shows_a_conflict_predicted_and_left_out(tmp_path: Path) -> None:
    from .conftest import ROOT, run

    demo = run(["sh", str(ROOT / "examples" / "demo.sh")], tmp_path, env={"TMPDIR": str(tmp_path)}, timeout=300)
    assert (demo.returncode, demo.stderr.count("Traceback")) == (0, 0), demo.stdout + demo.stderr
    lines = demo.stdout.splitlines()
    # the conflict is predicted, before any merge ...
    assert lines.index("Task 52 would conflict: notes.txt") < lines.index("3 would merge, 1 would not")
    # ... and the merge leaves it out and keeps it
    assert "Conflict in task 52: notes.txt (not merged; branch and worktree kept)" in lines
    assert "3 merged, 1 not merged" in lines
    (repo,) = tmp_path.glob("git-agents-demo.*/demo")
    titles = run(["git", "log", "--first-parent", "--format=%s", "main"], repo, check=True).stdout.splitlines()
    assert titles == ["feat: Task 51 - Reword line 2 of the notes", "feat: Task 50 - Add a renderer",
                      "feat: Task 48 - free mixer channel on delete", "initial"]
    assert run(["git", "rev-parse", "--verify", "task-52"], repo).returncode == 0


def test_a_claim_that_waited_in_vain_does_not_say_to_wait(project: Project) -> None:
    project.ok("pool", "create", "1")
    project.ok("pool", "claim")
    full = project.agent("pool", "claim", "--wait", "0.5")
    assert (full.returncode, full.stdout, full.stderr) == (1, "", (
        "error: pool exhausted: all 1 slot(s) are claimed\n"
        "hint: none was released within 0.5 seconds: free slots with `git agent-pool release`, add some with "
        "`git agent-pool create <n>`, or wait until one is (--wait without a number)\n"))
    spawned = project.agent("spawn", "3", "--pool-max", "1", "--no-agent")
    assert (spawned.returncode, spawned.stderr) == (1, (
        "error: pool exhausted: all 1 slot(s) are claimed\n"
        "hint: free slots with `git agent-pool release`, or allow more slots with --pool-max <n> "
        "(agent.poolMax; 0: no limit)\n"))


def test_run_reports_the_agents_time_the_note_records(project: Project, tmp_path: Path) -> None:
    import json
    from datetime import datetime

    from .conftest import write_script

    # The agent exits at once; a child it left in its process group lives 4 s longer, which the
    # run waits for. The note records the agent's own start and end: the run must say the same.
    agent = write_script(tmp_path / "agent.sh", """
        echo work > work.txt && git add work.txt && git commit -q -m work
        (sleep 4) &
    """)
    (tmp_path / "tasks.toml").write_text(f'agent = "{agent}"\n[[task]]\nid = "1"\nprompt = "work"\n')
    proc = project.agent("run", str(tmp_path / "tasks.toml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    note = json.loads(project.ok("log", "--json").stdout)["merges"][0]
    took = int((datetime.fromisoformat(note["finished"]) - datetime.fromisoformat(note["started"])).total_seconds())
    assert took < 4
    ended = [line for line in proc.stdout.splitlines() if line.startswith("task 1: exited 0 after ")]
    assert ended and {line.split(" after ")[1][:4] for line in ended} == {f"0:{took:02d}"}, proc.stdout


def test_a_task_claimed_from_the_pool_is_held_by_the_task_and_its_first_agent_is_not_a_continuation(
        project: Project, tmp_path: Path) -> None:
    import json

    from .conftest import write_script

    project.ok("pool", "create", "1")
    claimed = project.ok("pool", "claim", "--task", "20", "--prompt", "Fix the login")
    slot = json.loads(project.ok("pool", "list", "--json").stdout)["slots"][0]
    assert (slot["task"], slot["pid"], slot["alive"], slot["stale"]) == ("20", None, None, False)
    listed = project.ok("pool", "list").stdout.splitlines()
    assert "(ended)" not in listed[1] and listed[1].split()[:3] == ["pool-1", "claimed", "20"]
    agent = write_script(tmp_path / "agent.sh", f"cat \"$GIT_AGENT_PROMPT_FILE\" > {tmp_path / 'seen.txt'}\n")
    cont = project.agent("continue", "20", "--agent", str(agent), "--prompt", "and the logout")
    assert cont.returncode == 0, cont.stderr
    assert cont.stdout.startswith("Started the first agent of task 20 on branch task-20 in ../project-worktrees/pool-1"
                                  " (agent pid "), cont.stdout
    project.ok("wait", "20", "--timeout", "60")
    assert claimed.stdout == f"{project.worktrees / 'pool-1'}\n"
    seen = (tmp_path / "seen.txt").read_text()
    assert seen.endswith("Your task: Fix the login\n\nand the logout\n"), seen
