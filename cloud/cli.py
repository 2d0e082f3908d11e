"""`certdrop`: the operator's command line. Translates arguments into calls of the core.

Exit codes: 0 done; 1 unexpected failure (a bug: the traceback is printed); 2 bad usage,
configuration or request (unknown site or agent, bad token, issuer not initialized); 3 DNS
(provider, propagation); 4 ACME (CA refused, rate limit, validation); 5 object store or key
store; 6 the issued certificate failed our checks; 7 alerts could not be delivered (they are
sent again at the next evaluation).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from cloud import config as config_module
from cloud import log as log_setup
from cloud import runtime
from cloud.errors import (
    AcmeError,
    AlertDeliveryFailed,
    CertdropError,
    ConfigError,
    DnsError,
    IssuanceError,
    SecretError,
    StoreError,
)
from nas_agent.errors import AgentError

log = logging.getLogger("cloud.cli")

EXIT_OK, EXIT_BUG, EXIT_CONFIG, EXIT_DNS, EXIT_ACME, EXIT_STORE, EXIT_ISSUED, EXIT_ALERTS = range(8)
_EXIT_BY_ERROR = (
    (AlertDeliveryFailed, EXIT_ALERTS),
    (ConfigError, EXIT_CONFIG),
    (SecretError, EXIT_CONFIG),
    (DnsError, EXIT_DNS),
    (AcmeError, EXIT_ACME),
    (StoreError, EXIT_STORE),
    (IssuanceError, EXIT_ISSUED),
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="certdrop",
        description="Issue wildcard certificates by ACME DNS-01 and deliver them to NAS agents.",
    )
    parser.add_argument(
        "--config", "-c", type=Path, default=Path("certdrop.toml"), help="configuration file"
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    parser.add_argument("--json-logs", action="store_true", help="log JSON lines")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = commands.add_parser("init", help="create the issuer's signing and escrow keys (once)")
    init.set_defaults(run=_init)

    issue = commands.add_parser(
        "issue", help="issue one site's certificate now and publish it to its agents"
    )
    issue.add_argument("site", help="the site id (a [sites.ID] table of the configuration)")
    issue.add_argument("--out", type=Path, help="also write privkey/cert/chain/fullchain PEMs here")
    issue.set_defaults(run=_issue)

    run = commands.add_parser(
        "run", help="issue and publish every site that is due (renewal policy), or the given ones"
    )
    run.add_argument("--site", action="append", dest="sites", help="only this site (repeat)")
    run.add_argument("--force", action="store_true", help="issue even when not due")
    run.add_argument("--concurrency", type=int, default=4, help="sites issued at once")
    run.set_defaults(run=_run)

    alerts = commands.add_parser(
        "alerts", help="send the fleet's alerts that are new, changed or due a reminder, now"
    )
    alerts.add_argument(
        "--dry-run", action="store_true", help="show what would be sent; send and record nothing"
    )
    alerts.set_defaults(run=_alerts)

    status = commands.add_parser("status", help="sites and agents: certificates, renewals, reports")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(run=_status)

    site = commands.add_parser("site", help="the sites of the configuration").add_subparsers(
        dest="site_command", required=True, metavar="ACTION"
    )
    site_add = site.add_parser("add", help="add a site to the configuration file")
    site_add.add_argument("site_id", help="its id: lower-case letters, digits, '.' and '-'")
    site_add.add_argument("--domain", required=True, help="the apex, e.g. example.com")
    site_add.add_argument("--provider", required=True, help="a [providers.NAME] of the file")
    site_add.add_argument("--no-wildcard", action="store_true", help="the apex only")
    site_add.add_argument("--extra-name", action="append", default=[], dest="extra_names")
    site_add.add_argument("--key-type", help="ec-p256 (default), ec-p384, rsa-2048/3072/4096")
    site_add.add_argument("--profile", help="an ACME profile the CA offers")
    site_add.set_defaults(run=_site_add)
    site_list = site.add_parser("list", help="show the configured sites")
    site_list.set_defaults(run=_site_list)
    site_remove = site.add_parser(
        "remove", help="remove a site from the file, its agents' entries and its state"
    )
    site_remove.add_argument("site_id")
    site_remove.set_defaults(run=_site_remove)

    dashboard = commands.add_parser(
        "dashboard", help="serve the read-only fleet dashboard: who has which certificate, expiries"
    )
    dashboard.add_argument("--port", type=int, default=8080, help="port (0: any free port)")
    dashboard.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (the page has no login)"
    )
    dashboard.set_defaults(run=_dashboard)

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
    add.set_defaults(run=_agent_add)
    listing = agent.add_parser("list", help="show registered agents and their sites")
    listing.set_defaults(run=_agent_list)
    remove = agent.add_parser("remove", help="delete an agent's registration and its objects")
    remove.add_argument("agent_id")
    remove.set_defaults(run=_agent_remove)
    return parser


def _init(args: argparse.Namespace) -> int:
    from cloud.issuer import init_issuer, public_lines

    config = config_module.load(args.config)
    issuer = init_issuer(runtime.keystore(config))
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


def _issue(args: argparse.Namespace) -> int:
    from cloud.issuer import is_initialized
    from cloud.output import write_pem_files

    config = config_module.load(args.config)
    object_store = runtime.store(config)
    cert = runtime.issue_site(config, args.site, object_store=object_store)
    if is_initialized(runtime.keystore(config)):
        state = runtime.publisher(config, object_store).publish(cert)
        published = f"version {state.current.version}"
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


def _run(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from cloud.runner import Runner
    from cloud.schedule import due_sites, read_markers

    config = config_module.load(args.config)
    store = runtime.store(config)
    if args.sites:
        site_ids = [runtime.site(config, s).id for s in dict.fromkeys(args.sites)]
    elif args.force:
        site_ids = list(config.sites)
    else:
        due = due_sites(config.sites, read_markers(store), datetime.now(UTC))
        site_ids = [d.site for d in due]
    code = EXIT_OK
    if not site_ids:
        print("no site is due")
    else:
        runner = Runner(config, store, runtime.keystore(config))
        outcomes = runner.run_many(site_ids, concurrency=args.concurrency, force=args.force)
        width = max(len(o.site) for o in outcomes)
        for o in outcomes:
            version = f"v{o.version}" if o.version else "-"
            print(f"{o.site:<{width}}  {o.result:<8}  {version:<5}  {o.reason}")
        failed = [o.error for o in outcomes if o.error is not None]
        code = _exit_code(failed[0]) if failed else EXIT_OK
    if config.alerts is None:
        return code
    # After the runs, so their failures are alerted now; the runs' exit code comes first.
    return code or _send_alerts(config, store)


def _send_alerts(config: config_module.Config, store) -> int:
    from datetime import UTC, datetime

    from cloud.alerting import channels_for, evaluate_and_send

    try:
        notices = evaluate_and_send(config, store, datetime.now(UTC), channels_for(config.alerts))
    except CertdropError as exc:
        print(f"certdrop: error: {exc}", file=sys.stderr)
        return _exit_code(exc)
    _print_notices(notices, "sent")
    return EXIT_OK


def _alerts(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from cloud import alerting

    config = config_module.load(args.config)
    store = runtime.store(config)
    now = datetime.now(UTC)
    if args.dry_run:
        _print_notices(alerting.due_notices(config, store, now).notices, "would send")
        return EXIT_OK
    channels = alerting.channels_for(alerting.required(config))
    _print_notices(alerting.evaluate_and_send(config, store, now, channels), "sent")
    return EXIT_OK


def _print_notices(notices, verb: str) -> None:
    print(f"alerts {verb}: {len(notices) or 'none (nothing new, changed or due a reminder)'}")
    for n in notices:
        print(f"  {n.reason:<8}  {n.alert.severity:<8}  {n.alert.message}")


def _status(args: argparse.Namespace) -> int:
    import json
    from datetime import UTC, datetime

    from cloud.fleet import collect
    from cloud.status_table import render

    config = config_module.load(args.config)
    status = collect(config, runtime.store(config), datetime.now(UTC))
    print(json.dumps(status.as_json(), indent=2) if args.json else render(status))
    return EXIT_OK


def _site_add(args: argparse.Namespace) -> int:
    from cloud.sites import NewSite, add_site

    config = add_site(
        args.config,
        NewSite(
            site_id=args.site_id,
            domain=args.domain,
            provider=args.provider,
            wildcard=not args.no_wildcard,
            extra_names=tuple(args.extra_names),
            key_type=args.key_type,
            profile=args.profile,
        ),
    )
    site = config.sites[args.site_id]
    print(f"site {site.id} added: {', '.join(site.names)}; `certdrop run` issues it")
    return EXIT_OK


def _site_list(args: argparse.Namespace) -> int:
    config = config_module.load(args.config)
    if not config.sites:
        print("no sites configured; add one with `certdrop site add`")
        return EXIT_OK
    width = max(len(s) for s in config.sites)
    for site in config.sites.values():
        extra = f", profile {site.profile}" if site.profile else ""
        print(
            f"{site.id:<{width}}  {site.key_type.value:<8}  {site.provider}  "
            f"{', '.join(site.names)}{extra}"
        )
    return EXIT_OK


def _site_remove(args: argparse.Namespace) -> int:
    from cloud.issuer import is_initialized
    from cloud.sites import forget_site, remove_site

    config = config_module.load(args.config)
    runtime.site(config, args.site_id)  # an unknown site is refused before anything changes
    keys = runtime.keystore(config)
    publisher = runtime.publisher(config) if is_initialized(keys) else None
    agents = forget_site(runtime.store(config), publisher, args.site_id)
    remove_site(args.config, args.site_id)
    print(
        f"site {args.site_id} removed from {args.config} and the store; "
        f"withdrawn from {agents} agent(s), which keep the certificate they have"
    )
    return EXIT_OK


def _dashboard(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from cloud.dashboard import make_app
    from cloud.dashboard.server import local_server, url_of
    from cloud.fleet import collect

    def load():
        config = config_module.load(args.config)  # each request: edits show without a restart
        return collect(config, runtime.store(config), datetime.now(UTC))

    load()  # a bad configuration or an unreadable store fails here, not on the first request
    server = local_server(make_app(load), args.host, args.port)
    print(f"fleet dashboard at {url_of(server)} (read-only; Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return EXIT_OK


def _agent_add(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from nas_agent.enrollment import parse_enrollment_token

    config = config_module.load(args.config)
    sites = tuple(dict.fromkeys(args.sites))
    for site in sites:
        runtime.site(config, site)  # an unknown site is a configuration error
    enrollment = parse_enrollment_token(args.token)
    publisher = runtime.publisher(config)
    record = publisher.registry.add(enrollment, sites, datetime.now(UTC))
    delivered = publisher.subscribe(record, sites)
    waiting = [s for s in sites if s not in delivered]
    print(f"agent {record.agent_id} receives: {', '.join(record.sites)}")
    if delivered:
        print(f"  delivered current certificates of: {', '.join(delivered)}")
    if waiting:
        print(f"  not issued yet (delivered at first issuance): {', '.join(waiting)}")
    return EXIT_OK


def _agent_list(args: argparse.Namespace) -> int:
    from cloud.agents import AgentRegistry

    config = config_module.load(args.config)
    records = AgentRegistry(runtime.store(config)).all()
    if not records:
        print("no agents registered; on a NAS run `certdrop-agent enroll`, then `agent add`")
        return EXIT_OK
    width = max(len(r.agent_id) for r in records)
    print(f"{'AGENT':<{width}}  {'ADDED':<16}  SITES")
    for r in records:
        print(f"{r.agent_id:<{width}}  {r.added_at:%Y-%m-%d %H:%M}  {', '.join(r.sites)}")
    return EXIT_OK


def _agent_remove(args: argparse.Namespace) -> int:
    config = config_module.load(args.config)
    removed = runtime.publisher(config).remove_agent(args.agent_id)
    print(f"agent {args.agent_id} removed ({removed} object(s) deleted)")
    return EXIT_OK


def _exit_code(exc: Exception) -> int:
    return next((code for cls, code in _EXIT_BY_ERROR if isinstance(exc, cls)), EXIT_CONFIG)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    log_setup.setup(verbose=args.verbose, json_lines=args.json_logs or None)
    try:
        return args.run(args)
    except (CertdropError, AgentError) as exc:
        # One clear line (the config error lists each problem below it).
        print(f"certdrop: error: {exc}", file=sys.stderr)
        return _exit_code(exc)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
