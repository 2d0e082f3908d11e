"""The installed package's version, for `--version` of both command lines."""

from __future__ import annotations

import argparse
import sys
from typing import Any

PACKAGE = "certdrop"


def package_version() -> str:
    """The version of the installed `certdrop` distribution; "unknown" when it is not installed
    (run from a checkout without `pip install`)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        return "unknown (not installed)"


class VersionAction(argparse.Action):
    """`--version` that looks the version up only when asked: argparse's own takes the text when
    the parser is built, and reading the installed metadata costs every run 10-15 ms."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any):
        kwargs.setdefault("help", "show program's version number and exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        sys.stdout.write(f"{parser.prog} {package_version()}\n")
        parser.exit()
