"""The installed package's version, for `--version` of both command lines."""

from __future__ import annotations

PACKAGE = "certdrop"


def package_version() -> str:
    """The version of the installed `certdrop` distribution; "unknown" when it is not installed
    (run from a checkout without `pip install`)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        return "unknown (not installed)"
