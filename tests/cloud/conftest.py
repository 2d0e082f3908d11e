"""The DNS providers' backends, one per provider, each paired with a way to read what it holds.

A `Harness` is a built provider, the zone it writes into, and `held(fqdn)`: the TXT values the
backend really holds at that name, read without going through the provider (BIND and PowerDNS over
DNS with RD off, Route53 and Cloudflare through their APIs, the exec script's JSON file). It is a
list, not a set, so a duplicate would show.

Providers are built from settings typed as `cloud.config` hands them over (`build_provider`
checks nothing). Servers and providers (which keep no state) are made once per session, servers
on free loopback ports; tests use unique names under `example.test.` so they can share them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from cloud.acme.client import AcmeClient
from cloud.dns01.providers import _txt
from cloud.dns01.providers.base import DnsProvider
from cloud.dns01.providers.registry import build_provider
from cloud.dns01.providers.rfc2136 import parse_server
from cloud.secrets import SecretRef
from lab.cloudflare_fake import CloudflareFake
from lab.moto import REGION, MotoServer, fake_aws_env
from lab.powerdns import PowerDns

ZONE = "example.test."


@dataclass(frozen=True)
class Harness:
    provider: DnsProvider
    zone: str
    held: Callable[[str], list[str]]


def dns_txt(host: str, port: int, fqdn: str) -> list[str]:
    """The TXT values an authoritative server answers for `fqdn`, asked over TCP with RD off."""
    import dns.flags
    import dns.message
    import dns.query
    import dns.rdatatype

    query = dns.message.make_query(fqdn, "TXT")
    query.flags &= ~dns.flags.RD
    response = dns.query.tcp(query, host, port=port, timeout=3)
    return [
        b"".join(rdata.strings).decode()
        for rrset in response.answer
        if rrset.rdtype == dns.rdatatype.TXT
        for rdata in rrset
    ]


# --- rfc2136 against BIND (bind_auth and tsig_key come from tests/conftest.py) ---------------


@pytest.fixture(scope="session")
def rfc2136_harness(bind_auth, tsig_key) -> Harness:
    provider = build_provider(
        "rfc2136",
        {
            "server": parse_server(bind_auth.address),
            "tsig_name": tsig_key.name,
            "tsig_secret": tsig_key.secret,
            "tsig_algorithm": tsig_key.algorithm,
        },
    )
    return Harness(provider, ZONE, lambda fqdn: dns_txt(bind_auth.host, bind_auth.port, fqdn))


# --- PowerDNS ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def powerdns_server() -> Iterator[PowerDns]:
    with PowerDns() as server:
        yield server


@pytest.fixture(scope="session")
def powerdns_harness(powerdns_server: PowerDns) -> Harness:
    provider = build_provider(
        "powerdns", {"api_url": powerdns_server.api_url, "api_key": powerdns_server.api_key}
    )
    return Harness(
        provider,
        ZONE,
        lambda fqdn: dns_txt(powerdns_server.address, powerdns_server.port, fqdn),
    )


# --- Route 53 on moto's server --------------------------------------------------------------


@pytest.fixture(scope="session")
def route53_moto() -> Iterator[MotoServer]:
    with fake_aws_env(), MotoServer() as server:
        server.client("route53").create_hosted_zone(Name=ZONE, CallerReference="certdrop-tests")
        yield server


@pytest.fixture(scope="session")
def route53_client(route53_moto: MotoServer) -> Any:
    return route53_moto.client("route53")


def route53_held(client: Any, fqdn: str) -> list[str]:
    zone_id = client.list_hosted_zones_by_name(DNSName=ZONE, MaxItems="1")["HostedZones"][0]["Id"]
    sets = client.list_resource_record_sets(
        HostedZoneId=zone_id, StartRecordName=fqdn, StartRecordType="TXT", MaxItems="1"
    )["ResourceRecordSets"]
    return [
        _txt.unquote(rr["Value"])
        for rrset in sets
        if rrset["Name"] == fqdn and rrset["Type"] == "TXT"
        for rr in rrset["ResourceRecords"]
    ]


@pytest.fixture(scope="session")
def route53_harness(route53_moto: MotoServer, route53_client: Any) -> Harness:
    # The zone is found by name: no hosted_zone_id, as an operator would first try.
    provider = build_provider(
        "route53", {"endpoint_url": route53_moto.endpoint_url, "region": REGION}
    )
    return Harness(provider, ZONE, lambda fqdn: route53_held(route53_client, fqdn))


# --- Cloudflare's API, faked faithfully ----------------------------------------------------------


@pytest.fixture(scope="session")
def cloudflare_fake() -> Iterator[CloudflareFake]:
    with CloudflareFake((ZONE,)) as fake:
        yield fake


def cloudflare_held(fake: CloudflareFake, fqdn: str) -> list[str]:
    response = requests.get(
        f"{fake.api_url}/zones/{fake.zone_id(ZONE)}/dns_records",
        params={"type": "TXT", "name": fqdn.rstrip("."), "per_page": 5000},
        headers={"Authorization": f"Bearer {fake.token}"},
        timeout=5,
    )
    response.raise_for_status()
    return [r["content"] for r in response.json()["result"]]


@pytest.fixture(scope="session")
def cloudflare_harness(cloudflare_fake: CloudflareFake) -> Harness:
    # The zone is found by name (no zone_id), which also exercises GET /zones?name=.
    provider = build_provider(
        "cloudflare", {"api_token": cloudflare_fake.token, "api_url": cloudflare_fake.api_url}
    )
    return Harness(provider, ZONE, lambda fqdn: cloudflare_held(cloudflare_fake, fqdn))


# --- exec: a script keeping values in a JSON file -------------------------------------------------

# Keeps {fqdn: [values]} in the JSON file named by its first argument, with the provider contract.
# Extra behaviour for the exec tests: EXEC_TEST_FAIL=<status> makes it print to stderr and exit with
# that status; EXEC_TEST_HANG=1 makes it block until killed; EXEC_TEST_ECHO=NAME prints $NAME.
TXT_SCRIPT = """\
import json, os, sys, threading
store, action, fqdn, value = sys.argv[1:5]
if os.environ.get("EXEC_TEST_ECHO"):
    print("echo:", os.environ[os.environ["EXEC_TEST_ECHO"]], file=sys.stderr)
if os.environ.get("EXEC_TEST_HANG"):
    threading.Event().wait()
if os.environ.get("EXEC_TEST_FAIL"):
    print("line one\\nthe API said no", file=sys.stderr)
    sys.exit(int(os.environ["EXEC_TEST_FAIL"]))
assert os.environ["CERTDROP_ACTION"] == action and os.environ["CERTDROP_FQDN"] == fqdn
assert os.environ["CERTDROP_VALUE"] == value and os.environ["CERTDROP_ZONE"]
assert int(os.environ["CERTDROP_TTL"]) > 0
data = json.load(open(store)) if os.path.exists(store) else {}
values = data.setdefault(fqdn, [])
if action == "add" and value not in values:
    values.append(value)
elif action == "remove" and value in values:
    values.remove(value)
json.dump(data, open(store, "w"))
"""


@dataclass(frozen=True)
class ExecScript:
    command: list[str]
    store: Path

    def held(self, fqdn: str) -> list[str]:
        if not self.store.exists():
            return []
        return json.loads(self.store.read_text()).get(fqdn, [])


@pytest.fixture(scope="session")
def exec_script(tmp_path_factory: pytest.TempPathFactory) -> ExecScript:
    directory = tmp_path_factory.mktemp("exec-provider")
    script = directory / "txt_store.py"
    script.write_text(TXT_SCRIPT)
    store = directory / "txt.json"
    return ExecScript([sys.executable, str(script), str(store)], store)


@pytest.fixture(scope="session")
def exec_harness(exec_script: ExecScript) -> Harness:
    provider = build_provider("exec", {"command": exec_script.command})
    return Harness(provider, ZONE, exec_script.held)


# --- lexicon: Lexicon's own powerdns provider against the PowerDNS server -------------------------


@pytest.fixture(scope="session")
def lexicon_harness(
    powerdns_server: PowerDns, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    with pytest.MonkeyPatch.context() as env:
        # Lexicon keeps tldextract's cache under $HOME unless told otherwise.
        env.setenv("TLDEXTRACT_CACHE_PATH", str(tmp_path_factory.mktemp("tldextract")))
        env.setenv("CERTDROP_TEST_PDNS_KEY", powerdns_server.api_key)
        provider = build_provider(
            "lexicon",
            {
                "provider": "powerdns",
                "options": {"pdns_server": powerdns_server.api_url},
                "secret_options": {"auth_token": SecretRef("env", "CERTDROP_TEST_PDNS_KEY")},
            },
        )
        yield Harness(
            provider,
            ZONE,
            lambda fqdn: dns_txt(powerdns_server.address, powerdns_server.port, fqdn),
        )


@pytest.fixture
def orders(monkeypatch) -> list[str]:
    """The URLs of the orders placed through certdrop's ACME client (Pebble keeps no count)."""
    placed: list[str] = []
    original = AcmeClient.new_order

    def counting(self, *args, **kwargs):
        order = original(self, *args, **kwargs)
        placed.append(order.uri)
        return order

    monkeypatch.setattr(AcmeClient, "new_order", counting)
    return placed
