"""Helpers for tests that issue against real Pebble and real DNS servers."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.query
import dns.rdatatype
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from cloud.acme.certificate_keys import KeyType, key_matches_certificate, key_type_of
from cloud.acme.client import AcmeClient
from cloud.acme.order import IssuedCertificate, issue
from cloud.config import Config
from cloud.dns01.solver import ChallengeJournal, Dns01Solver
from cloud.pipeline import parts
from cloud.pipeline.site_run import Runner
from cloud.store import Store


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


def order_certificate(config: Config, site_id: str, *, object_store: Store | None = None):
    """The ordering stage alone (ACME order, DNS-01, finalize), outside the pipeline: no state
    is read or written, nothing is published. For tests of the stage itself."""
    site = parts.site(config, site_id)
    object_store = object_store or parts.store(config)
    solver = Dns01Solver(
        site.provider,
        parts.provider(config, site.provider),
        config.dns,
        ChallengeJournal(object_store, site.id),
        provider_by_name=lambda name: parts.provider(config, name),
    )
    acme = AcmeClient(config.ca, parts.keystore(config))
    acme.connect()
    return issue(
        site,
        acme,
        solver,
        order_timeout=config.ca.order_timeout,
        preferred_chain=config.ca.preferred_chain,
    )


def issue_and_publish(config: Config, store: Store, publisher):
    """`certdrop issue` in process: the pipeline, forced, for the site "example"."""
    runner = Runner(config, store, parts.keystore(config), publisher)
    outcome = runner.run_site("example", force=True)
    assert outcome.result == "issued", outcome.reason
    return outcome
