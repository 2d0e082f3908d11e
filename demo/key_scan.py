"""The demo's check that an agent-custody site's key never left its NAS.

Reads the keys nas-office holds for vault (current, pending and previous, from its own state),
then looks for each of them, as PEM, PKCS#8 DER and raw private numbers (raw, hex, base64,
base64url), in every object of the issuer's store, in the plaintext of every escrow copy the
escrow key opens, and in everything the issuer's commands printed. It also checks that what
nas-office's DSM serves is the certificate of the key it made. Any finding stops the demo.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cloud import config as config_module
from cloud.keys.issuer import load_issuer
from cloud.keys.rotation import open_escrow_copy
from cloud.pipeline import parts
from nas_agent import store_layout
from nas_agent.bundle import LeafPlaintext
from nas_agent.bundle.checks import spki_der
from nas_agent.bundle.leaf import encode_leaf_plaintext
from nas_agent.custody.key_store import DIRECTORY, KeyStore

AGENT, SITE = "nas-office", "vault"


def key_scan(work: Path, served: x509.Certificate, issuer_output: Iterable[str]) -> str:
    """What was scanned, as lines for the demo to print; SystemExit on any key found."""
    keys = _held_keys(work)
    if spki_der(served.public_key()) != spki_der(keys["current"].public_key()):
        raise SystemExit(f"demo failed: {AGENT} does not serve the certificate of its own key")
    needles = [n for key in keys.values() for n in _forms(key)]
    config = config_module.load(work / "certdrop.toml")
    issuer = load_issuer(parts.keystore(config))
    store_root = work / "store"
    objects = opened = leaves = 0
    for path in sorted(p for p in store_root.rglob("*") if p.is_file()):
        objects += 1
        _refuse(path.read_bytes(), needles, str(path.relative_to(work)))
        key = str(path.relative_to(store_root))
        if key.startswith(store_layout.ESCROW_PREFIX) and key.endswith(".sealed"):
            site, version = store_layout.parse_escrow(key)
            found = open_escrow_copy(path.read_bytes(), issuer, site=site, version=version)
            if found is None:
                raise SystemExit(f"demo failed: {key} opens with no escrow key")
            opened += 1
            if site == SITE:
                if not isinstance(found[1], LeafPlaintext):
                    raise SystemExit(f"demo failed: {key} holds a key bundle")
                leaves += 1
                _refuse(encode_leaf_plaintext(found[1]), needles, f"{key}, opened")
    lines = "".join(issuer_output)
    _refuse(lines.encode(), needles, "the issuer's output")
    return "\n".join(
        [
            f"{AGENT} holds {len(keys)} key(s) for {SITE} ({', '.join(keys)}); its DSM serves the"
            " certificate of the current one",
            f"store: {objects} objects scanned, {opened} escrow copies opened ({leaves} of"
            f" {SITE}: leaf and chain only): no key of {SITE}",
            f"issuer output: {len(lines.splitlines())} lines scanned: no key of {SITE}",
        ]
    )


def _held_keys(work: Path) -> dict[str, Any]:
    """The NAS's keys of the site, by role, from its state directory."""
    found = sorted((work / AGENT).rglob(f"{DIRECTORY}/{SITE}.json"))
    if len(found) != 1:
        raise SystemExit(f"demo failed: {AGENT} holds no key file for {SITE}")
    held = KeyStore(str(found[0].parent.parent)).load(SITE)
    pems = {"current": held.current, "pending": held.pending and held.pending.key_pem}
    pems["previous"] = held.previous
    keys = {
        role: serialization.load_pem_private_key(pem.encode(), password=None)
        for role, pem in pems.items()
        if pem
    }
    if "current" not in keys:
        raise SystemExit(f"demo failed: {AGENT} has installed no key of its own for {SITE}")
    return keys


def _forms(key: Any) -> list[bytes]:
    """The key as it could appear anywhere: PEM body, DER, and its private numbers."""
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = (key.curve.key_size + 7) // 8
        numbers = [key.private_numbers().private_value.to_bytes(size, "big")]
    elif isinstance(key, rsa.RSAPrivateKey):
        private = key.private_numbers()
        secret = (private.d, private.p, private.q, private.dmp1, private.dmq1, private.iqmp)
        numbers = [n.to_bytes((n.bit_length() + 7) // 8, "big") for n in secret]
    else:
        raise SystemExit(f"demo failed: an unexpected key type {type(key).__name__}")
    forms = [der, *_secret_pem_lines(der, numbers)]
    for raw in numbers:
        forms += [
            raw,
            raw.hex().encode(),
            base64.b64encode(raw).rstrip(b"="),
            base64.urlsafe_b64encode(raw).rstrip(b"="),
        ]
    return forms


def _secret_pem_lines(der: bytes, numbers: list[bytes]) -> list[bytes]:
    """The PEM's lines that encode some of the private numbers. Not the others: those hold only
    the public key (and headers), which the agent's CSR statement carries in its own base64,
    where the same line turned up by chance and failed the demo now and then."""
    spans = [(at, at + len(raw)) for raw in numbers if (at := der.find(raw)) >= 0]
    body = base64.b64encode(der)
    lines = []
    for start in range(0, len(body), 64):
        first, last = start * 3 // 4, (start + 64) * 3 // 4  # the DER bytes the line encodes
        if any(first < end and begin < last for begin, end in spans) and len(body) - start > 32:
            lines.append(body[start : start + 64])
    return lines


def _refuse(data: bytes, needles: list[bytes], where: str) -> None:
    if any(needle in data for needle in needles):
        raise SystemExit(f"demo failed: {where} holds a private key of {SITE}")
