"""What `requests` would read from the environment for every request, read once per CA session.

With `trust_env` on (its default) `requests` walks the whole environment twice for proxy
variables, looks for `~/.netrc` and reads REQUESTS_CA_BUNDLE on every request it sends; an
issuance sends about a dozen, all to the CA. Reading the environment once, for the CA's directory
URL, keeps what a user can set there (HTTPS_PROXY and NO_PROXY as they apply to that URL, the CA
bundle variables when `ca.ca_bundle` is not set) at a tenth of the cost per request. `.netrc`
is not read: certdrop authenticates to a CA with JWS, never with a password a netrc would send.
"""

from __future__ import annotations

import os

import requests


def settle(session: requests.Session, url: str, verify: bool | str) -> bool | str:
    """Fixes `session` to what the environment says for `url` and stops it reading the
    environment again; returns what `verify` becomes (the environment's CA bundle when `verify`
    is just True), which callers pass on with every request, as `acme` does."""
    session.proxies.update(requests.utils.get_environ_proxies(url))
    session.trust_env = False
    if verify is True:
        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.verify = verify
    return verify
