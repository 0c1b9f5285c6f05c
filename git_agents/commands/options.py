"""Options shared by several commands."""

from __future__ import annotations

import argparse


def add_verbosity(parser: argparse.ArgumentParser, *, quiet: str = "print only errors and the final summary",
                  verbose: str = "print more detail") -> None:
    """-q/--quiet and -v/--verbose (args.verbosity: -1, 0 or 1), for commands that print more than
    a line; `quiet` and `verbose` say what they do for this command."""
    parser.add_argument("-q", "--quiet", action="store_const", dest="verbosity", const=-1, default=0, help=quiet)
    parser.add_argument("-v", "--verbose", action="store_const", dest="verbosity", const=1, help=verbose)
