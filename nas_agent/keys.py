"""Keys of the bundle contract: generation, key ids, PEM encoding and private key files.

An agent holds an X25519 key that opens the bundles sealed to it and an Ed25519 key that signs its
status reports; both are generated on the NAS and only their public halves leave it (see
`nas_agent.enrollment` for the one-line token). The issuer holds an Ed25519 key that signs index
entries (agents pin its public half) and an X25519 escrow key, which is just one more recipient.

Private key files are unencrypted PKCS#8 PEM (the NAS has nobody to type a passphrase), mode 0600,
written atomically and never overwritten.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from dataclasses import dataclass, field
from typing import TypeVar, Union

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from nas_agent.errors import KeyFileError
from nas_agent.ids import AGENT_ID_PATTERN, is_agent_id

BOX_KEY_FILE = "bundle-x25519.key"
SIGNING_KEY_FILE = "status-ed25519.key"

ContractPrivateKey = Union[x25519.X25519PrivateKey, ed25519.Ed25519PrivateKey]
ContractPublicKey = Union[x25519.X25519PublicKey, ed25519.Ed25519PublicKey]
_K = TypeVar("_K", x25519.X25519PrivateKey, ed25519.Ed25519PrivateKey)


@dataclass(frozen=True)
class AgentKeys:
    """An agent's own key pairs. repr shows the id only."""

    agent_id: str
    box_key: x25519.X25519PrivateKey = field(repr=False)
    signing_key: ed25519.Ed25519PrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        if not is_agent_id(self.agent_id):
            raise ValueError(f"agent id {self.agent_id!r} does not match {AGENT_ID_PATTERN}")


@dataclass(frozen=True)
class IssuerKeys:
    """The cloud's key pairs: index signing and escrow sealing.

    While a rotation is under way (`certdrop issuer rotate`) the key store also holds the
    signing key's successor, and the escrow key's predecessor until every escrow copy is
    re-sealed to the new one."""

    signing_key: ed25519.Ed25519PrivateKey = field(repr=False)
    escrow_key: x25519.X25519PrivateKey = field(repr=False)  # the one new copies are sealed to
    next_signing_key: ed25519.Ed25519PrivateKey | None = field(default=None, repr=False)
    retired_escrow_keys: tuple[x25519.X25519PrivateKey, ...] = field(default=(), repr=False)


def generate_agent_keys(agent_id: str) -> AgentKeys:
    return AgentKeys(
        agent_id=agent_id,
        box_key=x25519.X25519PrivateKey.generate(),
        signing_key=ed25519.Ed25519PrivateKey.generate(),
    )


def generate_issuer_keys() -> IssuerKeys:
    return IssuerKeys(
        signing_key=ed25519.Ed25519PrivateKey.generate(),
        escrow_key=x25519.X25519PrivateKey.generate(),
    )


def raw_public_bytes(key: ContractPublicKey) -> bytes:
    """The 32 raw bytes of an X25519 or Ed25519 public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: ed25519.Ed25519PublicKey) -> str:
    """First 8 bytes of SHA-256 of the raw public key, in hex: names the issuer key in entries."""
    return hashlib.sha256(raw_public_bytes(public_key)).digest()[:8].hex()


def private_key_pem(key: ContractPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key_pem(data: bytes, kind: type[_K], *, source: str) -> _K:
    """Read an unencrypted PKCS#8 PEM private key of the given type; `source` names it in errors.

    The key classes are abstract, and mypy accepts no abstract class where ``type[_K]`` is
    expected: type-checked code calls `load_x25519_key_pem` or `load_ed25519_key_pem` instead.
    """
    key = _parse_private_key_pem(data, source)
    if not isinstance(key, kind):
        raise _wrong_key_type(source, key, kind)
    return key


def load_x25519_key_pem(data: bytes, *, source: str) -> x25519.X25519PrivateKey:
    key = _parse_private_key_pem(data, source)
    if not isinstance(key, x25519.X25519PrivateKey):
        raise _wrong_key_type(source, key, x25519.X25519PrivateKey)
    return key


def load_ed25519_key_pem(data: bytes, *, source: str) -> ed25519.Ed25519PrivateKey:
    key = _parse_private_key_pem(data, source)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise _wrong_key_type(source, key, ed25519.Ed25519PrivateKey)
    return key


def _parse_private_key_pem(data: bytes, source: str) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # TypeError: the key is encrypted. Neither message quotes the key.
        raise KeyFileError(source, "not an unencrypted PKCS#8 PEM private key") from exc


def _wrong_key_type(source: str, key: PrivateKeyTypes, expected: type) -> KeyFileError:
    return KeyFileError(source, f"holds a {type(key).__name__}, expected {expected.__name__}")


def save_private_key(path: str, key: ContractPrivateKey) -> None:
    """Write `key` to `path`, mode 0600, atomically; refuse if `path` exists.

    The PEM goes to a temporary file in the same directory, which is then hard-linked to `path`:
    linking fails if `path` exists, so an existing key is never replaced and a reader never sees a
    half-written file.
    """
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise KeyFileError(path, f"cannot create a file beside it: {exc.strerror}") from exc
    try:
        with os.fdopen(descriptor, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)  # the umask may only have removed bits; be exact
            handle.write(private_key_pem(key))
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)
        _fsync_directory(directory)
    except FileExistsError as exc:
        raise KeyFileError(path, "already exists; refusing to overwrite a key") from exc
    except OSError as exc:
        raise KeyFileError(path, f"cannot write: {exc.strerror}") from exc
    finally:
        os.unlink(temporary)


def load_private_key(path: str, kind: type[_K]) -> _K:
    """Read a key file written by `save_private_key`; refuse one that others can read or write."""
    return load_private_key_pem(_read_key_file(path), kind, source=path)


def _read_key_file(path: str) -> bytes:
    """The PEM of a key file; refuse one that others can read or write."""
    try:
        with open(path, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            data = handle.read()
    except OSError as exc:
        raise KeyFileError(path, f"cannot read: {exc.strerror}") from exc
    if stat.S_IMODE(mode) & 0o077:
        raise KeyFileError(
            path, f"mode {stat.S_IMODE(mode):04o} lets others read it; run: chmod 600 {path}"
        )
    return data


def save_agent_keys(keys: AgentKeys, directory: str) -> None:
    """Write both agent keys into `directory`; refuse if either file is already there."""
    paths = _agent_key_paths(directory)
    for path in paths:
        if os.path.lexists(path):
            raise KeyFileError(path, "already exists; refusing to overwrite a key")
    save_private_key(paths[0], keys.box_key)
    save_private_key(paths[1], keys.signing_key)


def load_agent_keys(directory: str, agent_id: str) -> AgentKeys:
    box_path, signing_path = _agent_key_paths(directory)
    return AgentKeys(
        agent_id=agent_id,
        box_key=load_x25519_key_pem(_read_key_file(box_path), source=box_path),
        signing_key=load_ed25519_key_pem(_read_key_file(signing_path), source=signing_path),
    )


def _fsync_directory(directory: str) -> None:
    """Make the new name survive a power cut: a NAS that loses its key must enroll again."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _agent_key_paths(directory: str) -> tuple[str, str]:
    return os.path.join(directory, BOX_KEY_FILE), os.path.join(directory, SIGNING_KEY_FILE)
