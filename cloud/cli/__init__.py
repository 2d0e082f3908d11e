"""`certdrop`, the operator's command line: the parser and main, the issuing commands, the fleet
commands, and the exit codes.

Importing it on a Python older than 3.11 ends the process with one line saying so (exit 2),
before anything that needs 3.11 is imported.
"""

import sys

if sys.version_info < (3, 11):  # noqa: UP036 (the target version is what this check enforces)
    sys.stderr.write(
        "certdrop: needs Python 3.11 or newer, not Python {}.{} ({}); it is the NAS agent, "
        "certdrop-agent, that runs on Python 3.8\n".format(*sys.version_info[:2], sys.executable)
    )
    raise SystemExit(2)
