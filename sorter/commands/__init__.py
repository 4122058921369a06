"""Subcommands of the ``sorter`` console script (one module each)."""
