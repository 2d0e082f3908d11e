"""The commands that look after the fleet: `status`, `site`, `dashboard`, `agent`."""

from __future__ import annotations

import argparse

from cloud import config as config_module
from cloud.cli.exit_codes import EXIT_OK
from cloud.pipeline import parts


def status(args: argparse.Namespace) -> int:
    import json
    from datetime import UTC, datetime

    from cloud.fleet.status import collect
    from cloud.fleet.status_table import render

    config = config_module.load(args.config)
    status = collect(config, parts.store(config), datetime.now(UTC))
    print(json.dumps(status.as_json(), indent=2) if args.json else render(status))
    return EXIT_OK


def site_add(args: argparse.Namespace) -> int:
    from cloud.config.edit import NewSite, add_site

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


def site_list(args: argparse.Namespace) -> int:
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


def site_remove(args: argparse.Namespace) -> int:
    from cloud.config.edit import forget_site, remove_site
    from cloud.keys.issuer import is_initialized

    config = config_module.load(args.config)
    parts.site(config, args.site_id)  # an unknown site is refused before anything changes
    keys = parts.keystore(config)
    publisher = parts.publisher(config) if is_initialized(keys) else None
    agents = forget_site(parts.store(config), publisher, args.site_id)
    remove_site(args.config, args.site_id)
    print(
        f"site {args.site_id} removed from {args.config} and the store; "
        f"withdrawn from {agents} agent(s), which keep the certificate they have"
    )
    return EXIT_OK


def dashboard(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from cloud.fleet.dashboard import make_app
    from cloud.fleet.dashboard.server import local_server, url_of
    from cloud.fleet.status import collect

    def load():
        config = config_module.load(args.config)  # each request: edits show without a restart
        return collect(config, parts.store(config), datetime.now(UTC))

    load()  # a bad configuration or an unreadable store fails here, not on the first request
    server = local_server(make_app(load), args.host, args.port)
    print(f"fleet dashboard at {url_of(server)} (read-only; Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return EXIT_OK


def agent_add(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from nas_agent.enrollment import parse_enrollment_token

    config = config_module.load(args.config)
    sites = tuple(dict.fromkeys(args.sites))
    for site in sites:
        parts.site(config, site)  # an unknown site is a configuration error
    enrollment = parse_enrollment_token(args.token)
    publisher = parts.publisher(config)
    record = publisher.registry.add(enrollment, sites, datetime.now(UTC))
    delivered = publisher.subscribe(record, sites)
    waiting = [s for s in sites if s not in delivered]
    print(f"agent {record.agent_id} receives: {', '.join(record.sites)}")
    if delivered:
        print(f"  delivered current certificates of: {', '.join(delivered)}")
    if waiting:
        print(f"  not issued yet (delivered at first issuance): {', '.join(waiting)}")
    return EXIT_OK


def agent_list(args: argparse.Namespace) -> int:
    from cloud.publish.registry import AgentRegistry

    config = config_module.load(args.config)
    records = AgentRegistry(parts.store(config)).all()
    if not records:
        print("no agents registered; on a NAS run `certdrop-agent enroll`, then `agent add`")
        return EXIT_OK
    width = max(len(r.agent_id) for r in records)
    print(f"{'AGENT':<{width}}  {'ADDED':<16}  SITES")
    for r in records:
        print(f"{r.agent_id:<{width}}  {r.added_at:%Y-%m-%d %H:%M}  {', '.join(r.sites)}")
    return EXIT_OK


def agent_remove(args: argparse.Namespace) -> int:
    config = config_module.load(args.config)
    removed = parts.publisher(config).remove_agent(args.agent_id)
    print(f"agent {args.agent_id} removed ({removed} object(s) deleted)")
    return EXIT_OK
