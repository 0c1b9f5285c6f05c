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

# The "agent": a script that edits a file and commits, as a coding agent would.
cat > "$dir/agent.sh" <<'AGENT'
#!/bin/sh
sleep 1
echo "Work of task $GIT_AGENT_TASK" > "task-$GIT_AGENT_TASK.txt"
git add -A && git commit -q -m "Task $GIT_AGENT_TASK: add task-$GIT_AGENT_TASK.txt"
AGENT
chmod +x "$dir/agent.sh"

set -x
git agent-spawn 48 --title "free mixer channel on delete" --prompt "Free the mixer channel" --agent "$dir/agent.sh"
git agent-spawn 50 51 --prompt "Add a renderer" --agent "$dir/agent.sh"
git agent-status
git agent-wait --all
git agent-merge --all
git agent-clean --merged
git log --oneline --graph --notes=agents -n 3
set +x
echo "The demo repository is in $dir/demo"
