"""Every `certdrop` and `certdrop-agent` command line in the README's sh blocks parses as
printed: each subcommand exists and takes the options shown (a renamed flag or a typo fails
here, before a user meets it). Nothing is run."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from cloud.cli.main import _parser as certdrop_parser
from nas_agent.cli import _parser as agent_parser

README = Path(__file__).resolve().parents[2] / "README.md"
_SUDO = re.compile(r"^sudo -u \S+ ")


def _command_lines() -> list[tuple[str, list[str]]]:
    """(program, its arguments) for each command line of the sh blocks that runs one."""
    found = []
    for block in re.findall(r"^```sh\n(.*?)^```$", README.read_text(), re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():  # continuation lines joined
            command = _SUDO.sub("", line.strip())
            program = command.split(" ", 1)[0].rsplit("/", 1)[-1]
            if program not in ("certdrop", "certdrop-agent"):
                continue
            command = command.split("  #")[0].split(";")[0].split(">")[0].split("&&")[0]
            found.append((program, shlex.split(command)[1:]))
    return found


COMMANDS = _command_lines()


def test_the_readme_shows_both_programs():
    programs = {program for program, _ in COMMANDS}
    assert programs == {"certdrop", "certdrop-agent"} and len(COMMANDS) >= 25


@pytest.mark.parametrize(("program", "argv"), COMMANDS, ids=[" ".join(a) for _, a in COMMANDS])
def test_a_readme_command_parses_as_printed(program, argv, capsys):
    parser = certdrop_parser() if program == "certdrop" else agent_parser()
    try:
        parser.parse_args(argv)
    except SystemExit as exc:
        assert exc.code == 0, capsys.readouterr().err  # --help exits 0; a parse error exits 2
