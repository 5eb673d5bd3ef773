"""`python -m dedupe` runs the command line."""

from .cli import main

main(prog_name="dedupe")
