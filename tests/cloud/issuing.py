"""Helpers for tests that issue against real Pebble and real DNS servers."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rdatatype
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from cloud.config import Config, load
from cloud.issuance import IssuedCertificate
from cloud.keys import KeyType, key_matches_certificate, key_type_of


def write_config(
    directory: Path,
    *,
    pebble,
    resolver: str,
    nameservers: Mapping[str, str],
    provider: str,
    site: str = 'domain = "example.test"',
    ca_extra: str = "",
    propagation_timeout: float = 10,
) -> Config:
    """A configuration issuing from `pebble`, checking propagation only against loopback."""
    mapping = ", ".join(f'"{ns}" = "{addr}"' for ns, addr in nameservers.items())
    text = f"""
    [ca]
    directory = "{pebble.directory_url}"
    ca_bundle = "{pebble.ca_bundle}"
    terms_agreed = true
    contact = "ops@example.test"
    order_timeout = 30
    {ca_extra}

    [storage]
    url = "store"
    keys_dir = "keys"

    [dns]
    resolvers = ["{resolver}"]
    nameservers = {{ {mapping} }}
    propagation_timeout = {propagation_timeout}

    [providers.dns]
    {provider}

    [sites.example]
    provider = "dns"
    {site}
    """
    path = directory / "certdrop.toml"
    path.write_text(textwrap.dedent(text))
    return load(path)


def bind_config(directory: Path, pebble, bind, **overrides) -> Config:
    """The usual set-up: `bind` (a BindServer) answers discovery and is every nameserver of
    example.test and validation.test, written to through RFC 2136 with its TSIG key (secret in
    `directory`/tsig). Keyword arguments override write_config's."""
    settings = {
        "pebble": pebble,
        "resolver": bind.address,
        "nameservers": {
            "ns1.example.test": bind.address,
            "ns2.example.test": bind.address,
            "ns1.validation.test": bind.address,
        },
        "provider": rfc2136_provider(bind.address, bind.tsig, directory / "tsig"),
    }
    return write_config(directory, **{**settings, **overrides})


def rfc2136_provider(server: str, tsig_key, secret_file: Path) -> str:
    secret_file.write_text(tsig_key.secret)
    return textwrap.dedent(
        f"""
        type = "rfc2136"
        server = "{server}"
        tsig_name = "{tsig_key.name}"
        tsig_secret = "file:{secret_file}"
        """
    )


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
