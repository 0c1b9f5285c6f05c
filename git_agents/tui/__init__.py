"""The terminal UI of `git agent-top`: a live model of the tasks (model) and the Textual app over it (app)."""
