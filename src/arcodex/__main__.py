"""``python -m arcodex``: the ``arcodex`` command line."""

from arcodex.cli import main

main()
