"""The commands that look after the fleet: `status`, `site`, `dashboard`, `agent`, `doctor`."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Mapping
from datetime import UTC, datetime

from cloud import config as config_module
from cloud.acme.challenge_types import ChallengeType
from cloud.cli.exit_codes import EXIT_DNS, EXIT_DOCTOR, EXIT_OK, exit_code
from cloud.config import KeyCustody
from cloud.errors import AgentConflict, CertdropError, ConfigError, ConfigProblem
from cloud.pipeline import parts
from nas_agent import store_layout


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
            challenge=args.challenge,
            wildcard=not args.no_wildcard,
            extra_names=tuple(args.extra_names),
            key_type=args.key_type,
            profile=args.profile,
            key_custody=args.key_custody,
        ),
    )
    site = config.sites[args.site_id]
    print(f"site {site.id} added: {', '.join(site.names)}; `certdrop run` issues it")
    if site.key_custody is KeyCustody.AGENT:
        print("its keys are made on each NAS: an agent's certificate follows its first CSR")
    if site.challenge is ChallengeType.DNS_PERSIST_01:
        print(f"create its record once: certdrop site persist-record {site.id}")
    return EXIT_OK


def site_list(args: argparse.Namespace) -> int:
    config = config_module.load(args.config)
    if not config.sites:
        print("no sites configured; add one with `certdrop site add`")
        return EXIT_OK
    width = max(len(s) for s in config.sites)
    for site in config.sites.values():
        extra = f", profile {site.profile}" if site.profile else ""
        if site.key_custody is KeyCustody.AGENT:
            extra += ", keys made by its agents (agent custody)"
        how = site.provider or site.challenge.value
        print(
            f"{site.id:<{width}}  {site.key_type.value:<8}  {how}  {', '.join(site.names)}{extra}"
        )
    return EXIT_OK


def site_remove(args: argparse.Namespace) -> int:
    from cloud.config.edit import forget_site, remove_site
    from cloud.keys.issuer import is_initialized

    config = config_module.load(args.config)
    parts.site(config, args.site_id)  # an unknown site is refused before anything changes
    keys = parts.keystore(config)
    publisher = parts.publisher(config) if is_initialized(keys) else None
    store = parts.store(config)
    # While the site's provider is still in the file: TXT values its runs left go first.
    left = parts.sweep(config, args.site_id, store, lambda: datetime.now(UTC))
    agents = forget_site(store, publisher, args.site_id)
    remove_site(args.config, args.site_id)
    print(
        f"site {args.site_id} removed from {args.config} and the store; "
        f"withdrawn from {agents} agent(s), which keep the certificate they have"
    )
    if left:
        print(
            f"{left} TXT value(s) it placed could not be removed yet: every `certdrop run` and"
            " tick tries again (`certdrop status` lists them)"
        )
        return EXIT_DNS
    return EXIT_OK


def future_date(text: str) -> datetime:
    """`--persist-until`: a day to come, as its first moment in UTC."""
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: write YYYY-MM-DD") from None
    if day <= datetime.now(UTC):
        raise argparse.ArgumentTypeError(f"{text} has passed: give a day to come")
    return day


def valid_days(text: str) -> float:
    """`agent invite --valid-for`: days above 0 and at most MAX_INVITE_VALIDITY's. float()
    alone takes nan and inf (timedelta then raises) and a past expiry (an invitation that
    approve can only refuse)."""
    from cloud.publish.invites import MAX_INVITE_VALIDITY

    most = MAX_INVITE_VALIDITY.days
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not 0 < days <= most:  # False for nan too
        raise argparse.ArgumentTypeError(f"{text} days: give more than 0 and at most {most}")
    return days


def site_persist_record(args: argparse.Namespace) -> int:
    from cloud.acme.client import AcmeClient
    from cloud.dns01.persist.howto import render
    from cloud.errors import AcmeError

    config = config_module.load(args.config)
    site = parts.site(config, args.site_id)
    acme = AcmeClient(config.ca, parts.keystore(config))
    acme.connect()  # loads the account, registering it on first use: the record names it
    if not acme.caa_identities:
        raise AcmeError(
            "noIssuerDomain",
            f"the CA's directory {config.ca.directory} lists no caaIdentities, so the issuer "
            "domain a dns-persist-01 record must name is unknown: ask the CA for it",
        )
    text = render(
        site.id,
        site.names,
        acme.caa_identities,
        acme.account_uri,
        config.ca.directory,
        args.persist_until,
    )
    print(text)
    if site.challenge is not ChallengeType.DNS_PERSIST_01:
        print(f'Site {site.id} still uses {site.challenge.value}: set challenge = "dns-persist-01"')
    return EXIT_OK


def doctor(args: argparse.Namespace) -> int:
    from cloud.acme.client import AcmeClient
    from cloud.doctor import run_checks
    from cloud.doctor.report import Context
    from cloud.store import Store

    config = config_module.load(args.config)

    @functools.cache
    def store() -> Store:
        return parts.store(config)

    @functools.cache
    def acme() -> AcmeClient:  # only for the checks that need the CA, once
        client = AcmeClient(config.ca, parts.keystore(config))
        client.connect()
        return client

    reports = run_checks(Context(config, datetime.now(UTC), acme, store))
    print("\n\n".join(report.render() for report in reports))
    failed = [r for r in reports if not r.ok]
    if failed:
        print(f"\ndoctor: {len(failed)} of {len(reports)} check(s) failed")
        return EXIT_DOCTOR
    print(f"\ndoctor: all {len(reports)} check(s) passed")
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
    before = publisher.registry.get(enrollment.agent_id)
    problem = publisher.registry.problem(before) if before else None
    record = publisher.registry.add(enrollment, sites, datetime.now(UTC))
    delivered, refused = publisher.subscribe(record, sites, _agent_custody(config))
    from cloud.custody import key_requests

    key_requests.sync(publisher, config, datetime.now(UTC), [record])  # agent-custody sites
    if problem is not None:
        print(f"replaced its record, which was not the issuer's ({problem.code})")
    print(f"agent {record.agent_id} receives: {', '.join(record.sites)}")
    return _delivered(sites, delivered, refused)


def agent_invite(args: argparse.Namespace) -> int:
    """Prints the invitation line (it holds secrets: shown once, never logged)."""
    from datetime import UTC, datetime, timedelta

    from cloud.publish.invites import Invites
    from nas_agent.ids import is_agent_id

    config = config_module.load(args.config)
    if not is_agent_id(args.agent_id):
        raise ConfigError(
            [ConfigProblem("agent_id", f"{args.agent_id!r} is not an agent id", "use a-z, 0-9, -")],
            "certdrop agent invite",
        )
    sites = {site: parts.site(config, site).domain for site in dict.fromkeys(args.sites)}
    store = parts.store(config)
    publisher = parts.publisher(config, store)
    if publisher.registry.get(args.agent_id) is not None:
        raise AgentConflict(args.agent_id)
    source = _invite_source(config, args)
    invitation = Invites(store, publisher.signer).create(
        args.agent_id, sites, source, datetime.now(UTC), timedelta(days=args.valid_for)
    )
    print(
        f"invitation for {args.agent_id} ({', '.join(sites)}), valid until"
        f" {invitation.expires_at:%Y-%m-%d %H:%M} UTC, for one NAS. On it, in the package's"
        " wizard or as `certdrop-agent join LINE --dsm-user USER`; then"
        f" `certdrop agent approve {args.agent_id}`. The line holds secrets: pass it on privately."
    )
    print(invitation.line())
    return EXIT_OK


def _invite_source(config: config_module.Config, args: argparse.Namespace) -> dict[str, str]:
    """Where the invited agent polls: --source, else this store (a directory every NAS can
    read, such as a share, or the bucket). An s3:// source in this store's bucket carries its
    region and endpoint (MinIO and the like). Its credentials are --source-credentials when
    given, else in AWS mode a new IAM identity of the agent's own."""
    url = args.source or config.storage.store_url
    source = {"url": url}
    if _bucket(url) is not None and _bucket(url) == _bucket(config.storage.store_url):
        for option in ("region", "endpoint_url"):
            value = getattr(config.storage, option)
            if value:
                source[option] = value
    if args.source_credentials:
        if _bucket(url) is None:
            problem = ConfigProblem(
                "--source-credentials",
                f"only an s3:// source takes S3 credentials, not {url}",
                "leave it out, or give an s3:// --source",
            )
            raise ConfigError([problem])
        source.update(_credentials_from(args.source_credentials))
    elif not args.source and config.storage.key_secrets is not None and url.startswith("s3://"):
        from cloud.aws.agent_identity import create_agent_identity

        source.update(create_agent_identity(args.agent_id, config.storage))
    return source


def _bucket(url: str) -> str | None:
    """The bucket of an s3:// URL; None for any other."""
    return url[len("s3://") :].split("/", 1)[0] if url.startswith("s3://") else None


def _credentials_from(path: str) -> dict[str, str]:
    import configparser

    parser = configparser.ConfigParser()
    parser.read(path, encoding="utf-8")
    section = parser["default"]
    return {
        "access_key_id": section["aws_access_key_id"],
        "secret_access_key": section["aws_secret_access_key"],
    }


def agent_pending(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from cloud.publish.invites import Invites

    config = config_module.load(args.config)
    store = parts.store(config)
    pending = Invites(store, parts.publisher(config, store).signer).pending(datetime.now(UTC))
    if not pending:
        print("no open invitations")
        return EXIT_OK
    width = max(len(p.agent_id) for p in pending)
    print(f"{'AGENT':<{width}}  {'EXPIRES':<16}  {'JOINED':<6}  {'APPROVABLE':<26}  SITES")
    for p in pending:
        state = "yes" if p.problem is None else p.problem
        joined = "yes" if p.joined else "no"
        print(
            f"{p.agent_id:<{width}}  {p.expires_at:%Y-%m-%d %H:%M}  {joined:<6}  {state:<26}"
            f"  {', '.join(p.sites)}"
        )
    return EXIT_OK


def agent_approve(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from cloud.publish.invites import Invites

    config = config_module.load(args.config)
    store = parts.store(config)
    publisher = parts.publisher(config, store)
    invites = Invites(store, publisher.signer)
    posted = args.enrollment.encode("utf-8") if args.enrollment else None
    record, enrollment, etag = invites.check(args.agent_id, datetime.now(UTC), posted)
    # Used up first (a conditional delete): of two approvals racing, only one registers.
    invites.consume(args.agent_id, etag)
    registered = publisher.registry.add(enrollment, record.sites, datetime.now(UTC))
    delivered, refused = publisher.subscribe(registered, record.sites, _agent_custody(config))
    from cloud.custody import key_requests

    key_requests.sync(publisher, config, datetime.now(UTC), [registered])  # agent custody
    print(f"agent {registered.agent_id} approved; it receives: {', '.join(registered.sites)}")
    return _delivered(record.sites, delivered, refused)


def _delivered(
    sites: tuple[str, ...], delivered: list[str], refused: Mapping[str, CertdropError]
) -> int:
    """What a new agent got at once, printed; exit 5 when an escrow copy could not be used."""
    if delivered:
        print(f"  delivered current certificates of: {', '.join(delivered)}")
    waiting = [s for s in sites if s not in delivered and s not in refused]
    if waiting:
        print(f"  not issued yet (delivered at first issuance): {', '.join(waiting)}")
    for site, exc in refused.items():
        print(f"  not delivered: {site}: {exc.code}: {exc}", file=sys.stderr)
    return exit_code(next(iter(refused.values()))) if refused else EXIT_OK


def agent_list(args: argparse.Namespace) -> int:
    from cloud.keys.issuer import is_initialized, load_issuer
    from cloud.keys.rotation import signer_for
    from cloud.publish.registry import AgentRegistry, record_problem

    config = config_module.load(args.config)
    store = parts.store(config)
    records = AgentRegistry(store).all()
    if not records:
        print("no agents registered; on a NAS run `certdrop-agent enroll`, then `agent add`")
        return EXIT_OK
    keys = parts.keystore(config)
    issuer = signer_for(load_issuer(keys), store).trusted if is_initialized(keys) else None
    width = max(len(r.agent_id) for r in records)
    print(f"{'AGENT':<{width}}  {'ADDED':<16}  {'RECORD':<24}  SITES")
    for r in records:
        problem = record_problem(r, issuer) if issuer else None
        trust = problem.code if problem else "signed" if issuer else "not checked"
        print(
            f"{r.agent_id:<{width}}  {r.added_at:%Y-%m-%d %H:%M}  {trust:<24}  {', '.join(r.sites)}"
        )
    return EXIT_OK


def agent_resign(args: argparse.Namespace) -> int:
    config = config_module.load(args.config)
    record = parts.publisher(config).registry.resign(args.agent_id)
    print(
        f"agent {record.agent_id} record signed as the store holds it: sites "
        f"{', '.join(record.sites) or 'none'}; token {record.token}"
    )
    return EXIT_OK


def agent_remove(args: argparse.Namespace) -> int:
    config = config_module.load(args.config)
    store = parts.store(config)
    removed = parts.publisher(config, store).remove_agent(args.agent_id)
    store.delete(store_layout.invite(args.agent_id))
    print(f"agent {args.agent_id} removed ({removed} object(s) deleted)")
    if config.storage.key_secrets is not None and config.storage.store_url.startswith("s3://"):
        from cloud.aws.agent_identity import delete_agent_identity

        if delete_agent_identity(args.agent_id, config.storage):
            print("  its IAM user and access keys deleted")
    return EXIT_OK


def _agent_custody(config: config_module.Config) -> frozenset[str]:
    """The sites whose keys their agents make: a new agent is sent nothing of theirs."""
    return frozenset(s.id for s in config.sites.values() if s.key_custody is KeyCustody.AGENT)
