"""One module per `git agent-<verb>`: USAGE, configure(parser), run(args), and man page text."""
