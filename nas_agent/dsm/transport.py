"""HTTP to DSM's web API: one ``requests`` session, DSM's envelope, and the translation of every
failure into the ``DsmError`` tree (reference §1; cases 34, 35). DSM's certificate is checked
against a CA, or against the pin (`nas_agent.dsm.pinning`) before anything is sent.

Secrets travel in POST bodies and headers wherever DSM allows it, so URLs — which HTTP
libraries log at DEBUG — hold none; the one exception (the import's ``_sid`` query parameter,
which acme.sh proved) is masked in urllib3's log records by a filter.
"""

from __future__ import annotations

import logging
import re
import warnings
from typing import Any, Callable, Mapping, Sequence, Tuple, Union

import requests
from urllib3.exceptions import InsecureRequestWarning

from nas_agent.dsm.errors import (
    DsmApiError,
    DsmNotAdmin,
    DsmProtocolError,
    DsmSessionError,
    DsmTlsError,
    DsmTransportError,
)
from nas_agent.dsm.pinning import PinnedCertificates, PinningAdapter

_log = logging.getLogger(__name__)

JSON_TYPE = "application/json"
_SESSION_CODES = frozenset({106, 107, 119})
_NOT_ADMIN = 105
_SECRET_QUERY = re.compile(r"((?:_sid|passwd|otp_code|device_id|SynoToken)=)[^&\s\"']*")

# Multipart parts as requests' ``files`` takes them: (name, (filename, content, content type))
# for a file, (name, (None, value)) for a plain field (no filename, no Content-Type header).
FilePart = Tuple[str, Tuple[str, bytes, str]]
FieldPart = Tuple[str, Tuple[None, str]]
Part = Union[FilePart, FieldPart]


class _MaskSecretsInUrls(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SECRET_QUERY.sub(r"\1<redacted>", a) if isinstance(a, str) else a
                for a in record.args
            )
        return True


def _mask_urllib3_logs() -> None:
    logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _MaskSecretsInUrls) for f in logger.filters):
        logger.addFilter(_MaskSecretsInUrls())


def api_error(code: int, api: str, method: str, errors: Mapping[str, Any]) -> DsmApiError:
    if code in _SESSION_CODES:
        return DsmSessionError(code, api, method, errors)
    if code == _NOT_ADMIN:
        return DsmNotAdmin(code, api, method, errors)
    return DsmApiError(code, api, method, errors)


ErrorFactory = Callable[[int, str, str, Mapping[str, Any]], Exception]


Trust = Union[bool, str, PinnedCertificates]


class Transport:
    def __init__(self, base_url: str, verify: Trust, timeout: float) -> None:
        """``verify``: True (system CAs), a CA file, False (insecure), or the pinned
        certificates (`nas_agent.dsm.pinning`), which are then ``.pins``."""
        if not re.match(r"^https?://[^/?#]+$", base_url.rstrip("/")):
            raise ValueError(f"DSM URL {base_url!r}: expected http(s)://host[:port]")
        self.base_url = base_url.rstrip("/")
        self._verify = verify
        self._timeout = timeout
        self._http = requests.Session()
        self.pins: PinnedCertificates | None = None
        if isinstance(verify, PinnedCertificates):
            self.pins = verify
            self._http.verify = False  # no CA check: the adapter checks the pin instead
            self._http.mount("https://", PinningAdapter(verify))
        else:
            self._http.verify = verify
        # Environment proxies and CA overrides would silently change where and how we connect.
        self._http.trust_env = False
        _mask_urllib3_logs()
        if verify is False:
            _log.warning("TLS verification of DSM at %s is off (insecure mode)", self.base_url)

    def close(self) -> None:
        self._http.close()

    def send(
        self,
        cgi: str,
        *,
        query: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        files: Sequence[Part] | None = None,
        token: str | None = None,
        http_method: str = "POST",
    ) -> requests.Response:
        """Send to ``/webapi/<cgi>``; any failure to get an HTTP 200 is a DsmTransportError."""
        url = f"{self.base_url}/webapi/{cgi}"
        headers = {"X-SYNO-TOKEN": token} if token else {}
        try:
            with warnings.catch_warnings():
                if self._verify is False:
                    warnings.simplefilter("ignore", InsecureRequestWarning)
                response = self._http.request(
                    http_method,
                    url,
                    params=query,
                    data=form,
                    files=files,
                    headers=headers,
                    timeout=self._timeout,
                )
        except requests.exceptions.SSLError as exc:
            raise DsmTlsError(
                url,
                "TLS verification failed: DSM presents a certificate this machine does not trust"
                " (DSM's own certificate is self-signed). Configure the CA file that signed it,"
                " or leave ca_file unset: the agent then pins the certificate DSM presents at"
                " the first connection",
            ) from exc
        except requests.exceptions.Timeout as exc:
            raise DsmTransportError(url, f"no answer within {self._timeout:g} s") from exc
        except requests.exceptions.RequestException as exc:
            raise DsmTransportError(url, f"connection failed ({type(exc).__name__})") from exc
        if response.status_code != 200:
            raise DsmTransportError(
                url, f"HTTP {response.status_code} instead of 200", response.status_code
            )
        return response

    def call(
        self,
        cgi: str,
        api: str,
        method: str,
        version: int,
        params: Mapping[str, str],
        *,
        token: str | None = None,
        errors: ErrorFactory = api_error,
    ) -> dict[str, Any]:
        """A form-encoded API call; returns ``data`` ({} when absent) or raises from ``errors``."""
        form = {"api": api, "method": method, "version": str(version), **params}
        return self.envelope(self.send(cgi, form=form, token=token), api, method, errors)

    @staticmethod
    def envelope(
        response: requests.Response, api: str, method: str, errors: ErrorFactory = api_error
    ) -> dict[str, Any]:
        url = response.url.split("?", 1)[0]
        try:
            body = response.json()
        except ValueError:
            raise DsmProtocolError(url, f"{api} {method}: the answer is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("success"), bool):
            raise DsmProtocolError(url, f"{api} {method}: the answer is not DSM's envelope")
        if not body["success"]:
            error = body.get("error")
            if not isinstance(error, dict):
                error = {}
            code = error.get("code")
            if not isinstance(code, int):
                raise DsmProtocolError(url, f"{api} {method}: failure without an error code")
            details = error.get("errors")
            raise errors(code, api, method, details if isinstance(details, dict) else {})
        data = body.get("data", {})
        if not isinstance(data, dict):
            raise DsmProtocolError(url, f"{api} {method}: data is not an object")
        return data
