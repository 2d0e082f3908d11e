"""The ACME account's commands: `account rollover`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from cloud import config as config_module
from cloud.acme.account_key import EXAMPLE, AccountKeyRef, parse_ref
from cloud.cli.exit_codes import EXIT_OK
from cloud.pipeline import parts

if TYPE_CHECKING:
    from cloud.acme.key_change import Rollover


def account_key_argument(text: str) -> AccountKeyRef:
    """`--to`: the grammar of `ca.account_key`."""
    try:
        return parse_ref(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}: {EXAMPLE}") from None


def rollover(args: argparse.Namespace) -> int:
    """Moves the account to the key `--to` names (RFC 8555 key rollover: its URL stays), then
    sets `ca.account_key` in the configuration file, then moves the dry runs' account too."""
    from cloud.acme.key_change import roll_over_account
    from cloud.config.edit import set_account_key

    config = config_module.load(args.config)
    keys = parts.keystore(config)
    moved = roll_over_account(config.ca, keys, args.to)
    assert moved is not None  # raises when there is no account
    set_account_key(args.config, args.to)
    print(
        f"ACME account {moved.uri} ({moved.directory}): {_moved(moved)}; its URL, and every"
        " dns-persist-01 record naming it, stay valid\n"
        f'{args.config}: ca.account_key = "{moved.new}"'
    )
    if config.storage.key_secrets is not None:
        print(
            "upload it now, so the functions sign with the new key: aws s3 cp "
            f"{args.config} s3://BUCKET/config/certdrop.toml"
        )
    staging = roll_over_account(config.ca, keys, args.to, staging=True)
    if staging is not None:
        print(f"dry runs' account {staging.uri} ({staging.directory}): {_moved(staging)}")
    return EXIT_OK


def _moved(rollover: Rollover) -> str:
    if rollover.old == rollover.new:
        return f"already signs with {rollover.new}"
    return f"key {rollover.old} replaced by {rollover.new}"
