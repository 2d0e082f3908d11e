"""Helpers for tests that issue against real Pebble and real DNS servers."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import pytest
import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from cloud.acme.certificate_keys import KeyType, key_matches_certificate, key_type_of
from cloud.acme.client import AcmeClient
from cloud.acme.order import IssuedCertificate, issue
from cloud.config import Config
from cloud.keys.issuer import init_issuer
from cloud.pipeline import parts
from cloud.pipeline.site_run import Runner
from cloud.store import Store
from nas_agent.enrollment import enrollment_of
from nas_agent.keys import AgentKeys, IssuerKeys, generate_agent_keys


def enroll_agents(
    config: Config, agent_ids: tuple[str, ...] = ("nas-a",), site: str = "example"
) -> tuple[Store, IssuerKeys, list[AgentKeys]]:
    """`certdrop init` done (the issuer keys), the store, and agents enrolled for `site` (their
    keys): the set-up of the issuer tests that run a site for agents."""
    issuer = init_issuer(parts.keystore(config))
    store = parts.store(config)
    publisher = parts.publisher(config, store)
    agents = [generate_agent_keys(agent_id) for agent_id in agent_ids]
    for keys in agents:
        publisher.registry.add(enrollment_of(keys), (site,), datetime.now(UTC))
    return store, issuer, agents


def txt_values(server: str, fqdn: str) -> set[str]:
    """The TXT values `server` ("host:port") serves at `fqdn`, asked directly."""
    host, _, port = server.rpartition(":")
    query = dns.message.make_query(fqdn, "TXT")
    query.flags &= ~dns.flags.RD
    response, _ = dns.query.udp_with_fallback(query, host, port=int(port), timeout=3)
    return {
        b"".join(rdata.strings).decode()
        for rrset in response.answer
        if rrset.rdtype == dns.rdatatype.TXT
        for rdata in rrset
    }


def assert_issued(
    cert: IssuedCertificate, pebble, names: tuple[str, ...], key_type: KeyType
) -> None:
    """SANs, key type, key/cert match, and the chain up to Pebble's root."""
    leaf = x509.load_pem_x509_certificate(cert.cert_pem.encode())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == sorted(names)
    assert key_type_of(leaf.public_key()) is key_type
    assert cert.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
    key = load_pem_private_key(cert.key_pem, password=None)
    assert key_matches_certificate(key, leaf)
    chain = x509.load_pem_x509_certificates(cert.chain_pem.encode())
    roots = [
        x509.load_pem_x509_certificate(pebble.roots_pem(i).encode())
        for i in range(pebble.root_count)
    ]
    issuer = leaf
    for link in chain:
        issuer.verify_directly_issued_by(link)
        issuer = link
    assert any(_issued_by(issuer, root) for root in roots), "chain does not lead to Pebble's root"


def _issued_by(cert: x509.Certificate, root: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(root)
    except (ValueError, InvalidSignature):
        return False
    return True


def order_certificate(
    config: Config,
    site_id: str,
    *,
    object_store: Store | None = None,
    replaces: str | None = None,
):
    """The ordering stage alone (ACME order, the site's challenge, finalize), outside the
    pipeline: no state is read or written, nothing is published. For tests of the stage itself,
    and to play a client that renews (`replaces`, an ARI CertID) behind the pipeline's back."""
    site = parts.site(config, site_id)
    object_store = object_store or parts.store(config)
    acme = AcmeClient(config.ca, parts.keystore(config))
    acme.connect()
    return issue(
        site,
        acme,
        parts.authorizer(config, site, object_store),
        order_timeout=config.ca.order_timeout,
        preferred_chain=config.ca.preferred_chain,
        replaces=replaces,
    )


def issue_and_publish(config: Config, store: Store, publisher):
    """`certdrop issue` in process: the pipeline, forced, for the site "example"."""
    runner = Runner(config, store, parts.keystore(config), publisher)
    outcome = runner.run_site("example", force=True)
    assert outcome.result == "issued", outcome.reason
    return outcome


class Wire:
    """Every request certdrop sends to one Pebble, as it leaves: method, path, User-Agent and
    the answer's status, and for newOrder the JWS payload."""

    def __init__(self, pebble):
        self.base = pebble.directory_url.removesuffix("/dir")
        self.sent: list[dict] = []

    def orders(self) -> list[dict]:
        """newOrder requests, refused ones included."""
        return [r for r in self.sent if r["path"] == "/order-plz"]

    def placed(self) -> list[dict]:
        return [r for r in self.orders() if r["status"] == 201]

    def renewal_info_gets(self) -> list[dict]:
        return [r for r in self.sent if "/renewalInfo/" in r["path"]]


def record_wire(monkeypatch: pytest.MonkeyPatch, pebble) -> Wire:
    """Records the requests to `pebble` for the rest of the test (Pebble keeps no count)."""
    recorded = Wire(pebble)
    original = requests.adapters.HTTPAdapter.send

    def recording(self, request, *args, **kwargs):
        response = original(self, request, *args, **kwargs)
        if request.url.startswith(recorded.base):
            entry = {
                "method": request.method,
                "path": request.url[len(recorded.base) :],
                "user_agent": request.headers.get("User-Agent"),
                "status": response.status_code,
            }
            if request.method == "POST" and entry["path"] == "/order-plz":
                payload = json.loads(request.body)["payload"]
                padded = payload + "=" * (-len(payload) % 4)
                entry["payload"] = json.loads(base64.urlsafe_b64decode(padded))
            recorded.sent.append(entry)
        return response

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", recording)
    return recorded
