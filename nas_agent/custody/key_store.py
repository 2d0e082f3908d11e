"""The keys the agent made for its sites in agent custody: one file per site in the state
directory, `site-keys/<site>.json` (directory 0700, file 0600, replaced atomically).

    {"format": "certdrop-agent-site-keys-v1", "site": "example.com",
     "last_sequence": 1764892800,
     "current": "<PKCS#8 PEM: the key of the installed certificate>" | null,
     "pending": {"key_pem": "...", "sequence": 1764892800, "names": [...],
                 "key_type": "ec-p256", "rekey": false, "posted": true,
                 "statement": "<the signed CSR statement, as posted>"} | null,
     "previous": "<PEM: the key `current` replaced, until its certificate is confirmed served>"
                 | null}

Everything of a site is in one file so each step (a new pending key, an install) is one atomic
replace: a run killed at any point leaves the old keys or the new, never a pending key without
its sequence. `last_sequence` keeps the next CSR's sequence above every one used; with the file
lost, unix seconds keep it growing (`statement.next_sequence`). The PEMs never leave this file
but for DSM's import; a file others may read is refused, like the agent's own key files.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nas_agent._atomic import make_private_dirs, write_atomic
from nas_agent._encoding import load_json_object
from nas_agent.errors import KeyFileError
from nas_agent.ids import is_site_id

if TYPE_CHECKING:
    from nas_agent.bundle.leaf import HeldKeys

SITE_KEYS_FORMAT = "certdrop-agent-site-keys-v1"
DIRECTORY = "site-keys"
CURRENT, PENDING = "current", "pending"  # which key a certificate was installed with
_MAX_BYTES = 256 * 1024
_FILE_MODE = 0o600


@dataclass(frozen=True)
class PendingKey:
    """The key of the newest CSR, waiting for its certificate. repr shows no key."""

    key_pem: str = field(repr=False)
    sequence: int
    names: tuple[str, ...]
    key_type: str
    rekey: bool
    statement: bytes = field(repr=False)  # the signed CSR statement
    posted: bool = False  # the source took the statement

    def answers(self, names: tuple[str, ...], key_type: str) -> bool:
        """Whether this key and CSR still fit what the issuer asks for."""
        return self.names == names and self.key_type == key_type


@dataclass(frozen=True)
class SiteKeys:
    site: str
    last_sequence: int = 0
    current: str | None = field(default=None, repr=False)
    pending: PendingKey | None = None
    previous: str | None = field(default=None, repr=False)

    def held(self) -> HeldKeys:
        """The keys a certificate of the site may be installed with, parsed."""
        from nas_agent.bundle.leaf import HeldKeys

        pending = self.pending
        return HeldKeys(
            pending.sequence if pending else None,
            _private_key(self.site, pending.key_pem) if pending else None,
            _private_key(self.site, self.current) if self.current else None,
        )

    def with_pending(self, pending: PendingKey | None) -> SiteKeys:
        """`pending` replaces the pending key (deleting it); the installed one stays."""
        last = max(self.last_sequence, pending.sequence if pending else 0)
        return dataclasses.replace(self, pending=pending, last_sequence=last)

    def installed(self, which: str, *, confirmed: bool) -> SiteKeys:
        """The site's certificate was installed with the `which` key (CURRENT or PENDING). The
        key it replaced is kept as `previous` until the new certificate is confirmed served."""
        keys = self
        if which == PENDING and self.pending is not None:
            keys = dataclasses.replace(
                self, previous=self.current, current=self.pending.key_pem, pending=None
            )
        return dataclasses.replace(keys, previous=None) if confirmed else keys

    def promoted_if_installed(self, installed_key: bytes | None) -> SiteKeys:
        """These keys, with the pending key made the current one when the certificate installed
        for the site has it (`installed_key`: its SubjectPublicKeyInfo DER; None when unknown).
        That happens when a run stopped after DSM took the certificate and before this file
        recorded it: the key DSM serves with must never be replaced as a pending one, and the
        next renewal needs a new CSR. The old current key is kept as `previous`."""
        pending = self.pending
        if installed_key is None or pending is None:
            return self
        if _public_der(self.site, pending.key_pem) != installed_key:
            return self
        return self.installed(PENDING, confirmed=False)


class KeyStore:
    """`<state dir>/site-keys/`: one file per site."""

    def __init__(self, state_dir: str):
        self.directory = os.path.join(state_dir, DIRECTORY)

    def path(self, site: str) -> str:
        if not is_site_id(site):
            raise ValueError(f"{site!r} is not a site id")
        return os.path.join(self.directory, f"{site}.json")

    def load(self, site: str) -> SiteKeys:
        """The site's keys; none held when there is no file. Raises KeyFileError."""
        path = self.path(site)
        try:
            with open(path, "rb") as handle:
                mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
                data = handle.read(_MAX_BYTES + 1)
        except FileNotFoundError:
            return SiteKeys(site)
        except OSError as exc:
            raise KeyFileError(path, f"cannot read: {exc.strerror}") from exc
        if mode & 0o077:
            raise KeyFileError(path, f"mode {mode:04o} lets others read it; run: chmod 600 {path}")
        try:
            return _decode(site, load_json_object(data, max_size=_MAX_BYTES))
        except (ValueError, TypeError, KeyError) as exc:
            raise KeyFileError(path, f"not a site-keys file this agent can read ({exc})") from exc

    def save(self, keys: SiteKeys) -> None:
        """Replace the site's file atomically. Raises KeyFileError."""
        path = self.path(keys.site)
        try:
            make_private_dirs(self.directory)  # also one an earlier agent version left 0755
            write_atomic(path, _encode(keys), mode=_FILE_MODE)
        except OSError as exc:
            raise KeyFileError(path, f"cannot write: {exc.strerror}") from exc


def _private_key(site: str, pem: str) -> Any:
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{DIRECTORY}/{site}.json", "holds a key that does not parse") from exc


def _public_der(site: str, pem: str) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return (
        _private_key(site, pem)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _encode(keys: SiteKeys) -> bytes:
    pending = keys.pending
    document = {
        "format": SITE_KEYS_FORMAT,
        "site": keys.site,
        "last_sequence": keys.last_sequence,
        "current": keys.current,
        "pending": None
        if pending is None
        else {
            "key_pem": pending.key_pem,
            "sequence": pending.sequence,
            "names": list(pending.names),
            "key_type": pending.key_type,
            "rekey": pending.rekey,
            "posted": pending.posted,
            "statement": pending.statement.decode("ascii"),
        },
        "previous": keys.previous,
    }
    return json.dumps(document, indent=2, sort_keys=True).encode("ascii") + b"\n"


def _decode(site: str, document: dict[str, Any]) -> SiteKeys:
    if document.get("format") != SITE_KEYS_FORMAT or document.get("site") != site:
        raise ValueError(f"not the {SITE_KEYS_FORMAT} file of site {site}")
    raw = document["pending"]
    pending = None
    if raw is not None:
        pending = PendingKey(
            key_pem=_text(raw["key_pem"]),
            sequence=_number(raw["sequence"]),
            names=tuple(_text(name) for name in raw["names"]),
            key_type=_text(raw["key_type"]),
            rekey=bool(raw["rekey"]),
            statement=_text(raw["statement"]).encode("ascii"),
            posted=bool(raw["posted"]),
        )
    return SiteKeys(
        site=site,
        last_sequence=_number(document["last_sequence"]),
        current=_optional_text(document["current"]),
        pending=pending,
        previous=_optional_text(document["previous"]),
    )


def _number(value: object) -> int:
    if type(value) is not int or value < 0:
        raise ValueError("a sequence is not a whole number")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("a field is not a string")
    return value


def _optional_text(value: object) -> str | None:
    return None if value is None else _text(value)
