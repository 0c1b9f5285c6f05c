"""git agent-run: tasks that wait for tasks (`after`), and `resolve = true` unattended."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from .conftest import Project, write_script
from .test_resolve import AGENT
from .test_run import _max_overlap

# 1 -> (2, 3) -> 4 is a diamond; 5 fails, so 6 (after 5) and 7 (after 6) are blocked.
PLAN = {"1": [], "2": ["1"], "3": ["1"], "4": ["2", "3"], "5": [], "6": ["5"], "7": ["6"]}


def _plan_file(tmp_path: Path, agent: Path, extra: str = "", plan: dict[str, list[str]] = PLAN) -> Path:
    tasks = "".join(f'[[task]]\nid = "{n}"\ntitle = "task {n}"\nprompt = "do {n}"\n'
                    + (f"after = {after!r}\n".replace("'", '"') if after else "") + "\n"
                    for n, after in plan.items())
    path = tmp_path / "tasks.toml"
    path.write_text(f'agent = "{agent}"\njobs = 2\n{extra}\n{tasks}')
    return path


def test_a_diamond_runs_in_dependency_order_and_a_failed_prerequisite_blocks(project: Project,
                                                                              tmp_path: Path) -> None:
    times = tmp_path / "times"
    # Each task checks that its prerequisites' work is in its worktree: it started from the target
    # as it was once they had merged.
    agent = write_script(tmp_path / "agent.sh", f"""
        echo "start $GIT_AGENT_TASK $(date +%s.%N)" >> {times}
        case "$GIT_AGENT_TASK" in
          2|3) need="1" ;;
          4) need="2 3" ;;
          *) need="" ;;
        esac
        for n in $need; do [ -f "file-$n.txt" ] || {{ echo "file-$n.txt missing"; exit 9; }}; done
        sleep 0.3
        rc=0
        if [ "$GIT_AGENT_TASK" = 5 ]; then echo "task 5 cannot be done"; rc=1; else
          echo "work $GIT_AGENT_TASK" > "file-$GIT_AGENT_TASK.txt"
          git add -A && git commit -q -m "task $GIT_AGENT_TASK"
        fi
        echo "end $GIT_AGENT_TASK $(date +%s.%N)" >> {times}
        exit $rc
    """)
    base = project.git("rev-parse", "main")

    proc = project.agent("run", str(_plan_file(tmp_path, agent)))

    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = proc.stdout[proc.stdout.index("\nReport:\n"):]
    merges = project.git("log", "--first-parent", "--format=%h %s", "--abbrev=12", f"{base}..main").splitlines()[::-1]
    order = [line.split()[-1] for line in merges]  # "feat: Task 2 - task 2": the title's last word
    short = {m.split()[-1]: m.split()[0] for m in merges}
    assert order[0] == "1" and set(order[1:3]) == {"2", "3"} and order[3] == "4" and len(order) == 4
    assert report == (
        "\nReport:\n"
        f"  1  merged ({short['1']})\n"
        f"  2  merged ({short['2']})\n"
        f"  3  merged ({short['3']})\n"
        f"  4  merged ({short['4']})\n"
        "  5  agent exited 1; kept task-5 in ../project-worktrees/task-5\n"
        "  6  blocked: prerequisite 5 did not merge (agent exited 1); kept task-6 in ../project-worktrees/task-6\n"
        "  7  blocked: prerequisite 6 is blocked; kept task-7 in ../project-worktrees/task-7\n"
        "4 merged, 3 not merged\n")
    events = {}
    for line in times.read_text().splitlines():
        kind, task, stamp = line.split()
        events[(kind, task)] = float(stamp)
    assert not any(task in ("6", "7") for _, task in events)  # blocked: never run
    assert events[("start", "2")] > events[("end", "1")] and events[("start", "3")] > events[("end", "1")]
    assert events[("start", "4")] > max(events[("end", "2")], events[("end", "3")])
    assert _max_overlap(times) <= 2
    status = project.agent("status", "6", "7").stdout
    assert "blocked: prerequisite 5 did not merge (agent exited 1)" in status
    assert "blocked: prerequisite 6 is blocked" in status
    # task 4 started from main with 1, 2 and 3 merged
    assert set(project.git("ls-tree", "--name-only", "main").split()) >= {"file-1.txt", "file-2.txt", "file-3.txt",
                                                                         "file-4.txt"}


def test_dry_run_prints_the_schedule(project: Project, tmp_path: Path) -> None:
    before = project.snapshot()
    proc = project.ok("run", "--dry-run", str(_plan_file(tmp_path, Path("/bin/true"), 'resolve = "claude"')))

    assert "Have an agent resolve each task that conflicts: claude.\n" in proc.stdout
    assert ("Merge each task that others wait for as soon as it is done; the rest at the end.\n"
            "Start at once: 1, 5\n"
            "  2 waits for 1 to merge, then starts from main as it is then\n"
            "  3 waits for 1 to merge, then starts from main as it is then\n"
            "  4 waits for 2, 3 to merge, then starts from main as it is then\n"
            "  6 waits for 5 to merge, then starts from main as it is then\n"
            "  7 waits for 6 to merge, then starts from main as it is then\n") in proc.stdout
    assert project.snapshot() == before


def test_status_shows_what_a_recorded_task_waits_for(project: Project, tmp_path: Path) -> None:
    go = tmp_path / "go"
    agent = write_script(tmp_path / "agent.sh", f"""
        while [ ! -f {go} ]; do sleep 0.05; done
        echo "$GIT_AGENT_TASK" > "file-$GIT_AGENT_TASK.txt" && git add -A && git commit -q -m "task $GIT_AGENT_TASK"
    """)
    path = _plan_file(tmp_path, agent, plan={"1": [], "2": [], "3": ["1", "2"]})
    run = subprocess.Popen(["git", "agent-run", str(path)], cwd=project.path, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while "waiting for 1, 2" not in (shown := project.agent("status", "3").stdout):
            assert time.monotonic() < deadline, shown
            time.sleep(0.1)
    finally:
        go.write_text("")
        out, err = run.communicate(timeout=120)
    assert run.returncode == 0, out + err
    assert out.endswith("3 merged, 0 not merged\n")


def test_resolve_true_resolves_conflicts_unattended(project: Project, tmp_path: Path) -> None:
    project.commit_file("other.txt", "other 1\nother 2\n")
    agent = write_script(tmp_path / "agent.sh", AGENT)
    path = _plan_file(tmp_path, agent, "resolve = true", plan={str(n): [] for n in range(1, 7)})

    proc = project.agent("run", str(path))

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.endswith("6 merged, 0 not merged\n")
    assert "  2  merged (" in proc.stdout and f") after its conflict was resolved by {agent}\n" in proc.stdout
    assert (project.path / "shared.txt").read_text() == "line 1\nline 2 (task 2)\nline 2 (task 1)\nline 3\n"
    assert (project.path / "other.txt").read_text() == "other 1 (task 4)\nother 1 (task 3)\nother 2\n"
