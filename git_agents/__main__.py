"""`python -m git_agents <verb> [args]`: the same as `git agent-<verb> [args]`."""

import sys

from git_agents.cli.dispatch import COMMANDS, main

if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
    sys.stderr.write(f"usage: python -m git_agents <{'|'.join(COMMANDS)}> [<args>]\n")
    sys.exit(129)
sys.exit(main(sys.argv[1], sys.argv[2:]))
