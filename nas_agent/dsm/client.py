"""The agent's client for DSM's certificate web API (reference: dsm-certificate-api.md).

    client = DsmClient("https://127.0.0.1:5001", verify="/path/to/ca.pem", timeout=90)
    with client.logged_in("certbot", password, device_file=DeviceIdFile(path)) as session:
        target = client.find_by_description(session, "certdrop example.com")
        client.import_certificate(session, key_pem=..., cert_pem=..., chain_pem=...,
                                  desc="certdrop example.com", replace=target)

Choices that keep it working across DSM 6.2-7.4 (each from a field report in the reference):
API paths and the Auth version come from discovery; the login is one POST with every field in
the body and ``enable_syno_token=yes`` in both body and query (DSM's POST quirk), so neither
password nor device id ever appears in a URL; the device id is a parameter, not a cookie; the
SynoToken goes in ``X-SYNO-TOKEN`` on every call; uploads carry bare file names; ``as_default``
is sent only as ``true``, and always when replacing the current default. Auth failures are
never retried: DSM counts them towards its auto-block.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Iterator

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from nas_agent.dsm import REQUEST_TIMEOUT, login
from nas_agent.dsm.device import DeviceIdFile
from nas_agent.dsm.errors import (
    DsmApiError,
    DsmCertificateNotFound,
    DsmDeviceRevoked,
    DsmDuplicateDescription,
    DsmError,
    DsmProtocolError,
)
from nas_agent.dsm.pinning import leaf_sha256
from nas_agent.dsm.transport import JSON_TYPE, Part, Transport, Trust
from nas_agent.dsm.types import (
    ApiInfo,
    Certificate,
    CertService,
    ImportResult,
    Session,
    parse_certificates,
)

_log = logging.getLogger(__name__)

INFO = "SYNO.API.Info"
AUTH = "SYNO.API.Auth"
CERTIFICATE = "SYNO.Core.Certificate"
CRT = "SYNO.Core.Certificate.CRT"
SERVICE = "SYNO.Core.Certificate.Service"
_NO_SUCH_API = 102
_FILE_TYPE = "application/octet-stream"


def strip_blank_lines(pem: bytes) -> bytes:
    """A chain without empty lines (a leading one broke SRM's import, acme.sh#3332)."""
    lines = [line for line in pem.splitlines() if line.strip()]
    return b"\n".join(lines) + b"\n" if lines else b""


class DsmClient:
    def __init__(
        self, base_url: str, *, verify: Trust = True, timeout: float = REQUEST_TIMEOUT
    ) -> None:
        """``verify``: True (system CAs), a CA file path, False (insecure, logged loudly), or
        `PinnedCertificates` (DSM's certificate pinned on first use; each import is pinned
        before it is sent, as DSM may serve it from then on).

        The default timeout, `REQUEST_TIMEOUT`, is generous: DSM logins can be slow.
        """
        self._transport = Transport(base_url, verify, timeout)
        self._info: ApiInfo | None = None

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> DsmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def discover(self) -> ApiInfo:
        """Paths and versions from ``SYNO.API.Info`` (asked once per client)."""
        if self._info is None:
            names = (AUTH, CERTIFICATE, CRT, SERVICE)
            query = {"api": INFO, "method": "query", "version": "1", "query": ",".join(names)}
            # Always query.cgi, wherever DSM lists SYNO.API.Info itself (reference §2).
            response = self._transport.send("query.cgi", query=query, http_method="GET")
            data = self._transport.envelope(response, INFO, "query")
            missing = [n for n in names if not isinstance(data.get(n), dict)]
            if missing:
                raise DsmApiError(
                    _NO_SUCH_API,
                    missing[0],
                    "query",
                    message=f"DSM does not offer {', '.join(missing)} (SYNO.API.Info)",
                )
            try:
                self._info = ApiInfo(
                    auth_path=str(data[AUTH]["path"]),
                    auth_min_version=int(data[AUTH]["minVersion"]),
                    auth_max_version=int(data[AUTH]["maxVersion"]),
                    certificate_path=str(data[CERTIFICATE]["path"]),
                    crt_path=str(data[CRT]["path"]),
                    service_path=str(data[SERVICE]["path"]),
                )
            except (KeyError, TypeError, ValueError):
                raise DsmProtocolError(self.base_url, "SYNO.API.Info: malformed entry") from None
        return self._info

    def login(
        self,
        account: str,
        password: str,
        *,
        device_id: str | None = None,
        device_name: str = "certdrop",
        otp_code: str | None = None,
        auth_version: int | None = None,
    ) -> Session:
        """Log in (Auth path and highest version from discovery unless ``auth_version``).

        With ``otp_code`` DSM is asked to remember this device; ``Session.device_id`` is the id
        to send as ``device_id`` next time. Raises a ``DsmAuthError`` subclass on refusal.
        Prefer ``logged_in``, which always logs out.
        """
        return login.login(
            self._transport,
            self.discover(),
            account,
            password,
            device_id=device_id,
            device_name=device_name,
            otp_code=otp_code,
            auth_version=auth_version,
        )

    def logout(self, session: Session) -> None:
        login.logout(self._transport, self.discover(), session)

    @contextlib.contextmanager
    def logged_in(
        self,
        account: str,
        password: str,
        *,
        device_file: DeviceIdFile | None = None,
        device_name: str = "certdrop",
        otp_code: str | None = None,
    ) -> Iterator[Session]:
        """A session that is logged out exactly once, whatever happens inside.

        With ``device_file``: a stored device id is sent (no code needed), an id DSM issues
        after an OTP login is stored, and a refused id is removed before the error propagates.
        A failing logout is logged, not raised: the work inside is done or failed already.
        """
        device_id = device_file.load() if device_file is not None and not otp_code else None
        try:
            session = self.login(
                account,
                password,
                device_id=device_id,
                device_name=device_name,
                otp_code=otp_code,
            )
        except DsmDeviceRevoked:
            if device_file is not None:
                device_file.clear()
            raise
        try:
            if device_file is not None and session.device_id:
                device_file.save(session.device_id)
            yield session
        finally:
            try:
                self.logout(session)
            except DsmError as exc:
                _log.warning("DSM logout failed: %s", exc)

    def list_certificates(self, session: Session) -> tuple[Certificate, ...]:
        info = self.discover()
        data = self._transport.call(
            info.crt_path, CRT, "list", 1, {"_sid": session.sid}, token=session.synotoken
        )
        return parse_certificates(data, f"{self.base_url}/webapi/{info.crt_path}")

    def certificate(self, session: Session, cert_id: str) -> Certificate:
        found = [c for c in self.list_certificates(session) if c.id == cert_id]
        if not found:
            raise DsmCertificateNotFound(f"with id {cert_id!r}")
        return found[0]

    def find_by_description(self, session: Session, desc: str) -> Certificate | None:
        """The one certificate whose ``desc`` equals ``desc`` exactly; None if there is none.

        Several matches raise ``DsmDuplicateDescription`` naming their ids: unlike acme.sh's
        "last match wins" this never guesses (case 30).
        """
        matches = [c for c in self.list_certificates(session) if c.desc == desc]
        if len(matches) > 1:
            raise DsmDuplicateDescription(desc, [c.id for c in matches])
        return matches[0] if matches else None

    def export(self, session: Session, cert_id: str) -> bytes:
        """DSM's ``export`` archive of ``cert_id`` (open it with ``read_export_archive``)."""
        info = self.discover()
        form = {
            "api": CERTIFICATE,
            "method": "export",
            "version": "1",
            "file": '"archive"',
            "id": cert_id,
            "_sid": session.sid,
        }
        response = self._transport.send(info.certificate_path, form=form, token=session.synotoken)
        if response.headers.get("Content-Type", "").startswith(JSON_TYPE):
            self._transport.envelope(response, CERTIFICATE, "export")
            raise DsmProtocolError(self.base_url, "SYNO.Core.Certificate export: no archive")
        return response.content

    def import_certificate(
        self,
        session: Session,
        *,
        key_pem: bytes,
        cert_pem: bytes,
        chain_pem: bytes = b"",
        desc: str,
        replace: Certificate | None = None,
        as_default: bool = False,
    ) -> ImportResult:
        """Create a certificate, or replace ``replace`` in place (same id, bindings kept).

        ``as_default`` goes out only as ``true``: when asked, and always when ``replace`` is
        the current default, because DSM treats any non-empty value — "false" included — as
        true (reference §5.3). Success is decided by DSM's ``success`` alone; re-list or
        handshake to confirm what is served.
        """
        info = self.discover()
        chain = strip_blank_lines(chain_pem)
        # acme.sh's part order; bare file names (DSM 7.4.1 refuses paths, case 27).
        parts: list[Part] = [
            ("key", ("privkey.pem", key_pem, _FILE_TYPE)),
            ("cert", ("cert.pem", cert_pem, _FILE_TYPE)),
        ]
        if chain:
            parts.append(("inter_cert", ("chain.pem", chain, _FILE_TYPE)))
        parts += [
            ("id", (None, replace.id if replace is not None else "")),
            ("desc", (None, desc)),
        ]
        if as_default or (replace is not None and replace.is_default):
            parts.append(("as_default", (None, "true")))
        self._pin_before_import(cert_pem)
        query = {"api": CERTIFICATE, "method": "import", "version": "1", "_sid": session.sid}
        response = self._transport.send(
            info.certificate_path, query=query, files=parts, token=session.synotoken
        )
        data = self._transport.envelope(response, CERTIFICATE, "import")
        cert_id = data.get("id")
        if not isinstance(cert_id, str) or not cert_id:
            raise DsmProtocolError(self.base_url, "SYNO.Core.Certificate import: no id")
        return ImportResult(cert_id, data.get("restart_httpd") is True)

    def _pin_before_import(self, cert_pem: bytes) -> None:
        """With pinning, the certificate being imported is pinned first: DSM may serve it from
        then on (as its default, or in place of one that is), and a run killed after the import
        must still reach DSM. Every import counts, as only DSM knows which id it serves;
        whatever it does not serve drops out at the next run's first connection."""
        pins = self._transport.pins
        if pins is None:
            return
        try:
            leaf = x509.load_pem_x509_certificate(cert_pem)
        except ValueError:
            return  # DSM refuses a certificate that does not parse: it will never serve it
        pins.expect(leaf_sha256(leaf.public_bytes(serialization.Encoding.DER)))

    def bind_service(
        self, session: Session, service: CertService, old_id: str, new_id: str
    ) -> None:
        """Move ``service`` from certificate ``old_id`` to ``new_id`` (``Service.set``)."""
        if old_id == new_id:
            # DSM 6 removes the binding altogether when both ids are equal (N4S4).
            raise ValueError(f"service {service.service!r} is already bound to {new_id!r}")
        info = self.discover()
        settings = [{"id": new_id, "old_id": old_id, "service": service.as_listed()}]
        self._transport.call(
            info.service_path,
            SERVICE,
            "set",
            1,
            {"settings": json.dumps(settings, separators=(",", ":")), "_sid": session.sid},
            token=session.synotoken,
        )
