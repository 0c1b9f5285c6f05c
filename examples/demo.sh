#!/bin/sh
# A demo of git-agents on a throw-away repository, with a scripted agent instead of a real one.
# Run it after `pip install .`:  examples/demo.sh
set -eu
command -v git-agent-spawn >/dev/null || { echo "git-agent-spawn is not on PATH: run 'pip install .' first" >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/git-agents-demo.XXXXXX")
cd "$dir"
git init -q -b main demo && cd demo
git config user.name "Demo" && git config user.email "demo@example.com"
printf 'line 1\nline 2\nline 3\n' > notes.txt && git add notes.txt && git commit -q -m "initial"

# The "agent": a script that edits files and commits, as a coding agent would. Tasks 51 and 52
# both rewrite line 2 of notes.txt, differently: they conflict, and only the first of them merges.
cat > "$dir/agent.sh" <<'AGENT'
#!/bin/sh
sleep 1
case "$GIT_AGENT_TASK" in
  51) sed 's/^line 2$/line 2, reworded by task 51/' notes.txt > notes.new && mv notes.new notes.txt ;;
  52) sed 's/^line 2$/line 2, rewritten by task 52/' notes.txt > notes.new && mv notes.new notes.txt ;;
  *) echo "Work of task $GIT_AGENT_TASK" > "task-$GIT_AGENT_TASK.txt" ;;
esac
git add -A && git commit -q -m "Task $GIT_AGENT_TASK: $GIT_AGENT_TITLE"
AGENT
chmod +x "$dir/agent.sh"

set -x
git agent-spawn 48 --title "free mixer channel on delete" --prompt "Free the mixer channel" --agent "$dir/agent.sh"
git agent-spawn 50 --prompt "Add a renderer" --agent "$dir/agent.sh"
git agent-spawn 51 --prompt "Reword line 2 of the notes" --agent "$dir/agent.sh"
git agent-spawn 52 --prompt "Rewrite line 2 of the notes" --agent "$dir/agent.sh"
git agent-status
git agent-wait --all
git agent-conflicts || true        # 51 and 52 change the same line: predicted to conflict (exit 1)
git agent-merge --dry-run --all || true   # predicted: 48, 50, 51 merge; 52 would conflict (exit 1)
git agent-merge --all || true       # 52 is left out (exit 1): its branch and worktree are kept
git agent-clean --merged
git agent-status                    # only task 52 is left, marked conflict
git agent-log                       # the merges, from the notes on their merge commits
set +x
echo "The demo repository is in $dir/demo; task 52 waits in $dir/demo-worktrees/task-52"
