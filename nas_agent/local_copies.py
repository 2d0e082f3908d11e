"""The agent's own copy of what it last put into DSM, per site: `<state dir>/installed/<site>/`
holds `privkey.pem`, `cert.pem` and `chain.pem` (directories 0700, files 0600).

The installer (`nas_agent.install`) writes it once DSM took a certificate and keeps it as the
backup a later failed install restores. Agent custody (`nas_agent.custody.preparation`) reads
the certificate's public key: the key of the certificate DSM holds must never be deleted, also
when a run stopped before the site's keys file was updated.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from nas_agent._atomic import make_private_dirs, write_atomic
from nas_agent.bundle.checks import spki_der
from nas_agent.errors import StateUnwritable
from nas_agent.held_certificate import LeafFacts

DIRECTORY = "installed"
_COPY_FILES = ("privkey.pem", "cert.pem", "chain.pem")


@dataclass(frozen=True)
class Material:
    """A key and its certificates, as PEM bytes."""

    key_pem: bytes = field(repr=False)
    cert_pem: bytes
    chain_pem: bytes

    @property
    def sha256(self) -> str:
        leaf = x509.load_pem_x509_certificate(self.cert_pem)
        return hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()

    def facts(self) -> LeafFacts:
        leaf = x509.load_pem_x509_certificate(self.cert_pem)
        sha256 = hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()
        return LeafFacts(leaf.not_valid_before_utc, leaf.not_valid_after_utc, sha256)


class LocalCopies:
    """The agent's own copy of what it last installed per site (0600 files), for rollback."""

    def __init__(self, directory: str):
        self.directory = directory

    @classmethod
    def beside(cls, state_file: str) -> LocalCopies:
        """The copies kept in the state file's directory."""
        return cls(os.path.join(os.path.dirname(os.path.abspath(state_file)), DIRECTORY))

    def load(self, site: str) -> Material | None:
        """The copy; None when there is none, or its key is not its certificate's: the three
        files are written one by one, so a run killed between two leaves them mismatched, a
        backup DSM would refuse to take back (the installer then exports DSM's instead)."""
        try:
            parts = []
            for name in _COPY_FILES:
                with open(os.path.join(self.directory, site, name), "rb") as handle:
                    parts.append(handle.read())
        except FileNotFoundError:
            return None
        material = Material(*parts)
        return material if _key_matches(material) else None

    def save(self, site: str, material: Material) -> None:
        """Raises StateUnwritable (a full disk, say): the copy then left may be the previous one,
        or a mix that `load` refuses."""
        folder = os.path.join(self.directory, site)
        try:
            make_private_dirs(folder)  # also one an earlier agent version left 0755
            os.chmod(self.directory, 0o700)  # the same for installed/ itself
            for name, data in zip(
                _COPY_FILES, (material.key_pem, material.cert_pem, material.chain_pem)
            ):
                write_atomic(os.path.join(folder, name), data, mode=0o600)
        except OSError as exc:
            raise StateUnwritable(
                folder, f"cannot save the copy of the installed certificate ({exc.strerror})"
            ) from exc

    def public_key(self, site: str) -> bytes | None:
        """SubjectPublicKeyInfo DER of the certificate last installed for `site`; None when
        there is no copy, or it cannot be read or parsed."""
        try:
            with open(os.path.join(self.directory, site, "cert.pem"), "rb") as handle:
                leaf = x509.load_pem_x509_certificate(handle.read())
        except (OSError, ValueError):
            return None
        return leaf.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def _key_matches(material: Material) -> bool:
    try:
        key = serialization.load_pem_private_key(material.key_pem, password=None)
        leaf = x509.load_pem_x509_certificate(material.cert_pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return spki_der(key.public_key()) == spki_der(leaf.public_key())
