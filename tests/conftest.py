"""Suite-wide network guard and the real test services, started lazily once per session.

Every test runs under a guard: reaching any address outside loopback, resolving a name through the
system resolver, or touching dnspython's default resolver raises RuntimeError before anything is
sent. Build dnspython resolvers with `Resolver(configure=False)` pointed at the servers below.

Session fixtures (each started on first request, on free 127.0.0.1 ports, stopped at the end):

- `tsig_key` -> TsigKey(name, secret, algorithm): the key `bind_auth` accepts for TXT updates.
- `bind_auth` -> BindServer, authoritative, TXT updates anywhere in its zones with `tsig_key`.
  Attributes: host, port, address ("127.0.0.1:PORT"), zones, tsig. Zones (see TEST_ZONES):
  `example.test.` (NS ns1 and ns2, plus `_acme-challenge.delegated CNAME
  delegated.validation.test.`), `validation.test.`, `other.test.` (a spare zone).
- `bind_stale` -> BindServer over the same zones that never accepts updates: map
  `ns2.example.test.` to its address to play a nameserver that the TXT never reaches.
- `bind_resolver` -> BindResolver forwarding those zones to `bind_auth` (recursion on, caches
  of 1 s); it follows a CNAME from one zone into another. Attributes: host, port, address.
- `pebble` -> Pebble validating through `bind_resolver`. Attributes: directory_url, ca_bundle
  (pass as `verify=`), management_url; roots_pem(i), intermediates_pem(i). No nonce rejection,
  no authz reuse. Tests needing other knobs start their own `Pebble(tmp_path, bind_resolver.address,
  nonce_reject_percent=..., alternate_roots=..., ...)` in a `with` block.
- `pebble_eab` -> the same with externalAccountBindingRequired; `eab_kid`, `eab_hmac_key`
  (base64url) are the one accepted binding.
- `pebble_profiles` -> the same offering two profiles, Let's Encrypt's "classic" (90 days) and
  "shortlived" (6 days). Pebble picks one at random for an order naming none: name one.

This file imports only the stdlib, pytest, cryptography and requests (dnspython lazily): it also
runs under Python 3.8 for the agent's tests.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Iterator

import pytest

from lab.bind import BindResolver, BindServer, TsigKey, Zone
from lab.pebble import CLASSIC, SHORTLIVED, Pebble
from tests import netguard

TEST_ZONES = (
    Zone(
        "example.test.",
        records=("_acme-challenge.delegated CNAME delegated.validation.test.",),
        nameservers=("ns1", "ns2"),
    ),
    Zone("validation.test."),
    Zone("other.test."),
)


@pytest.fixture(scope="session", autouse=True)
def _network_guard() -> Iterator[None]:
    uninstall = netguard.install()
    yield
    uninstall()


@pytest.fixture(scope="session")
def tsig_key() -> TsigKey:
    return TsigKey.generate("certdrop-test-key.")


@pytest.fixture(scope="session")
def bind_auth(tmp_path_factory: pytest.TempPathFactory, tsig_key: TsigKey) -> Iterator[BindServer]:
    with BindServer(tmp_path_factory.mktemp("bind-auth"), TEST_ZONES, tsig_key) as server:
        yield server


@pytest.fixture(scope="session")
def bind_stale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    workdir = tmp_path_factory.mktemp("bind-stale")
    with BindServer(workdir, TEST_ZONES, None, allow_update=False) as server:
        yield server


@pytest.fixture(scope="session")
def bind_resolver(
    tmp_path_factory: pytest.TempPathFactory, bind_auth: BindServer
) -> Iterator[BindResolver]:
    with BindResolver(tmp_path_factory.mktemp("bind-resolver"), bind_auth) as resolver:
        yield resolver


@pytest.fixture(scope="session")
def pebble(
    tmp_path_factory: pytest.TempPathFactory, bind_resolver: BindResolver
) -> Iterator[Pebble]:
    with Pebble(tmp_path_factory.mktemp("pebble"), bind_resolver.address) as server:
        yield server


@pytest.fixture(scope="session")
def pebble_eab(
    tmp_path_factory: pytest.TempPathFactory, bind_resolver: BindResolver
) -> Iterator[Pebble]:
    hmac_key = base64.urlsafe_b64encode(os.urandom(48)).decode("ascii")  # 64 chars, no padding
    workdir = tmp_path_factory.mktemp("pebble-eab")
    with Pebble(workdir, bind_resolver.address, eab_keys={"certdrop-kid-1": hmac_key}) as server:
        yield server


@pytest.fixture(scope="session")
def pebble_profiles(
    tmp_path_factory: pytest.TempPathFactory, bind_resolver: BindResolver
) -> Iterator[Pebble]:
    profiles = {"classic": CLASSIC, "shortlived": SHORTLIVED}
    workdir = tmp_path_factory.mktemp("pebble-profiles")
    with Pebble(workdir, bind_resolver.address, profiles=profiles) as server:
        yield server


@pytest.fixture(autouse=True)
def _logging_as_it_was():
    """A test that runs a CLI in process gets its log handlers (bound to the test's captured
    stderr); they go with the test, so a later test or teardown never logs to a closed stream."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
