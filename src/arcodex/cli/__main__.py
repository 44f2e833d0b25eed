"""``python -m arcodex.cli``."""

from arcodex.cli import main

main()
