"""The solver sends one site's values in one request per zone where the provider can, and still
removes them one by one when such a request fails."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from cloud.dns01.propagation import DnsCheckSettings
from cloud.dns01.providers.base import TxtRecord
from cloud.dns01.providers.rfc2136 import Rfc2136Provider, parse_server
from cloud.dns01.solver import ChallengeJournal, Dns01Solver
from cloud.errors import DnsProviderError
from cloud.store.local import LocalStore
from tests.cloud.issuing import txt_values


class _BatchDown(Rfc2136Provider):
    """The server takes single values but times out on every request carrying several."""

    batches: list[int]

    def remove_txts(self, records: Sequence[TxtRecord]) -> None:
        self.batches.append(len(records))
        if len(records) > 1:
            raise DnsProviderError(
                "rfc2136", records[0].fqdn, "injected: timed out", transient=True
            )
        super().remove_txts(records)


def test_values_a_failed_batch_left_are_removed_one_by_one(bind_auth, tsig_key, tmp_path):
    provider = _BatchDown(parse_server(bind_auth.address), tsig_key.name, tsig_key.secret)
    provider.batches = []
    journal = ChallengeJournal(LocalStore(tmp_path / "store"), "site")
    solver = Dns01Solver("dns", provider, DnsCheckSettings(resolvers=(bind_auth.address,)), journal)
    name = f"_acme-challenge.t{secrets.token_hex(5)}.example.test."
    records = [TxtRecord("example.test.", name, value) for value in ("apex", "wildcard")]
    journal.record("dns", [(name, r) for r in records], solver.now())

    solver.add(records)
    added = txt_values(bind_auth.address, name)
    solver.cleanup(records)

    assert added == {"apex", "wildcard"}
    assert provider.batches == [2, 1, 1]
    assert txt_values(bind_auth.address, name) == set()
    assert journal.entries() == ()
