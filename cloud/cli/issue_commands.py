"""The commands that issue and publish: `init`, `issuer show`, `issue`, `run`, `alerts`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from cloud import config as config_module
from cloud.cli.exit_codes import EXIT_CONFIG, EXIT_DNS, EXIT_OK, EXIT_STORE, exit_code
from cloud.errors import CertdropError
from cloud.pipeline import parts

if TYPE_CHECKING:
    from cloud.acme.order import IssuedCertificate
    from cloud.keys.store import KeyStore
    from cloud.pipeline.site_run import Outcome
    from cloud.store import Store


def init(args: argparse.Namespace) -> int:
    """Probes the store's conditional writes (refused without them, before any key is made),
    then creates the issuer keys."""
    from cloud.keys.issuer import init_issuer, public_lines
    from cloud.store import conditional_writes

    config = config_module.load(args.config)
    store = parts.store(config)
    conditional_writes.require(store, probe_again=True)
    issuer = init_issuer(parts.keystore(config))
    issuer_line, escrow_line = public_lines(issuer)
    print(
        f"object store {store.location}: conditional writes honoured\n"
        f"issuer keys created in {_keys_location(config)}\n"
        f"give every agent this line as issuer_key in its configuration:\n  {issuer_line}\n"
        f"escrow public key:\n  {escrow_line}"
    )
    return EXIT_OK


def issuer_show(args: argparse.Namespace) -> int:
    """The lines `init` printed, again: the public halves of the issuer's keys."""
    from cloud.keys.issuer import load_issuer, public_lines

    config = config_module.load(args.config)
    issuer_line, escrow_line = public_lines(load_issuer(parts.keystore(config)))
    print(
        f"issuer keys in {_keys_location(config)}\n"
        f"every agent's issuer_key:\n  {issuer_line}\n"
        f"escrow public key:\n  {escrow_line}"
    )
    return EXIT_OK


def issuer_rotate(args: argparse.Namespace) -> int:
    """Rotates a key of the issuer's (cloud.keys.rotation), then signs every agent's index and
    registry record, and every escrow statement, again with the signing key in use."""
    from datetime import UTC, datetime

    from cloud.keys import rotation
    from cloud.keys.issuer import load_issuer, public_lines

    config = config_module.load(args.config)
    store, keys = parts.store(config), parts.keystore(config)
    if args.escrow:
        resealed = rotation.rotate_escrow(keys, store)
        _, escrow_line = public_lines(load_issuer(keys))
        print(f"escrow key replaced; {resealed} escrow cop(ies) re-sealed\n  {escrow_line}")
        return EXIT_OK
    from cloud.custody import key_requests
    from cloud.publish.publisher import Publisher

    signed_again: list[tuple[int, int, int, int]] = []

    def resign(signer: rotation.Signer) -> None:
        publisher = Publisher(store, load_issuer(keys), signer=signer)
        records = publisher.registry.resign_all()
        # Before the indexes: a key-requests document is written with its agent's index signed.
        key_requests.sync(publisher, config, datetime.now(UTC))
        indexes = publisher.indexes.resign_due(datetime.now(UTC), force=True)
        statements, unvouched = publisher.escrow_statements.resign_all()
        signed_again.append((len(indexes), records, statements, unvouched))

    if args.compromised:
        rotation.reset_after_compromise(keys, store)
        resign(rotation.signer_for(load_issuer(keys), store))
    else:
        statement = rotation.rotate_signing(keys, store, datetime.now(UTC), resign)
        print(
            f"signing key {statement.previous_key_id} replaced by {statement.new_key_id}"
            f" (rotation {statement.sequence}); agents follow it at their next poll"
        )
    issuer_line, _ = public_lines(load_issuer(keys))
    indexes, records, statements, unvouched = signed_again[-1] if signed_again else (0, 0, 0, 0)
    print(
        f"signed again: {indexes} index(es), {records} registry record(s),"
        f" {statements} escrow statement(s)"
    )
    if unvouched:
        print(
            f"{unvouched} escrow statement(s) signed by no key the issuer holds (the compromised"
            " one, or someone else's): their copies are never delivered; issue their sites"
            " again (`certdrop run --force`)"
        )
    if args.compromised:
        print(
            "new signing key, vouched for by no earlier key: on every NAS set issuer_key to the"
            " line below, check each agent's record (`certdrop agent list`) and sign the ones"
            f" you trust again (`certdrop agent resign ID`):\n  {issuer_line}"
        )
    else:
        print(f"agents enrolled from now on pin:\n  {issuer_line}")
    return EXIT_OK


def _agent_custody_issued(args: argparse.Namespace, outcome: Outcome) -> int:
    """What `issue` did for an agent-custody site: one certificate per NAS, for the key each
    made, so there is no certificate of the site's to print and no key to write."""
    if outcome.error is not None:
        raise outcome.error
    print(f"{outcome.site}  {outcome.result}  {outcome.reason}")
    if args.out is not None:
        print(
            "certdrop: --out: an agent-custody site's keys never leave its NAS units; nothing"
            " written",
            file=sys.stderr,
        )
    return EXIT_STORE if outcome.undelivered else EXIT_OK


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
    if args.dry_run:
        return _dry_run(args, config, store, keys)
    site = parts.site(config, args.site)
    site_id = site.id
    publisher = parts.publisher(config, store) if is_initialized(keys) else None
    runner = Runner(config, store, keys, publisher)
    outcome = runner.run_site(site_id, force=True)
    if site.key_custody is config_module.KeyCustody.AGENT:
        return _agent_custody_issued(args, outcome)
    if outcome.error is None and outcome.certificate is None:
        # A dead run had recorded a certificate: this run published that, ordering nothing.
        # What was asked for is a new one, so the site is run once more.
        print(f"finished version {outcome.version}, which an earlier run had recorded")
        outcome = runner.run_site(site_id, force=True)
    if outcome.error is not None:
        raise outcome.error
    cert = outcome.certificate
    assert cert is not None  # a forced run with nothing recorded to finish issues, or fails
    if outcome.undelivered:
        published = (
            f"version {outcome.version}, not yet delivered to {', '.join(outcome.undelivered)}"
            " (retried by every run)"
        )
    elif outcome.version is not None:
        published = f"version {outcome.version}"
    else:
        published = "not published: run `certdrop init` to create the issuer keys"
    lines = [*_summary(cert), f"  published    {published}"]
    if outcome.leftover_txt:
        left = ", ".join(outcome.leftover_txt)
        lines.append(f"  TXT left     {left} (could not be removed; every run tries again)")
    if args.out:
        paths = write_pem_files(args.out, cert)
        lines.append(f"  written to   {paths['fullchain.pem'].parent}")
    print("\n".join(lines))
    if outcome.undelivered:
        return EXIT_STORE
    return EXIT_DNS if outcome.leftover_txt else EXIT_OK


def _dry_run(
    args: argparse.Namespace, config: config_module.Config, store: Store, keys: KeyStore
) -> int:
    """`issue --dry-run`: the staging CA's certificate, shown (and written with --out) only."""
    from cloud.cli.pem_files import write_pem_files
    from cloud.pipeline.dry_run import dry_run, staging_ca

    staging = staging_ca(config)  # a ConfigError before anything else when there is none
    cert = dry_run(config, store, keys, args.site)
    lines = [
        f"dry run: {staging.directory} (ca.staging_directory), nothing recorded or published",
        *_summary(cert),
    ]
    if args.out:
        paths = write_pem_files(args.out, cert)
        lines.append(f"  written to   {paths['fullchain.pem'].parent}")
    print("\n".join(lines))
    return EXIT_OK


def _summary(cert: IssuedCertificate) -> list[str]:
    """What `issue` shows of a certificate; the issuer is the leaf's (the chain leads on to the
    root named after it)."""
    from cloud.acme.chains import leaf_issuer_cn

    issuer = leaf_issuer_cn(cert.cert_pem)
    if cert.issuer_cn and cert.issuer_cn != issuer:
        issuer = f"{issuer} (chain to {cert.issuer_cn})"
    return [
        f"issued {cert.site}: {', '.join(cert.names)}",
        f"  key type     {cert.key_type.value}",
        f"  serial       {cert.serial:x}",
        f"  valid        {cert.not_before:%Y-%m-%d %H:%M} to {cert.not_after:%Y-%m-%d %H:%M} UTC",
        f"  issuer       {issuer}",
        f"  sha256       {cert.fingerprint_sha256}",
    ]


def run(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from cloud.limiter.plan import pace
    from cloud.pipeline.schedule import (
        due_sites,
        read_csr_posts,
        read_journalled,
        read_markers,
    )
    from cloud.pipeline.site_run import Runner

    config = config_module.load(args.config)
    store = parts.store(config)
    waiting = {}
    if args.sites:
        site_ids = [parts.site(config, s).id for s in dict.fromkeys(args.sites)]
    elif args.force:
        site_ids = list(config.sites)
    else:
        now = datetime.now(UTC)
        markers = read_markers(store)
        posts = read_csr_posts(store, config.sites)
        due = due_sites(config.sites, markers, now, read_journalled(store), posts)
        paced = pace(config, store, due, markers, now)  # within the CA's limits, most urgent first
        site_ids, waiting = list(paced.go), dict(paced.waiting)
    code = EXIT_OK
    if not site_ids and not waiting:
        print("no site is due")
    elif site_ids:
        runner = Runner(config, store, parts.keystore(config), parts.publisher(config, store))
        outcomes = runner.run_many(site_ids, concurrency=args.concurrency, force=args.force)
        width = max(len(o.site) for o in outcomes)
        for o in outcomes:
            version = f"v{o.version}" if o.version else "-"
            print(f"{o.site:<{width}}  {o.result:<8}  {version:<5}  {o.reason}")
        # A site another run holds is not a failure of this run: its row says so.
        failed = [o.error for o in outcomes if o.result == "failed" and o.error is not None]
        if failed:
            code = exit_code(failed[0])
        elif any(o.undelivered for o in outcomes):
            code = EXIT_STORE  # issued, but an agent's prefix could not be written
        elif any(o.leftover_txt for o in outcomes):
            code = EXIT_DNS  # issued, but TXT values stay in DNS (retried every run)
        else:
            code = EXIT_OK
    for wait in waiting.values():  # not a failure: each goes at a later run
        print(f"{wait.site}  waiting  from {wait.go_at:%Y-%m-%d %H:%M} UTC: {wait.describe()}")
    code = code or _resign_indexes(config, store)
    if config.alerts is None:
        return code
    # After the runs, so their failures are alerted now; the runs' exit code comes first.
    return code or _send_alerts(config, config.alerts, store)


def _resign_indexes(config: config_module.Config, store) -> int:
    """Writes the agents' key requests that changed (agent custody), and signs again the
    agents' indexes that near their expiry (an agent refuses an expired one and reports itself
    frozen)."""
    from datetime import UTC, datetime

    from cloud.custody import key_requests
    from cloud.keys.issuer import is_initialized

    if not is_initialized(parts.keystore(config)):
        return EXIT_OK
    try:
        publisher = parts.publisher(config, store)
        written = key_requests.sync(publisher, config, datetime.now(UTC))
        resigned = publisher.resign_indexes()
    except CertdropError as exc:
        print(f"certdrop: error: indexes not signed again: {exc}", file=sys.stderr)
        return exit_code(exc)
    if written:
        print(f"key requests written (agent custody changed): {', '.join(written)}")
    if resigned:
        print(f"signed again before they expire: the indexes of {', '.join(resigned)}")
    return EXIT_OK


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
