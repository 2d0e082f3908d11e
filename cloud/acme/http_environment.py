"""A `requests` session that reads the environment once per host instead of on every request.

With `trust_env` on (its default) `requests` walks the whole environment twice for proxy
variables, looks for `~/.netrc` and reads REQUESTS_CA_BUNDLE on every request it sends; an
issuance sends about a dozen. This session keeps what a user can set there: HTTPS_PROXY and
NO_PROXY as they apply to each host (read the first time the host is asked, so a CA serving
certificates or renewal info from another host than its directory gets that host's answer), and
the CA bundle variables when `ca.ca_bundle` is not set (`ca_verify`). `.netrc` is not read:
certdrop authenticates to a CA with JWS, never with a password a netrc would send.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

if TYPE_CHECKING:
    from requests.sessions import _Settings


class EnvironmentOnce(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False
        self._proxies: dict[str, dict[str, str]] = {}  # host[:port] -> its proxies, if any

    def merge_environment_settings(
        self, url: str | bytes | None, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> _Settings:
        text = url.decode() if isinstance(url, bytes) else url or ""
        host = urlsplit(text).netloc
        if host not in self._proxies:
            self._proxies[host] = requests.utils.get_environ_proxies(text)
        chosen = {**self._proxies[host], **(proxies or {})}
        return super().merge_environment_settings(url, chosen, stream, verify, cert)


def ca_verify(verify: bool | str) -> bool | str:
    """What to verify the CA's TLS with: `verify` (a configured CA file, or True), the
    environment's CA bundle standing in for True as `requests` would have read it."""
    if verify is True:
        return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return verify
