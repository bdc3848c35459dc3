"""`python -m intertask ...` = the `intertask` command."""

from intertask.cli.main import main

main()
