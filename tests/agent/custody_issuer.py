"""The issuer's half of agent custody, played for the agent's tests over an `AgentLab`: it
writes signed key requests, reads the agent's CSR statements, orders (issues) a certificate for
a CSR from the lab's PKI and publishes it as a `certdrop-leaf-v1`, as docs/key-custody.md says
the cloud does. Every index it signs is issued a second after the one before, so a test that
writes twice within one second still gives the agent a new index to read.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from lab.agent_lab import SITE, AgentLab, now
from lab.sample_pki import cert_pem
from nas_agent import store_layout
from nas_agent.bundle import ESCROW_RECIPIENT, IndexEntry, entry_for, make_leaf_plaintext, seal
from nas_agent.bundle.key_requests import KeyRequest, sign_key_requests
from nas_agent.bundle.leaf import LeafPlaintext
from nas_agent.custody.key_store import KeyStore, SiteKeys
from nas_agent.custody.statement import CsrStatement, parse_csr_statement
from nas_agent.keys import key_id

NAMES = ("*.example.test", "example.test")
REQUEST = KeyRequest(SITE, NAMES, "ec-p256")


class CustodyIssuer:
    def __init__(self, lab: AgentLab):
        self.lab = lab
        self._signed: datetime | None = None
        self.escrowed: dict[int, bytes] = {}

    @property
    def prefix(self):
        return self.lab.store / "agents" / self.lab.agent_id

    def next_time(self) -> datetime:
        moment = now()
        if self._signed is not None and moment <= self._signed:
            moment = self._signed + timedelta(seconds=1)
        self._signed = moment
        return moment

    def request(
        self,
        requests: Sequence[KeyRequest] = (REQUEST,),
        *,
        signing_key: ed25519.Ed25519PrivateKey | None = None,
        agent_id: str | None = None,
        issued_at: datetime | None = None,
    ) -> bytes:
        """Writes key-requests.json, then signs the index again (as the issuer does)."""
        body = sign_key_requests(
            requests,
            agent_id=agent_id or self.lab.agent_id,
            signing_key=signing_key or self.lab.signing_key,
            issued_at=issued_at or self.next_time(),
        )
        (self.prefix / store_layout.KEY_REQUESTS).write_bytes(body)
        self.resign()
        return body

    def resign(self, entries: Sequence[IndexEntry] | None = None) -> None:
        self.lab.write_index(
            self.lab.entries() if entries is None else entries, issued_at=self.next_time()
        )

    def statement_body(self, site: str = SITE) -> bytes:
        return (self.prefix / store_layout.csr_name(site)).read_bytes()

    def statement(self, site: str = SITE) -> CsrStatement:
        return parse_csr_statement(self.statement_body(site))

    def issue(
        self, statement: CsrStatement, *, version: int, csr_der: bytes | None = None
    ) -> LeafPlaintext:
        """A certificate for the statement's CSR (or another `csr_der`), as a leaf plaintext
        answering the statement's sequence; notBefore grows with the version."""
        csr = x509.load_der_x509_csr(csr_der or statement.csr_der)
        pki = self.lab.world.pki
        moment = now()
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        leaf = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(pki.intermediate.cert.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(moment - timedelta(hours=2) + timedelta(minutes=version))
            .not_valid_after(moment + timedelta(days=60))
            .add_extension(san, critical=False)
            .sign(pki.intermediate.key, hashes.SHA256())
        )
        return make_leaf_plaintext(
            site=statement.site,
            version=version,
            agent_id=statement.agent_id,
            csr_sequence=statement.sequence,
            leaf_pem=cert_pem(leaf),
            chain_pem=cert_pem(pki.intermediate.cert),
            issued_at=moment,
        )

    def publish(self, leaf: LeafPlaintext) -> IndexEntry:
        """Seals the leaf to the agent and to escrow; the sealed object first, the index last."""
        agent = self.lab.world.agents[self.lab.agent_id]
        sealed = seal(
            leaf, recipient_id=self.lab.agent_id, recipient_public_key=agent.box_key.public_key()
        )
        self.escrowed[leaf.version] = seal(
            leaf,
            recipient_id=ESCROW_RECIPIENT,
            recipient_public_key=self.lab.world.issuer.escrow_key.public_key(),
        )
        entry = entry_for(
            leaf,
            sealed,
            agent_id=self.lab.agent_id,
            issuer_key_id=key_id(self.lab.signing_key.public_key()),
        )
        path = self.prefix / entry.object_key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(sealed)
        self.resign([*(e for e in self.lab.entries() if e.site != leaf.site), entry])
        return entry


def key_store(lab: AgentLab) -> KeyStore:
    return KeyStore(str(lab.root / "agent"))


def site_keys(lab: AgentLab, site: str = SITE) -> SiteKeys:
    return key_store(lab).load(site)


def public_der(key_or_pem: object) -> bytes:
    """SubjectPublicKeyInfo DER of a private key (object or PEM), a CSR or a certificate."""
    if isinstance(key_or_pem, str):
        key_or_pem = serialization.load_pem_private_key(key_or_pem.encode(), password=None)
    public = key_or_pem.public_key()  # type: ignore[attr-defined]
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def served_key_der(lab: AgentLab) -> bytes:
    """The public half of the key DSM serves its default certificate with."""
    return public_der(lab.dsm.emulator.store.served().material.key_pem)


def sha256_of_pem(pem: str) -> str:
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def report(lab: AgentLab) -> dict:
    from nas_agent.status import verify_status

    body = (lab.store / "agents" / lab.agent_id / "status.json").read_bytes()
    public_key = lab.world.agents[lab.agent_id].signing_key.public_key()
    return verify_status(body, agent_id=lab.agent_id, public_key=public_key)


def json_of(body: bytes) -> dict:
    return json.loads(body)
