"""`certdrop`: the operator's command line. Translates arguments into calls of the core.

The commands themselves are in `issue_commands`, `fleet_commands` and `account_commands`; the
exit codes and which error means which in `exit_codes`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cloud.acme.challenge_types import ChallengeType
from nas_agent.version import VersionAction

CONFIG_ENV = "CERTDROP_CONFIG"  # names the configuration file when --config does not


class _Commands:
    """A command module, imported when one of its commands runs (or one of its argument types
    parses a value), not when the parser is built: the commands import the ACME client, DNS and
    cryptography, and `certdrop --help` needs none of them."""

    def __init__(self, module: str):
        self._module = module

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            return getattr(importlib.import_module(self._module), name)(*args)

        call.__name__ = name  # argparse names a type by it in its messages
        return call


account_commands = _Commands("cloud.cli.account_commands")
fleet_commands = _Commands("cloud.cli.fleet_commands")
issue_commands = _Commands("cloud.cli.issue_commands")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="certdrop",
        description="Issue wildcard certificates by ACME DNS-01 and deliver them to NAS agents.",
    )
    parser.add_argument("--version", action=VersionAction)
    named = os.environ.get(CONFIG_ENV)
    where = (
        f"{named}, from ${CONFIG_ENV}" if named else f"certdrop.toml; ${CONFIG_ENV} names another"
    )
    parser.add_argument(
        "--config",
        "-c",
        type=Path,
        default=Path(named or "certdrop.toml"),
        help=f"the configuration file (default: {where})".replace("%", "%%"),
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    parser.add_argument("--json-logs", action="store_true", help="log JSON lines")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = commands.add_parser(
        "init",
        help="probe the store's conditional writes, create the issuer's signing and escrow keys "
        "(once)",
    )
    init.set_defaults(run=issue_commands.init)

    issuer = commands.add_parser("issuer", help="the issuer's keys").add_subparsers(
        dest="issuer_command", required=True, metavar="ACTION"
    )
    issuer_show = issuer.add_parser(
        "show", help="print the issuer key line agents pin and the escrow key line again"
    )
    issuer_show.set_defaults(run=issue_commands.issuer_show)
    rotate = issuer.add_parser(
        "rotate",
        help="replace the signing key (agents follow it; no change on the NAS units), or with"
        " --escrow the escrow key (every escrow copy re-sealed)",
    )
    which = rotate.add_mutually_exclusive_group()
    which.add_argument(
        "--escrow", action="store_true", help="rotate the escrow key instead of the signing key"
    )
    which.add_argument(
        "--compromised",
        action="store_true",
        help="the signing key may be known to someone else: a new key no old one vouches for;"
        " every agent must then be given the new issuer line by hand",
    )
    rotate.set_defaults(run=issue_commands.issuer_rotate)

    account = commands.add_parser("account", help="the ACME account").add_subparsers(
        dest="account_command", required=True, metavar="ACTION"
    )
    rollover = account.add_parser(
        "rollover",
        help="move the ACME account to another key (its URL, and dns-persist-01 records, stay)"
        " and set ca.account_key to it",
    )
    rollover.add_argument(
        "--to",
        required=True,
        type=account_commands.account_key_argument,
        metavar="KEY",
        help='"aws-kms:ARN" (an ECC_NIST_P256 KMS key) or "file" (a new key in the key store)',
    )
    rollover.set_defaults(run=account_commands.rollover)

    issue = commands.add_parser(
        "issue", help="issue one site's certificate now and publish it to its agents"
    )
    issue.add_argument("site", help="the site id (a [sites.ID] table of the configuration)")
    issue.add_argument("--out", type=Path, help="also write privkey/cert/chain/fullchain PEMs here")
    issue.add_argument(
        "--dry-run",
        action="store_true",
        help="issue from the CA's staging directory (ca.staging_directory) with an account of "
        "its own; record and publish nothing",
    )
    issue.set_defaults(run=issue_commands.issue)

    run = commands.add_parser(
        "run", help="issue and publish every site that is due (renewal policy), or the given ones"
    )
    run.add_argument("--site", action="append", dest="sites", help="only this site (repeat)")
    run.add_argument("--force", action="store_true", help="issue even when not due")
    run.add_argument("--concurrency", type=int, default=4, help="sites issued at once")
    run.set_defaults(run=issue_commands.run)

    unlock = commands.add_parser(
        "unlock", help="break a site's lock left by a run that died (asks to confirm)"
    )
    unlock.add_argument("site")
    unlock.add_argument("--yes", action="store_true", help="do not ask; break it")
    unlock.set_defaults(run=issue_commands.unlock)

    alerts = commands.add_parser(
        "alerts", help="send the fleet's alerts that are new, changed or due a reminder, now"
    )
    alerts.add_argument(
        "--dry-run", action="store_true", help="show what would be sent; send and record nothing"
    )
    alerts.set_defaults(run=issue_commands.alerts)

    status = commands.add_parser("status", help="sites and agents: certificates, renewals, reports")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(run=fleet_commands.status)

    site = commands.add_parser("site", help="the sites of the configuration").add_subparsers(
        dest="site_command", required=True, metavar="ACTION"
    )
    site_add = site.add_parser("add", help="add a site to the configuration file")
    site_add.add_argument("site_id", help="its id: lower-case letters, digits, '.' and '-'")
    site_add.add_argument("--domain", required=True, help="the apex, e.g. example.com")
    site_add.add_argument("--provider", help="a [providers.NAME] of the file (dns-01)")
    site_add.add_argument(
        "--challenge",
        choices=[c.value for c in ChallengeType],
        help="dns-01 (default; needs --provider) or dns-persist-01 (no DNS credentials)",
    )
    site_add.add_argument("--no-wildcard", action="store_true", help="the apex only")
    site_add.add_argument("--extra-name", action="append", default=[], dest="extra_names")
    site_add.add_argument("--key-type", help="ec-p256 (default), ec-p384, rsa-2048/3072/4096")
    site_add.add_argument("--profile", help="an ACME profile the CA offers")
    site_add.add_argument(
        "--key-custody",
        choices=("issuer", "agent"),
        help="issuer (default): the issuer makes the key; agent: each NAS makes its own and sends"
        " a CSR, one certificate per NAS (docs/key-custody.md)",
    )
    site_add.set_defaults(run=fleet_commands.site_add)
    site_list = site.add_parser("list", help="show the configured sites")
    site_list.set_defaults(run=fleet_commands.site_list)
    site_remove = site.add_parser(
        "remove", help="remove a site from the file, its agents' entries and its state"
    )
    site_remove.add_argument("site_id")
    site_remove.set_defaults(run=fleet_commands.site_remove)
    persist = site.add_parser(
        "persist-record",
        help="print the dns-persist-01 TXT record to create once for a site, and how",
    )
    persist.add_argument("site_id")
    persist.add_argument(
        "--persist-until",
        type=fleet_commands.future_date,
        metavar="YYYY-MM-DD",
        help="the record stops authorizing issuance after this day (00:00 UTC)",
    )
    persist.set_defaults(run=fleet_commands.site_persist_record)

    doctor = commands.add_parser(
        "doctor",
        help="checks of the set-up: the store's conditional writes, dns-persist-01 records at "
        "every nameserver",
    )
    doctor.set_defaults(run=fleet_commands.doctor)

    dashboard = commands.add_parser(
        "dashboard", help="serve the read-only fleet dashboard: who has which certificate, expiries"
    )
    dashboard.add_argument("--port", type=int, default=8080, help="port (0: any free port)")
    dashboard.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (the page has no login)"
    )
    dashboard.set_defaults(run=fleet_commands.dashboard)

    agent = commands.add_parser("agent", help="enrolled NAS agents").add_subparsers(
        dest="agent_command", required=True, metavar="ACTION"
    )
    add = agent.add_parser(
        "add", help="register an agent's enrollment token for sites; delivers current certs"
    )
    add.add_argument("token", help="the line `certdrop-agent enroll` printed on the NAS")
    add.add_argument(
        "--site", action="append", required=True, dest="sites", help="a site it receives (repeat)"
    )
    add.set_defaults(run=fleet_commands.agent_add)
    invite = agent.add_parser(
        "invite",
        help="print one line that sets a NAS up (`certdrop-agent join LINE`); approve it after",
    )
    invite.add_argument("agent_id", help="the id the NAS will have (e.g. nas-01)")
    invite.add_argument(
        "--site", action="append", required=True, dest="sites", help="a site it receives (repeat)"
    )
    invite.add_argument(
        "--source",
        help="where the agent polls, when not this store (e.g. an https:// mirror); AWS mode"
        " makes the agent its own IAM user instead",
    )
    invite.add_argument(
        "--source-credentials",
        help="an AWS shared-credentials file ([default]) of read credentials for --source",
    )
    invite.add_argument(
        "--valid-for",
        type=fleet_commands.valid_days,
        default=7.0,
        metavar="DAYS",
        help="days until it expires (7; at most 30)",
    )
    invite.set_defaults(run=fleet_commands.agent_invite)
    pending = agent.add_parser("pending", help="invitations not approved yet, and whether joined")
    pending.set_defaults(run=fleet_commands.agent_pending)
    approve = agent.add_parser(
        "approve", help="check a joined NAS's enrollment against its invitation and register it"
    )
    approve.add_argument("agent_id")
    approve.add_argument(
        "--enrollment", help="the enrollment `join` printed (a read-only source), instead"
    )
    approve.set_defaults(run=fleet_commands.agent_approve)
    listing = agent.add_parser("list", help="show registered agents and their sites")
    listing.set_defaults(run=fleet_commands.agent_list)
    resign = agent.add_parser(
        "resign",
        help="sign an agent's record as it stands (a store from before records were signed)",
    )
    resign.add_argument("agent_id")
    resign.set_defaults(run=fleet_commands.agent_resign)
    remove = agent.add_parser("remove", help="delete an agent's registration and its objects")
    remove.add_argument("agent_id")
    remove.set_defaults(run=fleet_commands.agent_remove)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from cloud import log as log_setup
    from cloud.cli.exit_codes import exit_code
    from cloud.errors import CertdropError
    from nas_agent.errors import AgentError

    log_setup.setup(verbose=args.verbose, json_lines=args.json_logs or None)
    try:
        return args.run(args)
    except (CertdropError, AgentError) as exc:
        # One clear line (the config error lists each problem below it).
        print(f"certdrop: error: {exc}", file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
