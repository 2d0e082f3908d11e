"""DSM emulators on free loopback ports for the DSM tests, and raw HTTP access to them.

    @pytest.fixture
    def lab(tmp_path):
        with DsmLab(tmp_path) as lab:
            yield lab

``lab.start(profile, otp=..., **make_app options)`` starts an emulator (stopped when the lab
closes); ``lab.raw(handle)`` makes the requests a test asserts DSM's answers with;
``lab.client(handle)`` is the agent's client pointed at it. OTP emulators run on a fixed
clock, so ``otp_code()`` is the code a user would type. Runs on Python 3.8 and 3.11.
"""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
from pathlib import Path
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lab.dsm_emulator import EmulatorHandle, serve
from lab.sample_pki import Issued, make_pki
from nas_agent import totp
from nas_agent.dsm.client import DsmClient

USER = "certbot"
PASSWORD = "correct horse: battery & staple?"
OTP_SECRET = "JBSWY3DPEHPK3PXP"
NOW_TS = 1_795_867_200.0  # 2026-11-28 12:00 UTC, lab.sample_pki.NOW
ALL_PROFILES = ("dsm6", "dsm7", "dsm7.4")
DSM7_PROFILES = ("dsm7", "dsm7.4")
FILE_TYPE = "application/octet-stream"


_PKI = make_pki("dsm test")


def issue(key_type: str = "rsa2048", names: tuple[str, ...] = ("example.test",)) -> Issued:
    """A leaf, its PKCS#8 key and its chain. RSA by default: DSM 6 refuses EC keys."""
    return _PKI.issue(names, key_type=key_type)


def reencoded_key(key_pem: str, encoding: str) -> str:
    """The key as "traditional" (PKCS#1 for RSA, SEC1 for EC), "pkcs8" or "encrypted" PEM."""
    key = serialization.load_pem_private_key(key_pem.encode("ascii"), password=None)
    fmt = (
        serialization.PrivateFormat.TraditionalOpenSSL
        if encoding == "traditional"
        else serialization.PrivateFormat.PKCS8
    )
    protection = (
        serialization.BestAvailableEncryption(b"passphrase")
        if encoding == "encrypted"
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, fmt, protection).decode("ascii")


def otp_code() -> str:
    return totp.totp(OTP_SECRET, NOW_TS)


def wrong_otp_code() -> str:
    """A well-formed code that is not valid in the accepted window around NOW_TS."""
    valid = {totp.totp(OTP_SECRET, NOW_TS + d * totp.STEP_SECONDS) for d in (-1, 0, 1)}
    return next(c for c in (f"{n:06d}" for n in range(10)) if c not in valid)


def fingerprint_of_pem(pem: str) -> str:
    der = x509.load_pem_x509_certificate(pem.encode("ascii")).public_bytes(
        serialization.Encoding.DER
    )
    return hashlib.sha256(der).hexdigest()


def served_fingerprint(handle: EmulatorHandle) -> str:
    """SHA-256 of the leaf a fresh TLS handshake with the HTTPS listener presents."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    address = (handle.host, handle.https_port)
    with socket.create_connection(address, timeout=10) as sock, context.wrap_socket(sock) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def compact(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


class Raw:
    """Plain requests against one emulator: what any DSM client would send, no client logic."""

    def __init__(self, handle: EmulatorHandle) -> None:
        self.handle = handle
        self.profile = handle.emulator.profile
        self.http = requests.Session()
        self.http.trust_env = False

    def url(self, cgi: str) -> str:
        return f"{self.handle.http_url}/webapi/{cgi}"

    def get(self, cgi: str, **params: Any) -> requests.Response:
        return self.http.get(self.url(cgi), params=params, timeout=10)

    def post(self, cgi: str, **kwargs: Any) -> requests.Response:
        return self.http.post(self.url(cgi), timeout=10, **kwargs)

    def login(self, version: int | None = None, cgi: str | None = None, **extra: Any) -> Any:
        """A GET login as acme.sh sends it; returns the decoded JSON body."""
        params = {
            "api": "SYNO.API.Auth",
            "method": "login",
            "version": version or self.profile.auth_max_version,
            "account": USER,
            "passwd": PASSWORD,
            "format": "sid",
            "enable_syno_token": "yes",
        }
        params.update(extra)
        response = self.get(cgi or self.profile.auth_path, **params)
        assert response.status_code == 200
        return response.json()

    def session(self, **extra: Any) -> tuple[str, str | None]:
        data = self.login(**extra)["data"]
        return data["sid"], data.get("synotoken")

    def api(self, api: str, method: str, sid: str | None, token: str | None, **params: Any) -> Any:
        form = {"api": api, "method": method, "version": 1, **params}
        if sid is not None:
            form["_sid"] = sid
        headers = {"X-SYNO-TOKEN": token} if token else {}
        response = self.post("entry.cgi", data=form, headers=headers)
        assert response.status_code == 200
        return response

    def list_text(self, sid: str, token: str | None) -> str:
        return self.api("SYNO.Core.Certificate.CRT", "list", sid, token).text

    def certificates(self, sid: str, token: str | None) -> list:
        return json.loads(self.list_text(sid, token))["data"]["certificates"]

    def import_(
        self,
        sid: str | None,
        token: str | None,
        parts: list,
        api: str = "SYNO.Core.Certificate",
        **query: Any,
    ) -> Any:
        """A multipart import as acme.sh sends it (method and sid in the query)."""
        params = {"api": api, "method": "import", "version": 1, **query}
        if sid is not None:
            params["_sid"] = sid
        headers = {"X-SYNO-TOKEN": token} if token else {}
        response = self.post("entry.cgi", params=params, files=parts, headers=headers)
        assert response.status_code == 200
        return response.json()


def upload_parts(
    key: str | bytes,
    cert: str | bytes,
    chain: str | bytes | None = None,
    *,
    cert_id: str | None = "",
    desc: str | None = "",
    as_default: str | None = None,
    names: tuple[str, str, str] = ("privkey.pem", "cert.pem", "chain.pem"),
) -> list:
    parts = [("key", (names[0], key, FILE_TYPE)), ("cert", (names[1], cert, FILE_TYPE))]
    if chain is not None:
        parts.append(("inter_cert", (names[2], chain, FILE_TYPE)))
    for name, value in (("id", cert_id), ("desc", desc), ("as_default", as_default)):
        if value is not None:
            parts.append((name, (None, value)))
    return parts


class DsmLab:
    def __init__(self, root: Path) -> None:
        self._root = root
        self._handles: list[EmulatorHandle] = []
        self._clients: list[DsmClient] = []

    def start(
        self,
        profile: str = "dsm7",
        *,
        otp: bool = False,
        data_dir: Path | None = None,
        **options: Any,
    ) -> EmulatorHandle:
        directory = data_dir or self._root / f"dsm-{len(self._handles)}"
        if otp:
            options.setdefault("clock", lambda: NOW_TS)
        handle = serve(
            str(directory),
            0,
            0,
            USER,
            PASSWORD,
            OTP_SECRET if otp else None,
            profile,
            **options,
        )
        self._handles.append(handle)
        return handle

    def raw(self, handle: EmulatorHandle) -> Raw:
        return Raw(handle)

    def client(self, handle: EmulatorHandle, **options: Any) -> DsmClient:
        options.setdefault("timeout", 10)
        client = DsmClient(handle.http_url, **options)
        self._clients.append(client)
        return client

    def stop(self, handle: EmulatorHandle) -> None:
        self._handles.remove(handle)
        handle.stop()

    def close(self) -> None:
        for client in self._clients:
            client.close()
        for handle in self._handles:
            handle.stop()

    def __enter__(self) -> DsmLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
