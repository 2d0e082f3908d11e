"""The commands that issue and publish: `init`, `issue`, `run`, `alerts`."""

from __future__ import annotations

import argparse
import sys

from cloud import config as config_module
from cloud.cli.exit_codes import EXIT_CONFIG, EXIT_OK, exit_code
from cloud.errors import CertdropError
from cloud.pipeline import parts


def init(args: argparse.Namespace) -> int:
    from cloud.keys.issuer import init_issuer, public_lines

    config = config_module.load(args.config)
    issuer = init_issuer(parts.keystore(config))
    issuer_line, escrow_line = public_lines(issuer)
    print(
        f"issuer keys created in {_keys_location(config)}\n"
        f"give every agent this line as issuer_key in its configuration:\n  {issuer_line}\n"
        f"escrow public key:\n  {escrow_line}"
    )
    return EXIT_OK


def _keys_location(config: config_module.Config) -> str:
    if config.storage.key_secrets is not None:
        return "Secrets Manager"
    return f"{config.storage.keys_dir} (owner-only files)"


def issue(args: argparse.Namespace) -> int:
    """The pipeline, forced, for one site: the same lock, state, order resume, ARI `replaces`
    and schedule as `certdrop run` and the Lambda."""
    from cloud.cli.pem_files import write_pem_files
    from cloud.keys.issuer import is_initialized
    from cloud.pipeline.site_run import Runner

    config = config_module.load(args.config)
    store = parts.store(config)
    keys = parts.keystore(config)
    site_id = parts.site(config, args.site).id
    publisher = parts.publisher(config, store) if is_initialized(keys) else None
    outcome = Runner(config, store, keys, publisher).run_site(site_id, force=True)
    if outcome.error is not None:
        raise outcome.error
    cert = outcome.certificate
    assert cert is not None  # a forced run that did not fail issued
    if outcome.version is not None:
        published = f"version {outcome.version}"
    else:
        published = "not published: run `certdrop init` to create the issuer keys"
    lines = [
        f"issued {cert.site}: {', '.join(cert.names)}",
        f"  key type     {cert.key_type.value}",
        f"  serial       {cert.serial:x}",
        f"  valid        {cert.not_before:%Y-%m-%d %H:%M} to {cert.not_after:%Y-%m-%d %H:%M} UTC",
        f"  issuer       {cert.issuer_cn}",
        f"  sha256       {cert.fingerprint_sha256}",
        f"  published    {published}",
    ]
    if args.out:
        paths = write_pem_files(args.out, cert)
        lines.append(f"  written to   {paths['fullchain.pem'].parent}")
    print("\n".join(lines))
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from cloud.pipeline.schedule import due_sites, read_markers
    from cloud.pipeline.site_run import Runner

    config = config_module.load(args.config)
    store = parts.store(config)
    if args.sites:
        site_ids = [parts.site(config, s).id for s in dict.fromkeys(args.sites)]
    elif args.force:
        site_ids = list(config.sites)
    else:
        due = due_sites(config.sites, read_markers(store), datetime.now(UTC))
        site_ids = [d.site for d in due]
    code = EXIT_OK
    if not site_ids:
        print("no site is due")
    else:
        runner = Runner(config, store, parts.keystore(config), parts.publisher(config, store))
        outcomes = runner.run_many(site_ids, concurrency=args.concurrency, force=args.force)
        width = max(len(o.site) for o in outcomes)
        for o in outcomes:
            version = f"v{o.version}" if o.version else "-"
            print(f"{o.site:<{width}}  {o.result:<8}  {version:<5}  {o.reason}")
        # A site another run holds is not a failure of this run: its row says so.
        failed = [o.error for o in outcomes if o.result == "failed" and o.error is not None]
        code = exit_code(failed[0]) if failed else EXIT_OK
    if config.alerts is None:
        return code
    # After the runs, so their failures are alerted now; the runs' exit code comes first.
    return code or _send_alerts(config, config.alerts, store)


def _send_alerts(config: config_module.Config, alerts: config_module.AlertsConfig, store) -> int:
    from datetime import UTC, datetime

    from cloud.fleet.alerts.evaluate import channels_for, evaluate_and_send

    try:
        notices = evaluate_and_send(config, store, datetime.now(UTC), channels_for(alerts))
    except CertdropError as exc:
        print(f"certdrop: error: {exc}", file=sys.stderr)
        return exit_code(exc)
    _print_notices(notices, "sent")
    return EXIT_OK


def unlock(args: argparse.Namespace) -> int:
    """Shows who holds the site's lock and, once confirmed, deletes that lock (and only it)."""
    from datetime import UTC, datetime

    from cloud.pipeline.lock import break_lock, read_holder

    config = config_module.load(args.config)
    store = parts.store(config)
    site_id = parts.site(config, args.site).id
    holder = read_holder(store, site_id)
    if holder is None:
        print(f"site {site_id} is not locked")
        return EXIT_OK
    state = "no longer running" if holder.dead() else "possibly still running"
    left = holder.expires_at - datetime.now(UTC)
    print(
        f"site {site_id} is locked by {holder.describe()}, {state}; "
        f"the lock expires at {holder.expires_at:%Y-%m-%d %H:%M:%S} UTC "
        f"({max(left.total_seconds(), 0) / 60:.0f} min)"
    )
    if not args.yes:
        print("Breaking a live run's lock lets a second run order at the same time.")
        try:
            answer = input(f"type the site id ({site_id}) to break the lock: ").strip()
        except EOFError:  # no terminal: nothing was confirmed
            answer = ""
        if answer != site_id:
            print("not broken")
            return EXIT_CONFIG
    break_lock(store, site_id, holder)
    print(f"lock of {site_id} broken")
    return EXIT_OK


def alerts(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from cloud.fleet.alerts import evaluate

    config = config_module.load(args.config)
    store = parts.store(config)
    now = datetime.now(UTC)
    if args.dry_run:
        _print_notices(evaluate.due_notices(config, store, now).notices, "would send")
        return EXIT_OK
    channels = evaluate.channels_for(evaluate.required(config))
    _print_notices(evaluate.evaluate_and_send(config, store, now, channels), "sent")
    return EXIT_OK


def _print_notices(notices, verb: str) -> None:
    print(f"alerts {verb}: {len(notices) or 'none (nothing new, changed or due a reminder)'}")
    for n in notices:
        print(f"  {n.reason:<8}  {n.alert.severity:<8}  {n.alert.message}")
