"""`certdrop-agent`: the NAS side's command line. Translates arguments into calls of the agent.

Exit codes of `run`: 0 nothing to do or installed; 2 configuration, key, secrets or state file
problem; 3 a bundle was refused; 4 DSM import or confirmation failed and the previous certificate
stays; 5 the source was unreachable or refused us; 6 DSM was unreachable or refused the login,
to install or in the daily credential check (nothing changed); 7 frozen: the index has expired
(the issuer stopped signing it, or an old copy is served); 1 a bug (the traceback is printed).

`rekey SITE` (agent custody): 0 the new CSR was posted; 2 the site is unknown to agent.conf or
not in agent custody, or a key, state or configuration file problem; 5 the source could not take
the CSR (an https:// source never can: `keyreq.source_read_only`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from nas_agent import cycle, redaction
from nas_agent.config.types import DEFAULT_DSM_URL, MAX_POLL_INTERVAL, MIN_POLL_INTERVAL
from nas_agent.duration import format_duration, parse_duration
from nas_agent.errors import AgentError
from nas_agent.version import VersionAction

_log = logging.getLogger("nas_agent.cli")
CONFIG_ENV = "CERTDROP_AGENT_CONFIG"  # names the configuration file when --config does not


def _duration(text: str) -> float:
    seconds = parse_duration(text)
    if seconds is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 900, 15m or 1h")
    if seconds < MIN_POLL_INTERVAL:
        raise argparse.ArgumentTypeError("poll at most once a minute")
    # The same bound as poll_interval's: a longer pause (a long digit string is inf) would
    # crash time.sleep after the first cycle instead of being refused here.
    if seconds > MAX_POLL_INTERVAL:
        longest = format_duration(MAX_POLL_INTERVAL)
        raise argparse.ArgumentTypeError(f"poll at least every {longest}")
    return seconds


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="certdrop-agent",
        description="Pull sealed certificates for this NAS and install them into DSM.",
    )
    parser.add_argument("--version", action=VersionAction)
    named = os.environ.get(CONFIG_ENV)
    where = f"{named}, from ${CONFIG_ENV}" if named else f"agent.conf; ${CONFIG_ENV} names another"
    parser.add_argument(
        "--config",
        "-c",
        default=named or "agent.conf",
        help=f"the agent's INI file (default: {where})".replace("%", "%%"),
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    enroll = commands.add_parser(
        "enroll", help="create this agent's keys and print the token to give the operator"
    )
    enroll.set_defaults(run=_enroll)

    join = commands.add_parser(
        "join",
        help="set this NAS up from the operator's invitation line: configuration, keys, and the"
        " enrollment the operator approves",
    )
    join.add_argument(
        "line",
        nargs="?",
        help="the certdrop-invite-v1:... line `certdrop agent invite` printed; without it (or"
        " with -), $CERTDROP_INVITE_LINE or standard input, which keeps its secrets out of ps",
    )
    join.add_argument("--dir", default=".", help="where to write agent.conf and keys (default: .)")
    join.add_argument("--dsm-user", required=True, help="the DSM account the agent logs in as")
    join.add_argument(
        "--dsm-password-file",
        help="a file holding its password (default: $CERTDROP_DSM_PASSWORD, else asked)",
    )
    join.add_argument("--dsm-url", default=DEFAULT_DSM_URL, help=f"default {DEFAULT_DSM_URL}")
    join.add_argument(
        "--otp",
        help="for a 2FA account: the current code, to remember this NAS (default:"
        " $CERTDROP_DSM_OTP, which keeps it out of ps)",
    )
    join.set_defaults(run=_join)

    run = commands.add_parser("run", help="poll, verify, install into DSM, report")
    when = run.add_mutually_exclusive_group(required=True)
    when.add_argument("--once", action="store_true", help="one cycle, then exit with its code")
    when.add_argument(
        "--every",
        type=_duration,
        nargs="?",
        const=0.0,
        metavar="DURATION",
        help=f"loop, pausing e.g. 15m between cycles, {format_duration(MIN_POLL_INTERVAL)} to"
        f" {format_duration(MAX_POLL_INTERVAL)} (default: [agent] poll_interval)",
    )
    run.set_defaults(run=_run)

    login = commands.add_parser(
        "dsm-login", help="log in once with a 2FA code and remember this device for later runs"
    )
    login.add_argument(
        "--otp",
        help="the current code (default: $CERTDROP_DSM_OTP, which keeps it out of ps; else asked)",
    )
    login.set_defaults(run=_dsm_login)

    rekey = commands.add_parser(
        "rekey",
        help="a site in agent custody: make a new key and CSR now, so the issuer orders a"
        " certificate for it at once (after `bundle.key_missing`, or a key suspected exposed)",
    )
    rekey.add_argument("site", help="the site id, as in agent.conf's [site:<id>]")
    rekey.set_defaults(run=_rekey)

    upgrade = commands.add_parser(
        "upgrade",
        help="after replacing the agent's files: let it read the old index format for 30 more"
        " days (until the issuer is upgraded too)",
    )
    upgrade.set_defaults(run=_upgrade)

    return parser


def _enroll(args: argparse.Namespace) -> int:
    from nas_agent._atomic import make_private_dirs
    from nas_agent.config import load_config
    from nas_agent.enrollment import enrollment_of
    from nas_agent.keys import generate_agent_keys, save_agent_keys

    config = load_config(args.config)
    keys = generate_agent_keys(config.agent.id)
    make_private_dirs(config.agent.keys_dir)
    save_agent_keys(keys, config.agent.keys_dir)
    print(
        f"keys of agent {keys.agent_id} written to {config.agent.keys_dir} (mode 0600)\n"
        "give the operator this line (certdrop agent add LINE --site SITE):\n"
        f"{enrollment_of(keys).token()}"
    )
    return cycle.EXIT_OK


def _join(args: argparse.Namespace) -> int:
    import getpass

    from nas_agent.join import join

    if args.dsm_password_file:
        with open(args.dsm_password_file, encoding="utf-8") as handle:
            password = handle.read().strip("\r\n")
    else:
        password = os.environ.get("CERTDROP_DSM_PASSWORD") or getpass.getpass(
            f"DSM password for {args.dsm_user}: "
        )
    line = args.line if args.line not in (None, "-") else os.environ.get("CERTDROP_INVITE_LINE")
    if not line:
        line = sys.stdin.readline() if not sys.stdin.isatty() else getpass.getpass("invitation: ")
    joined = join(
        line,
        args.dir,
        dsm_user=args.dsm_user,
        dsm_password=password,
        dsm_url=args.dsm_url,
    )
    print(f"joined as agent {joined.agent_id}: configuration in {joined.config_path}")
    if joined.posted:
        print(
            f"enrollment posted; the operator approves it: certdrop agent approve {joined.agent_id}"
        )
    else:
        print(
            "this source is read-only: give the operator this enrollment, for"
            f" `certdrop agent approve {joined.agent_id} --enrollment '<it>'`:\n"
            + joined.enrollment.replace("\n", "")
        )
    if args.otp or os.environ.get("CERTDROP_DSM_OTP"):
        args.config = joined.config_path
        return _dsm_login(args)
    return cycle.EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from nas_agent.config import load_config

    config = load_config(args.config)
    if args.once:
        return _one_cycle(config)
    interval = args.every or config.agent.poll_interval
    while True:
        code = _one_cycle(config)
        if code == cycle.EXIT_CONFIG:
            return code  # nothing will change by itself: stop and say so
        _log.info("next cycle in %d s", interval)
        time.sleep(interval)


def _one_cycle(config) -> int:
    result = cycle.run_cycle(config)
    _log.info("source: %d request(s), %d body byte(s)", result.requests, result.body_bytes)
    for line in result.failures:
        print(f"certdrop-agent: {line}", file=sys.stderr)
    if result.installed:
        print(f"installed: {', '.join(result.installed)}")
    return result.exit_code


def _rekey(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from nas_agent.config import load_config
    from nas_agent.custody.rekey import rekey

    config = load_config(args.config)
    with cycle.exclusive_run(config.agent.state_file, wait=True):
        pending = rekey(config, args.site, now=datetime.now(timezone.utc))
    print(
        f"site {args.site}: new {pending.key_type} key; CSR {pending.sequence} posted with"
        " rekey: the issuer orders its certificate at its next run"
    )
    return cycle.EXIT_OK


def _upgrade(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from nas_agent.config import load_config
    from nas_agent.upgrade import write_upgrade_window

    print(write_upgrade_window(load_config(args.config), datetime.now(timezone.utc)))
    return cycle.EXIT_OK


def _dsm_login(args: argparse.Namespace) -> int:
    from nas_agent.config import dsm_password, load_config
    from nas_agent.dsm.client import DsmClient
    from nas_agent.dsm.device import DeviceIdFile

    config = load_config(args.config)
    if config.dsm.temp_admin:
        print(
            "certdrop-agent: dsm-login is for an account of your own with 2FA; with temp_admin "
            "the agent lifts 2FA for its temporary account itself",
            file=sys.stderr,
        )
        return cycle.EXIT_CONFIG
    code = (
        args.otp
        or os.environ.get("CERTDROP_DSM_OTP")
        or input(f"DSM 2FA code for {config.dsm.username}: ").strip()
    )
    client = DsmClient(config.dsm.url, verify=config.dsm.verify, timeout=config.dsm.timeout)
    device_file = DeviceIdFile(config.dsm.device_id_file)
    with client.logged_in(
        config.dsm.username, dsm_password(config.dsm), device_file=device_file, otp_code=code
    ):
        pass
    print(f"this device is remembered by DSM; its id is in {device_file.path} (mode 0600)")
    return cycle.EXIT_OK


def _exit_code(exc: AgentError) -> int:
    from nas_agent.custody.errors import SourceReadOnly
    from nas_agent.dsm.errors import DsmError
    from nas_agent.sources.errors import SourceError

    if isinstance(exc, DsmError):
        return cycle.EXIT_DSM
    if isinstance(exc, (SourceError, SourceReadOnly)):
        return cycle.EXIT_SOURCE
    return cycle.EXIT_CONFIG


def main(argv: list | None = None) -> int:
    args = _parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return args.run(args)
    except AgentError as exc:
        print(f"certdrop-agent: error: {exc}", file=sys.stderr)
        return _exit_code(exc)
    except KeyboardInterrupt:
        return 130


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(redaction.RedactingFilter())
    # force: the one handler is this one, however often main() runs in a process.
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        handlers=[handler],
        force=True,
    )
    redaction.hold_back_wire_loggers(verbose)


if __name__ == "__main__":
    sys.exit(main())
