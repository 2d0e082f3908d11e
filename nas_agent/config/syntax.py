"""agent.conf's syntax problems, found the way `configparser` reads lines.

`configparser` stops at the first key written twice, section written twice or key before any
section, and reports only the first line it cannot read. `scan` walks the lines as it does
(its own header and option patterns, inline comments after a space, indented lines continuing
a value) and finds them all, so they are reported together with every other problem. The text
it returns has the keys before any section blanked out; read without `strict`, it then always
parses: sections written twice are merged, and the last of a key written twice counts.
"""

from __future__ import annotations

import configparser
import io
import sys

from nas_agent.config.errors import ConfigProblem

COMMENT_PREFIXES = ("#", ";")  # full-line and inline (after a space): the parser's settings
_SECTION = configparser.ConfigParser.SECTCRE
_OPTION = configparser.ConfigParser.OPTCRE
_NON_SPACE = configparser.ConfigParser.NONSPACECRE


def scan(text: str) -> tuple[list[ConfigProblem], str]:
    """The problems `configparser` would stop at or report, each with its line, and the text
    with what comes before the first section blanked (the parser refuses to read on there)."""
    problems: list[ConfigProblem] = []
    sections: dict[str, int] = {}  # name -> the line it was first written on
    options: dict[tuple[str, str], int] = {}
    lines: list[str] = []
    section: str | None = None
    option: str | None = None
    indent = 0
    for number, line in enumerate(io.StringIO(text), start=1):
        value = _without_comment(line)
        level = _NON_SPACE.search(line)
        if not value or (section is not None and option and level and level.start() > indent):
            lines.append(line)  # blank, a comment, or a value's continuation
            continue
        indent = level.start() if level else 0
        header = _SECTION.match(value)
        if header:
            section, option = header.group("header"), None
            if section in sections:
                problems.append(_twice(f"[{section}]", sections[section], number))
            sections.setdefault(section, number)
        elif section is None:
            problems.append(
                ConfigProblem(
                    "(file)", f"line {number}: a key before any [section]", "start with [agent]"
                )
            )
            line = "\n"
        else:
            written = _OPTION.match(value)
            if written is None or not written.group("option").strip():
                problems.append(
                    ConfigProblem(
                        "(file)", f"line {number}: cannot read {value!r}", "write key = value"
                    )
                )
            if written is not None:
                option = written.group("option").rstrip().lower()
                if option and (section, option) in options:
                    where = f"{section}.{option}"
                    problems.append(_twice(where, options[section, option], number))
                options.setdefault((section, option), number)
        lines.append(line)
    return problems, "".join(lines)


def _twice(key: str, first: int, again: int) -> ConfigProblem:
    if key.startswith("["):
        return ConfigProblem(
            key, f"appears twice (lines {first} and {again})", "merge the two sections"
        )
    return ConfigProblem(key, f"is set twice (lines {first} and {again})", "keep one")


def _without_comment(line: str) -> str:
    """The line without its comment, stripped: `configparser`'s own rule, step by step (an
    inline prefix counts after whitespace; the first round in which one counts decides)."""
    if line.strip().startswith(COMMENT_PREFIXES):
        return ""
    start = sys.maxsize
    found = {prefix: -1 for prefix in COMMENT_PREFIXES}
    while start == sys.maxsize and found:
        following = {}
        for prefix, index in found.items():
            index = line.find(prefix, index + 1)
            if index == -1:
                continue
            following[prefix] = index
            if index == 0 or (index > 0 and line[index - 1].isspace()):
                start = min(start, index)
        found = following
    return line[: None if start == sys.maxsize else start].strip()
