"""The long tail of DNS hosts through dns-lexicon 3.x (`lexicon.client.Client`).

Settings: `provider` names a Lexicon provider; `options` holds its plain options and
`secret_options` those given as secret references (`env:NAME`, `file:/path`), e.g. for
Lexicon's powerdns provider `options = { pdns_server = "http://ns1:8081" }` and
`secret_options = { auth_token = "env:PDNS_API_KEY" }`.

Adds and removes go through Lexicon's `create_record` and `delete_record` with the content, so
only our value is removed. Not every Lexicon provider can hold two TXT values at one name: some
replace the record set on create. `add_txt` therefore lists the name before and after its create;
if a value that was there has vanished, it writes that value back and raises a terminal error
naming the Lexicon provider, rather than let the other challenge of the certificate fail later.

The zone is known (certdrop found it), so it is handed to Lexicon directly instead of letting it
guess from the public suffix list. Lexicon still runs tldextract while it builds a client; the
`TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS` environment variable is set to empty (unless already set) so
tldextract (>= 5.4) uses its bundled snapshot and never downloads the list.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from cloud.dns01.providers.base import ProviderInfo, Setting, TxtRecord
from cloud.errors import DnsProviderError

log = logging.getLogger(__name__)

NAME = "lexicon"


class LexiconProvider:
    def __init__(
        self,
        provider: str,
        options: Mapping[str, str],
        secret_options: Mapping[str, str],
        ttl: int | None = None,
    ) -> None:
        os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
        self._provider = provider
        self._options = {**options, **secret_options}
        self._secrets = [v for v in secret_options.values() if v]
        self._ttl = ttl

    def add_txt(self, record: TxtRecord) -> None:
        name = record.fqdn.rstrip(".")
        with self._operations(record) as ops:
            before = self._values(ops, name, record)
            if record.value in before:
                return
            self._do(record, "create", ops.create_record, "TXT", name, record.value)
        # A fresh client: some Lexicon providers cache the zone they read before the create.
        with self._operations(record) as ops:
            lost = [v for v in before if v not in self._values(ops, name, record)]
            if not lost:
                log.info("lexicon/%s: added a TXT value at %s", self._provider, record.fqdn)
                return
            for value in lost:
                self._do(record, "create", ops.create_record, "TXT", name, value)
        with self._operations(record) as ops:
            restored = all(v in self._values(ops, name, record) for v in lost)
        outcome = "it was put back" if restored else "putting it back failed"
        raise DnsProviderError(
            NAME,
            record.fqdn,
            f"Lexicon's {self._provider} provider replaced the TXT record instead of adding a "
            f"value ({len(lost)} other value(s) vanished; {outcome}): it cannot keep two TXT "
            "values at one name, which the apex and wildcard challenges need. Use a provider "
            "that can, or a CNAME from _acme-challenge to a zone on one",
        )

    def remove_txt(self, record: TxtRecord) -> None:
        name = record.fqdn.rstrip(".")
        with self._operations(record) as ops:
            if record.value not in self._values(ops, name, record):
                return
            self._do(record, "delete", ops.delete_record, None, "TXT", name, record.value)
        log.info("lexicon/%s: removed a TXT value at %s", self._provider, record.fqdn)

    # --- Lexicon -----------------------------------------------------------------------------

    def _operations(self, record: TxtRecord) -> Any:
        from lexicon.client import Client
        from lexicon.config import ConfigResolver, DictConfigSource

        zone = record.zone.rstrip(".")
        config = ConfigResolver().with_dict(
            {
                "provider_name": self._provider,
                "domain": zone,
                "ttl": self._ttl or record.ttl,
                self._provider: dict(self._options),
            }
        )
        client = self._do(record, "set up", Client, config)
        # Our zone, first in line, over the one Lexicon guessed with tldextract.
        client.config.add_config_source(DictConfigSource({"domain": zone}), 0)
        return _Entered(self, record, client)

    def _values(self, ops: Any, name: str, record: TxtRecord) -> list[str]:
        found = self._do(record, "list", ops.list_records, "TXT", name)
        return [r["content"] for r in found if r.get("type", "TXT") == "TXT"]

    def _do(self, record: TxtRecord, what: str, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except DnsProviderError:
            raise
        except Exception as exc:  # Lexicon providers raise anything; translate it once, here
            raise self._error(record, what, exc) from exc

    def _error(self, record: TxtRecord, what: str, exc: Exception) -> DnsProviderError:
        import requests
        from lexicon.exceptions import AuthenticationError, ProviderNotAvailableError

        where = f"Lexicon {self._provider}: {what}"
        transient = False
        if isinstance(exc, requests.HTTPError) and exc.response is not None:
            status = exc.response.status_code
            transient = status >= 500 or status == 429
            cause = f"{where} failed with HTTP {status}"
            if status in (401, 403):
                cause = f"{where}: the DNS host refused the credentials (HTTP {status})"
        elif isinstance(exc, requests.ConnectionError | requests.Timeout):
            cause, transient = f"{where}: cannot reach the DNS host ({type(exc).__name__})", True
        elif isinstance(exc, AuthenticationError):
            cause = f"{where}: authentication failed ({self._scrub(str(exc))})"
        elif isinstance(exc, ProviderNotAvailableError):
            cause = f"{where}: {self._scrub(str(exc))}"
        else:
            cause = f"{where}: {type(exc).__name__}: {self._scrub(str(exc))}"
        return DnsProviderError(NAME, record.fqdn, cause, transient=transient)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text[:300]


class _Entered:
    """`with` over a Lexicon client, translating a failure to authenticate or connect."""

    def __init__(self, owner: LexiconProvider, record: TxtRecord, client: Any) -> None:
        self._owner, self._record, self._client = owner, record, client

    def __enter__(self) -> Any:
        return self._owner._do(self._record, "authenticate", self._client.__enter__)

    def __exit__(self, *exc_info: Any) -> None:
        self._client.__exit__(*exc_info)


def _build(values: Mapping[str, Any]) -> LexiconProvider:
    return LexiconProvider(
        values["provider"],
        values.get("options", {}),
        values.get("secret_options", {}),
        values.get("ttl"),
    )


INFO = ProviderInfo(
    name=NAME,
    summary="any DNS host dns-lexicon 3.x supports, through its provider of that name",
    settings=(
        Setting("provider", 'the Lexicon provider name, e.g. "powerdns", "gandi", "ovh"'),
        Setting("options", "the Lexicon provider's plain options", required=False, kind=dict),
        Setting(
            "secret_options",
            "the Lexicon provider's secret options, as references (env:/file:)",
            required=False,
            secret=True,
            kind=dict,
        ),
        Setting(
            "ttl", "TTL of the TXT record (default: the challenge's)", required=False, kind=int
        ),
    ),
    permissions="what the Lexicon provider needs to list, create and delete TXT records in the "
    "zone (see its documentation)",
    build=_build,
)
