"""Fixtures of the HTTP and console tests (the helpers live in webtools.py)."""

from webtools import start_line

__all__ = ["start_line"]
