"""An agent, its source (a directory laid out like the object store) and an emulated DSM.

`AgentLab` publishes bundles the way the cloud does (sealed object first, index last), writes
the agent's INI file and key files, and runs cycles in-process or as a `certdrop-agent` process.
Certificates are valid around the real clock, because agent processes use it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from nas_agent.bundle import BundlePlaintext, IndexEntry, entry_for, parse_index, sign_index
from nas_agent.bundle.rotation import RotationStatement, sign_rotation
from nas_agent.config import load_config
from nas_agent.cycle import CycleResult, run_cycle
from nas_agent.enrollment import issuer_key_line
from nas_agent.keys import key_id, save_agent_keys
from nas_agent.state import AgentState, load_state

from lab.dsm_emulator import EmulatorHandle, serve
from lab.sample_bundles import World, make_world, plaintext_of

SITE = "example.test"
HOSTNAMES = ("nas.example.test",)
USER = "certdrop"
PASSWORD = "correct horse battery staple"
REPO = Path(__file__).resolve().parents[1]


def now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


class AgentLab:
    def __init__(
        self,
        root: Path,
        *,
        agent_id: str = "nas-a",
        otp_secret: str | None = None,
        password: str = PASSWORD,
    ):
        self.root = root
        self.world: World = make_world()
        self.agent_id = agent_id
        self.store = root / "store"
        (self.store / "agents" / agent_id).mkdir(parents=True)
        keys_dir = root / "agent" / "keys"
        keys_dir.mkdir(parents=True)
        save_agent_keys(self.world.agents[agent_id], str(keys_dir))
        (root / "agent" / "dsm-password").write_text(password)
        os.chmod(root / "agent" / "dsm-password", 0o600)
        self.dsm: EmulatorHandle = serve(
            str(root / "dsm"), 0, 0, USER, password, otp_secret=otp_secret
        )
        self.config_path = root / "agent" / "agent.conf"
        self.write_config()
        self.versions: dict[str, int] = {}
        self._signing_key: ed25519.Ed25519PrivateKey | None = None
        self.rotations: list[RotationStatement] = []

    def write_config(self, *, dsm_url: str | None = None, extra_site: str = "") -> None:
        issuer = issuer_key_line(self.world.issuer.signing_key.public_key())
        self.config_path.write_text(
            f"""
[agent]
id = {self.agent_id}
issuer_key = {issuer}

[source]
url = file://{self.store}

[dsm]
url = {dsm_url or self.dsm.https_url}
username = {USER}
password_file = dsm-password
timeout = 10
confirm_timeout = 2

[site:{SITE}]
hostnames = {", ".join(HOSTNAMES)}
make_default = true
{extra_site}
"""
        )

    # --- the cloud's side ------------------------------------------------------------------

    def plaintext(
        self,
        *,
        version: int,
        names: Sequence[str] = ("example.test", "*.example.test"),
        site: str = SITE,
        **kw: Any,
    ) -> BundlePlaintext:
        moment = now()
        issued = self.world.pki.issue(
            names,
            not_before=kw.pop("not_before", moment - timedelta(hours=1)),
            not_after=kw.pop("not_after", moment + timedelta(days=60)),
            **kw,
        )
        return plaintext_of(issued, site=site, version=version, issued_at=moment)

    def publish(self, plaintext: BundlePlaintext, *, for_agent: str | None = None) -> IndexEntry:
        """Seals for `for_agent` (default: this lab's agent) and writes the result where this
        lab's agent looks: sealed object first, index (v2, signed by `self.signing_key`) last."""
        published = self.world.publish(plaintext, for_agent or self.agent_id)
        prefix = self.store / "agents" / self.agent_id
        sealed = prefix / published.entry.object_key
        sealed.parent.mkdir(parents=True, exist_ok=True)
        sealed.write_bytes(published.sealed)
        entry = entry_for(
            plaintext,
            published.sealed,
            agent_id=for_agent or self.agent_id,
            issuer_key_id=key_id(self.signing_key.public_key()),
        )
        if for_agent not in (None, self.agent_id):
            # Another agent's index, copied here: what an attacker with the store can do.
            self.write_index([entry], agent_id=for_agent)
            return entry
        others = [e for e in self.entries() if e.site != plaintext.site]
        self.write_index([*others, entry])
        return entry

    @property
    def signing_key(self) -> ed25519.Ed25519PrivateKey:
        """The issuer key that signs this lab's indexes (`rotate` replaces it)."""
        return self._signing_key or self.world.issuer.signing_key

    def entries(self) -> list[IndexEntry]:
        index = self.store / "agents" / self.agent_id / "index.json"
        return list(parse_index(index.read_bytes()).entries) if index.exists() else []

    def write_index(
        self,
        entries: Sequence[IndexEntry],
        *,
        issued_at: datetime | None = None,
        expires_at: datetime | None = None,
        agent_id: str | None = None,
    ) -> bytes:
        """The agent's index.json as the issuer signs it (v2), valid for a week by default."""
        moment = issued_at or now()
        body = sign_index(
            [replace(e, issuer_key_id=key_id(self.signing_key.public_key())) for e in entries],
            agent_id=agent_id or self.agent_id,
            signing_key=self.signing_key,
            issued_at=moment,
            expires_at=expires_at or moment + timedelta(days=7),
            rotations=self.rotations,
        )
        (self.store / "agents" / self.agent_id / "index.json").write_bytes(body)
        return body

    def rotate(self) -> RotationStatement:
        """An issuer key rotation, as `certdrop issuer rotate` makes it."""
        successor = ed25519.Ed25519PrivateKey.generate()
        statement = sign_rotation(
            self.signing_key,
            successor.public_key(),
            sequence=len(self.rotations) + 1,
            issued_at=now(),
        )
        self.rotations.append(statement)
        self._signing_key = successor
        return statement

    def sealed_path(self, entry: IndexEntry) -> Path:
        return self.store / "agents" / self.agent_id / entry.object_key

    # --- the agent's side ------------------------------------------------------------------

    def run(self, **options: Any) -> CycleResult:
        return run_cycle(load_config(str(self.config_path)), **options)

    def run_process(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "nas_agent.cli", "--config", str(self.config_path), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=str(REPO),
            env={**os.environ, "PYTHONPATH": str(REPO)},
            check=False,
        )

    def spawn(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "nas_agent.cli", "--config", str(self.config_path), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=str(REPO),
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )

    @property
    def state(self) -> AgentState:
        return load_state(str(self.root / "agent" / "state.json"))

    def served(self) -> str:
        return self.dsm.served_fingerprint()

    def imports(self) -> int:
        return sum(
            1
            for r in self.dsm.requests
            if r.api == "SYNO.Core.Certificate" and r.api_method == "import"
        )

    def faults(self, **changes: Any) -> None:
        self.dsm.emulator.controls.update_faults(**changes)

    def account(self, **changes: Any) -> None:
        self.dsm.emulator.controls.update_account(**changes)

    def close(self) -> None:
        self.dsm.stop()


def fingerprint(plaintext: BundlePlaintext) -> str:
    leaf = x509.load_pem_x509_certificate(plaintext.leaf_pem.encode())
    return hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()
