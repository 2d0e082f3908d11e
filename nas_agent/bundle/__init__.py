"""The bundle contract between the cloud and the NAS agent; both sides import it from here.

The cloud seals and signs (plaintext keys stay in memory and are dropped after sealing):

    plaintext = make_plaintext(site=..., version=..., key_pem=..., leaf_pem=..., chain_pem=...,
                               issued_at=now)
    sealed = seal(plaintext, recipient_id=agent_id, recipient_public_key=enrollment.box_public_key)
    entry = entry_for(plaintext, sealed, agent_id=agent_id, issuer_key_id=...)
    # write agents/<agent>/<entry.object_key> first, agents/<agent>/index.json =
    # sign_index(entries, agent_id=..., signing_key=..., issued_at=..., expires_at=...,
    # rotations=...) last; the escrow copy is seal(..., recipient_id=ESCROW_RECIPIENT, ...)

The agent verifies before it downloads, then opens, and `open_entry` repeats every check:

    index = parse_index(index_bytes)
    trusted = follow_chain(configured_key, index.rotations, remembered=...)
    verify_index(index, agent_id=..., issuer_public_key=trusted.key, now=...)
    entry = verify_entry(index.entry(site), agent_id=..., issuer_public_key=trusted.key,
                         installed_version=...)
    opened = open_entry(entry, fetch(entry.object_key), agent_id=..., agent_private_key=...,
                        issuer_public_key=..., installed_version=..., hostnames=..., now=...,
                        held_keys=...)  # agent custody: the keys the agent made for the site

An agent-custody entry (`custody: "agent"`, kind `certdrop-leaf-v1`, `nas_agent.bundle.leaf`)
holds no key: `open_entry` checks its leaf against the agent's own keys for the site instead.

Every refusal is a BundleError subclass (nas_agent.errors); docs/bundle-format.md is the format.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Sequence

from nas_agent.errors import BundleError, ContentMismatch, MalformedSealedObject, SealedHashMismatch

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

    from nas_agent.bundle.checks import CertificateMaterial, name_covers
    from nas_agent.bundle.index import (
        INDEX_FORMAT,
        Index,
        IndexEntry,
        build_index,
        entry_for,
        parse_index,
        sign_entry,
        sign_index,
        verify_entry,
        verify_index,
    )
    from nas_agent.bundle.leaf import HeldKeys, LeafPlaintext, make_leaf_plaintext
    from nas_agent.bundle.plaintext import BundlePlaintext, make_plaintext
    from nas_agent.bundle.sealed import (
        ESCROW_RECIPIENT,
        hpke_info,
        open_sealed,
        open_sealed_any,
        open_sealed_leaf,
        seal,
    )

# What this package re-exports, by the module that defines it. Loaded at first use: importing one
# part (the rotation chain a state file names, say) must not load every other part and the whole
# of cryptography's X.509 and HPKE with it.
_EXPORTED = {
    "checks": ("CertificateMaterial", "name_covers"),
    "index": (
        "INDEX_FORMAT",
        "Index",
        "IndexEntry",
        "build_index",
        "entry_for",
        "parse_index",
        "sign_entry",
        "sign_index",
        "verify_entry",
        "verify_index",
    ),
    "leaf": ("HeldKeys", "LeafPlaintext", "make_leaf_plaintext"),
    "plaintext": ("BundlePlaintext", "make_plaintext"),
    "sealed": (
        "ESCROW_RECIPIENT",
        "hpke_info",
        "open_sealed",
        "open_sealed_any",
        "open_sealed_leaf",
        "seal",
    ),
}
_MODULE_OF = {name: module for module, names in _EXPORTED.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "ESCROW_RECIPIENT",
    "INDEX_FORMAT",
    "BundlePlaintext",
    "CertificateMaterial",
    "HeldKeys",
    "Index",
    "IndexEntry",
    "LeafPlaintext",
    "OpenedBundle",
    "build_index",
    "entry_for",
    "hpke_info",
    "make_leaf_plaintext",
    "make_plaintext",
    "name_covers",
    "open_entry",
    "open_sealed",
    "open_sealed_any",
    "open_sealed_leaf",
    "parse_index",
    "seal",
    "sign_entry",
    "sign_index",
    "verify_and_open",
    "verify_entry",
    "verify_index",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenedBundle:
    """A bundle that passed every check. repr shows the entry only."""

    entry: IndexEntry
    plaintext: BundlePlaintext | LeafPlaintext = field(repr=False)
    material: CertificateMaterial = field(repr=False)
    # Agent custody: which of the agent's keys is the certificate's, "pending" or "current".
    held_key: str | None = None

    @property
    def key_pem(self) -> str:
        """The certificate's private key, PKCS#8 PEM: the bundle's, or the agent's own."""
        from nas_agent.bundle.leaf import LeafPlaintext

        if isinstance(self.plaintext, LeafPlaintext):
            from cryptography.hazmat.primitives import serialization

            return self.material.private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode("ascii")
        return self.plaintext.key_pem

    @property
    def site(self) -> str:
        return self.entry.site

    @property
    def version(self) -> int:
        return self.entry.version


def open_entry(
    entry: IndexEntry,
    sealed: bytes,
    *,
    agent_id: str,
    agent_private_key: x25519.X25519PrivateKey,
    issuer_public_key: ed25519.Ed25519PublicKey,
    installed_version: int | None,
    hostnames: Sequence[str],
    now: datetime,
    held_keys: HeldKeys | None = None,
) -> OpenedBundle:
    """Verify `entry` (as verify_entry does), then open `sealed` and check what it holds.

    Raises, in order of checking: UnknownIssuerKey, BadSignature, WrongAgent, StaleVersion,
    SealedHashMismatch, MalformedSealedObject, UnsupportedFormat, DecryptionFailed,
    MalformedPlaintext, ContentMismatch, KeyMismatch (KeyMissing for a leaf none of
    `held_keys` belongs to), ChainInvalid, CertificateNotYetValid, CertificateExpired,
    NamesNotCovered. Each carries the agent id, site and version.
    """
    from nas_agent.bundle.checks import check_material
    from nas_agent.bundle.index import verify_entry

    try:
        verify_entry(
            entry,
            agent_id=agent_id,
            issuer_public_key=issuer_public_key,
            installed_version=installed_version,
        )
        if not isinstance(sealed, (bytes, bytearray)):
            raise MalformedSealedObject("sealed object is not bytes")
        if hashlib.sha256(sealed).hexdigest() != entry.object_sha256:
            raise SealedHashMismatch("the sealed object's SHA-256 is not the one the entry signs")
        plaintext, material, held_key = _open_plaintext(
            entry, sealed, agent_id, agent_private_key, held_keys
        )
        if material.sha256 != entry.cert_sha256:
            raise ContentMismatch("cert_sha256", "the certificate is not the one the entry signs")
        if material.leaf.not_valid_after_utc != entry.not_after:
            raise ContentMismatch("not_after", "the certificate's not_after differs from the entry")
        check_material(plaintext, material, hostnames=hostnames, now=now)
    except BundleError as err:
        _locate(err, agent_id, entry)
        raise
    _log.debug(
        "bundle opened: agent=%s site=%s version=%s sha256=%s",
        agent_id,
        entry.site,
        entry.version,
        entry.cert_sha256,
    )
    return OpenedBundle(entry, plaintext, material, held_key)


def _open_plaintext(
    entry: IndexEntry,
    sealed: bytes,
    agent_id: str,
    agent_private_key: x25519.X25519PrivateKey,
    held_keys: HeldKeys | None,
) -> tuple[BundlePlaintext | LeafPlaintext, CertificateMaterial, str | None]:
    """Open `sealed` as the entry's kind and parse its certificates with their key: the one in
    a bundle, or for a leaf the agent's own key for it (which of them, "pending" or "current")."""
    from nas_agent.bundle.checks import load_leaf, load_material, with_certificates
    from nas_agent.bundle.leaf import LEAF_FORMAT, HeldKeys
    from nas_agent.bundle.sealed import open_sealed, open_sealed_leaf

    if entry.kind != LEAF_FORMAT:
        plaintext = open_sealed(
            sealed,
            recipient_id=agent_id,
            private_key=agent_private_key,
            site=entry.site,
            version=entry.version,
        )
        _check_place(plaintext, entry)
        return plaintext, load_material(plaintext), None
    leaf = open_sealed_leaf(
        sealed,
        recipient_id=agent_id,
        private_key=agent_private_key,
        site=entry.site,
        version=entry.version,
    )
    _check_place(leaf, entry)
    if leaf.agent_id != agent_id:
        raise ContentMismatch("agent", f"the certificate was ordered for agent {leaf.agent_id}")
    which, key = (held_keys or HeldKeys(None)).pick(leaf, load_leaf(leaf.leaf_pem))
    return leaf, with_certificates(key, leaf.leaf_pem, leaf.chain_pem), which


def _check_place(plaintext: BundlePlaintext | LeafPlaintext, entry: IndexEntry) -> None:
    if plaintext.site != entry.site:
        raise ContentMismatch("site", f"the bundle is for site {plaintext.site}")
    if plaintext.version != entry.version:
        raise ContentMismatch("version", f"the bundle is version {plaintext.version}")


def verify_and_open(
    index_bytes: bytes,
    sealed: bytes,
    *,
    site: str,
    agent_id: str,
    agent_private_key: x25519.X25519PrivateKey,
    issuer_public_key: ed25519.Ed25519PublicKey,
    installed_version: int | None,
    hostnames: Sequence[str],
    now: datetime,
    held_keys: HeldKeys | None = None,
) -> OpenedBundle:
    """parse_index, follow its key rotations from `issuer_public_key`, verify_index (v2), pick
    the site's entry, open_entry. Adds MalformedIndex, UnsupportedFormat, the rotation and index
    refusals and SiteNotInIndex to what open_entry raises."""
    from nas_agent.bundle.index import parse_index, verify_index
    from nas_agent.bundle.rotation import follow_chain

    try:
        index = parse_index(index_bytes)
        issuer_public_key = follow_chain(issuer_public_key, index.rotations).key
        verify_index(index, agent_id=agent_id, issuer_public_key=issuer_public_key, now=now)
        entry = index.entry(site)
    except BundleError as err:
        err.agent_id = err.agent_id or agent_id
        err.site = err.site or site
        raise
    return open_entry(
        entry,
        sealed,
        agent_id=agent_id,
        agent_private_key=agent_private_key,
        issuer_public_key=issuer_public_key,
        installed_version=installed_version,
        hostnames=hostnames,
        now=now,
        held_keys=held_keys,
    )


def _locate(err: BundleError, agent_id: str, entry: IndexEntry) -> None:
    """Name the agent, site and version on an error raised by a step that did not know them."""
    if err.agent_id is None:
        err.agent_id = agent_id
    if err.site is None:
        err.site = entry.site
    if err.version is None:
        err.version = entry.version
