"""`python -m memex` is the `memex` command."""

from memex.cli.main import main

main()
