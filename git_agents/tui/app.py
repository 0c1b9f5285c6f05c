"""The Textual app of `git agent-top`: one row per task, refreshed live, with keys that act on them.

Imported only by `git agent-top` (Textual costs ~0.6 s to import). Every action is the
matching command, run as `python -m git_agents <verb> ...` in the repository: the same code,
options and messages as on the command line, its output shown in the app.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Header, Input, Log, Static

from git_agents.core import selfrun
from git_agents.core.errors import AgentError
from git_agents.core.repo import Repo
from git_agents.tasks import agent
from git_agents.tui.model import Overview, Row

COLUMNS = ("ID", "STATE", "ELAPSED", "AHEAD", "FILES", "DIRTY", "TOKENS", "CONFLICTS", "TITLE", "LOG")
TITLE_WIDTH = 30  # a title longer than this is cut (with ...): the log line needs the room

_STATE_STYLES = {"running": "yellow", "exited 0": "green", "merged": "green", "conflict": "red", "failed": "red",
                 "died": "red", "check-failed": "red", "worktree missing": "red", "exited": "red"}


def state_text(state: str) -> Text:
    """A state word in the colour `git agent-status` gives it."""
    for key, style in _STATE_STYLES.items():
        if state.startswith(key):
            return Text(state, style=style)
    return Text(state)


def cells(row: Row) -> list[str | Text]:
    """The cells of a row, in COLUMNS order."""
    dirty = "-" if not row.worktree else ("?" if row.dirty is None else ("yes" if row.dirty else "no"))
    return [row.id, state_text(row.state), row.elapsed(), "-" if row.ahead is None else str(row.ahead),
            "-" if row.files is None else str(row.files), dirty, row.tokens,
            Text(", ".join(row.conflicts), style="red") if row.conflicts else "",
            row.title if len(row.title) <= TITLE_WIDTH else row.title[:TITLE_WIDTH - 3] + "...", row.log_line]


def command_argv(verb: str, *args: str) -> list[str]:
    """`git agent-<verb> args` as this very installation runs it (with selfrun.env())."""
    return selfrun.argv(verb, *args)


def available(verb: str) -> bool:
    """Whether this installation has `git agent-<verb>` (attach and send come with the tmux support):
    its module exists (looked up, not imported; the command list lives in the cli layer above)."""
    import importlib.util

    return importlib.util.find_spec(f"git_agents.commands.{verb}") is not None


class OutputScreen(ModalScreen[bool]):
    """A command's output (and, for a question, y/n): dismissed with True for yes."""

    BINDINGS = [Binding("escape,q", "answer(False)", "Close"), Binding("y", "answer(True)", "Yes", show=False),
                Binding("n", "answer(False)", "No", show=False), Binding("enter", "enter", "OK", show=False)]
    DEFAULT_CSS = """
    OutputScreen { align: center middle; }
    OutputScreen > VerticalScroll { width: 90%; height: 80%; border: round $accent; padding: 0 1; }
    """

    def __init__(self, title: str, body: str, *, question: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.question = question

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = self.title_text
            scroll.border_subtitle = "y: yes, n: no" if self.question else "Esc: close"
            if self.body.strip() or not self.question:  # a bare question is said once, below
                yield Static(Text.from_ansi(self.body.rstrip("\n")) if self.body.strip() else Text("(no output)"),
                             id="body")
            if self.question:
                yield Static(Text(self.question + " [y/n]", style="bold"), id="question")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes and bool(self.question))

    def action_enter(self) -> None:
        if not self.question:
            self.dismiss(False)


class SendScreen(ModalScreen["str | None"]):
    """An input box for a follow-up message to a task's agent."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    SendScreen { align: center middle; }
    SendScreen > Input { width: 80%; border: round $accent; }
    """

    def __init__(self, task_id: str) -> None:
        super().__init__()
        self.task_id = task_id

    def compose(self) -> ComposeResult:
        box = Input(placeholder=f"message to task {self.task_id}'s agent (Enter sends, Esc cancels)", id="message")
        box.border_title = f"git agent-send {self.task_id}"
        yield box

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class SpawnScreen(SendScreen):
    """An input box for a new task's text: `git agent-spawn --prompt <text>` (the next free id)."""

    def __init__(self) -> None:
        super().__init__("")

    def compose(self) -> ComposeResult:
        box = Input(placeholder="the new task's text (Enter starts it with agent.command, Esc cancels)", id="message")
        box.border_title = "git agent-spawn --prompt"
        yield box


class LogScreen(Screen[None]):
    """A task's agent log, followed as it grows (as `git agent-logs -f`)."""

    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back")]

    def __init__(self, task_id: str, path: str) -> None:
        super().__init__()
        self.task_id = task_id
        self.path = path
        self._offset = 0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Log(id="log", highlight=False)
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"log of task {self.task_id} (following)"
        self.sub_title = self.path
        self._poll()
        self.set_interval(0.25, self._poll)

    def _poll(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                chunk = fh.read()
        except OSError:
            return
        if chunk:
            self._offset += len(chunk)
            self.query_one(Log).write(chunk.decode("utf-8", "replace"))


class DiffScreen(Screen[None]):
    """`git agent-diff <id>` in a scrollable view."""

    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back")]

    def __init__(self, task_id: str, text: str) -> None:
        super().__init__()
        self.task_id = task_id
        self.text = text

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="diff"):
            yield Static(Text.from_ansi(self.text.rstrip("\n")) if self.text.strip() else Text("(no changes)"))
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"git agent-diff {self.task_id}"
        self.query_one("#diff").focus()


class TopApp(App[int]):
    """`git agent-top`."""

    TITLE = "git agent-top"
    BINDINGS = [
        Binding("l", "log", "Log"),  # and Enter: the table's own select, see on_data_table_row_selected
        Binding("d", "diff", "Diff"),
        Binding("a", "attach", "Attach"),
        Binding("s", "send", "Send"),
        Binding("k", "stop", "Stop"),
        Binding("m", "merge", "Merge"),
        Binding("M", "merge_all", "Merge all"),
        Binding("c", "clean", "Clean"),
        Binding("n", "spawn", "New task"),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]
    DEFAULT_CSS = """
    #tasks { height: 1fr; }
    #message { height: 1; padding: 0 1; color: $text-muted; }
    """

    def __init__(self, repo: Repo, *, interval: float = 1.0, overview: Overview | None = None) -> None:
        super().__init__()
        self.repo = repo
        self.interval = interval
        self.overview = overview or Overview(repo)
        self.rows: list[Row] = []
        self._busy = False
        self.refreshes = 0  # completed refreshes, for tests and the status line

    def compose(self) -> ComposeResult:
        yield Header()
        # kept: app.query_one() looks in the screen on top (a log, a diff, a question), not here
        self.table: DataTable[str | Text] = DataTable(id="tasks", cursor_type="row", zebra_stripes=True)
        self.message = Static("", id="message")
        yield self.table
        yield self.message
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.repo.toplevel
        table = self.table
        for name in COLUMNS:
            table.add_column(name, key=name)
        table.focus()
        self.refresh_now()
        self.set_interval(self.interval, self.refresh_now)

    # -- the rows --------------------------------------------------------------------------------

    def refresh_now(self) -> None:
        """Start a refresh in a worker thread unless one is running (the UI never waits on git)."""
        if self._busy:
            return
        self._busy = True
        self.run_worker(self._refresh_in_thread, thread=True, group="refresh", exit_on_error=False)

    def _refresh_in_thread(self) -> None:
        try:
            rows = self.overview.refresh()
        except AgentError as error:
            self.call_from_thread(self._say, f"error: {error.message}")
            return
        finally:
            self._busy = False
        self.call_from_thread(self._show, rows)

    def _show(self, rows: list[Row]) -> None:
        table = self.table
        selected = self.selected()
        if [r.id for r in rows] != [r.id for r in self.rows]:
            table.clear()
            for row in rows:
                table.add_row(*cells(row), key=row.id)
            if selected in [r.id for r in rows]:
                table.move_cursor(row=[r.id for r in rows].index(selected))
        else:
            for old, row in zip(self.rows, rows):
                new, before = cells(row), cells(old)
                for name, value, was in zip(COLUMNS, new, before):
                    if value != was or name == "ELAPSED":
                        table.update_cell(row.id, name, value, update_width=True)
        self.rows = rows
        self.refreshes += 1
        if not rows:
            self._say("No tasks. Start one with: git agent-spawn <id> --prompt <text> --agent <command>")
        elif self.refreshes == 1:
            self._say(f"{len(rows)} task(s). Enter: log  d: diff  a: attach  s: send  k: stop  "
                      "m/M: merge  c: clean  q: quit")

    def _say(self, text: str) -> None:
        self.message.update(Text(text))

    def selected(self) -> str | None:
        """The id of the task under the cursor."""
        table = self.table
        if not self.rows or table.cursor_row is None or not 0 <= table.cursor_row < len(self.rows):
            return None
        return self.rows[table.cursor_row].id

    def _selected_or_say(self) -> str | None:
        task_id = self.selected()
        if task_id is None:
            self._say("No task selected.")
        return task_id

    # -- running commands ------------------------------------------------------------------------

    def run_command(self, verb: str, *args: str, then: Callable[[subprocess.CompletedProcess[str]], None]) -> None:
        """Run `git agent-<verb> args` in a worker thread, then `then(result)` on the UI thread."""
        argv = command_argv(verb, *args)
        self._say(f"git agent-{verb} {' '.join(args)} ...")

        def work() -> None:
            env = selfrun.env(GIT_PAGER="cat", PAGER="cat")
            proc = subprocess.run(argv, cwd=self.repo.toplevel, capture_output=True, text=True,
                                  errors="replace", stdin=subprocess.DEVNULL, env=env)
            self.call_from_thread(then, proc)

        self.run_worker(work, thread=True, group="command", exit_on_error=False)

    def show_result(self, title: str) -> Callable[[subprocess.CompletedProcess[str]], None]:
        """A `then` that shows a command's stdout and stderr, and refreshes the rows."""
        def then(proc: subprocess.CompletedProcess[str]) -> None:
            self._say(f"{title}: exit {proc.returncode}")
            self.push_screen(OutputScreen(f"{title} (exit {proc.returncode})", proc.stdout + proc.stderr))
            self.refresh_now()
        return then

    def confirm_then_run(self, question: str, verb: str, *args: str, body: str = "") -> None:
        """Ask; on yes run the command and show its output."""
        title = f"git agent-{verb} {' '.join(args)}"

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_command(verb, *args, then=self.show_result(title))
            else:
                self._say(f"{title}: not run")

        self.push_screen(OutputScreen(title, body, question=question), answered)

    # -- the keys --------------------------------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a row (the focused table takes Enter before the app's bindings): its log."""
        self.action_log()

    def action_log(self) -> None:
        task_id = self._selected_or_say()
        if task_id is not None:
            self.push_screen(LogScreen(task_id, agent.log_path(self.repo.task_dir(task_id))))

    def action_diff(self) -> None:
        task_id = self._selected_or_say()
        if task_id is None:
            return

        def then(proc: subprocess.CompletedProcess[str]) -> None:
            self._say(f"git agent-diff {task_id}: exit {proc.returncode}")
            self.push_screen(DiffScreen(task_id, proc.stdout + proc.stderr))

        self.run_command("diff", "--color=always", task_id, then=then)

    def action_attach(self) -> None:
        task_id = self._selected_or_say()
        if task_id is None:
            return
        if not available("attach"):
            self._say("git agent-attach is not available in this installation")
            return
        from textual.app import SuspendNotSupported

        from git_agents.tasks import tmux
        from git_agents.tasks.selection import select_tasks

        try:  # the command's own check first, so a task without a window says why instead of flashing
            tmux.live_window(select_tasks(Repo.discover(self.repo.toplevel), [task_id])[0], "attach")
        except AgentError as error:
            self.push_screen(OutputScreen(f"git agent-attach {task_id}", f"fatal: {error.message}\n"
                                          + "".join(f"hint: {h}\n" for h in (error.hint or "").splitlines())))
            return
        try:
            with self.suspend():
                subprocess.run(command_argv("attach", task_id), cwd=self.repo.toplevel, env=selfrun.env(),
                               check=False)
        except SuspendNotSupported:
            self._say(f"this terminal cannot be handed over: run git agent-attach {task_id}")
        self.refresh_now()

    def action_send(self) -> None:
        task_id = self._selected_or_say()
        if task_id is None:
            return
        if not available("send"):
            self._say("git agent-send is not available in this installation")
            return

        def sent(message: str | None) -> None:
            if message:
                self.run_command("send", task_id, "--", message, then=self.show_result(f"git agent-send {task_id}"))

        self.push_screen(SendScreen(task_id), sent)

    def action_spawn(self) -> None:
        """A new task: its text in an input box, then `git agent-spawn --prompt <text>` (the next free id)."""
        def entered(text: str | None) -> None:
            if text:
                self.run_command("spawn", "--prompt", text, then=self.show_result("git agent-spawn"))

        self.push_screen(SpawnScreen(), entered)

    def action_stop(self) -> None:
        task_id = self._selected_or_say()
        if task_id is not None:
            self.confirm_then_run(f"Stop the agent of task {task_id}?", "stop", task_id)

    def action_clean(self) -> None:
        task_id = self._selected_or_say()
        if task_id is not None:
            self.confirm_then_run(f"Remove task {task_id}'s worktree and branch (work is never lost: "
                                  "git agent-clean refuses then)?", "clean", task_id)

    def action_merge(self) -> None:
        task_id = self._selected_or_say()
        if task_id is not None:
            self._merge(task_id)

    def action_merge_all(self) -> None:
        self._merge("--all")

    def _merge(self, what: str) -> None:
        """The dry-run prediction first (git agent-merge --dry-run), then ask, then merge."""
        def predicted(proc: subprocess.CompletedProcess[str]) -> None:
            text = proc.stdout + proc.stderr
            # the report says "Task <id> would merge cleanly" for each task that would merge
            if proc.returncode not in (0, 1) or " would merge cleanly" not in proc.stdout:
                self._say(f"git agent-merge --dry-run {what}: nothing would merge")
                self.push_screen(OutputScreen(f"git agent-merge --dry-run {what}", text))
                return
            self.confirm_then_run(f"Merge {'every finished task' if what == '--all' else 'task ' + what}?",
                                  "merge", what, body=f"git agent-merge --dry-run {what}:\n\n{text}")

        self.run_command("merge", "--dry-run", "--color=always", what, then=predicted)
