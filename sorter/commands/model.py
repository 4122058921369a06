"""placeholder"""
from __future__ import annotations
import argparse
HELP = "todo"
def add_arguments(p: argparse.ArgumentParser) -> None:
    pass
def main(args: argparse.Namespace) -> int:
    return 2
