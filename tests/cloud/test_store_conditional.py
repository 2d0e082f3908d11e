"""A store that ignores conditional writes is refused before it can lose a lock (issue 14).

moto's S3 stands in for a store that honours them; the same moto behind
`lab.s3_header_stripping_proxy`, which drops `If-None-Match` and `If-Match` from writes, for an
S3-compatible server that accepts them and writes anyway. Both are reached through the real S3
store code (the configuration's `endpoint_url`), the commands through `cloud.cli.main.main`.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Iterator

import pytest

from cloud.cli.exit_codes import EXIT_DOCTOR, EXIT_OK, EXIT_STORE
from cloud.cli.main import main
from cloud.config import load
from cloud.errors import StoreError
from cloud.keys.issuer import init_issuer
from cloud.pipeline import parts
from cloud.pipeline.site_run import Runner
from cloud.store.s3 import S3Store
from lab.moto import REGION, MotoServer
from lab.s3_header_stripping_proxy import HeaderStrippingProxy
from nas_agent import store_layout
from tests.cloud import store_fixtures

moto = store_fixtures.moto

PROBES = "state/store-probe/"
SITES = ("alpha", "beta", "gamma")


@pytest.fixture(scope="module")
def proxy(moto: MotoServer) -> Iterator[HeaderStrippingProxy]:
    with HeaderStrippingProxy(moto.endpoint_url) as stripping:
        yield stripping


def _config(tmp_path, url: str, endpoint: str | None = None, *, sites=()):
    """A configuration whose CA is never reached (no command here gets that far); its sites use
    dns-persist-01, so no DNS provider is needed either."""
    storage = f'url = "{url}"\n'
    if endpoint is not None:
        storage += f'endpoint_url = "{endpoint}"\nregion = "{REGION}"\n'
    text = textwrap.dedent(
        """
        [ca]
        directory = "https://127.0.0.1:9/directory"
        terms_agreed = true

        [storage]
        keys_dir = "keys"
        """
    )
    text += storage
    for site in sites:
        text += f'\n[sites.{site}]\ndomain = "{site}.test"\nchallenge = "dns-persist-01"\n'
    path = tmp_path / "certdrop.toml"
    path.write_text(text)
    return load(path)


def _certdrop(config, *args: str) -> int:
    return main(["-c", str(config.source), *args])


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("certdrop: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def _probe_writes(proxy: HeaderStrippingProxy, bucket: str) -> int:
    return proxy.count("PUT", f"/{bucket}/{PROBES}")


def test_init_refuses_a_store_that_ignores_conditional_writes_and_names_it(
    moto, proxy, tmp_path, capsys
):
    bucket = moto.create_bucket()
    config = _config(tmp_path, f"s3://{bucket}", proxy.url)

    code = _certdrop(config, "init")

    assert code == EXIT_STORE
    error = _error_line(capsys.readouterr().err)
    assert f"the object store s3://{bucket}/ at {proxy.url} ignores conditional writes" in error
    assert "If-None-Match: * over an existing object" in error
    assert "If-Match naming a wrong ETag" in error
    assert "testing" not in error  # the fake credentials
    assert not (tmp_path / "keys").exists()  # refused before any key was made
    stripped = {name for f in proxy.forwarded for name in f.stripped}
    assert stripped == {"If-None-Match", "If-Match"}  # the proxy really took them away


def test_init_on_moto_itself_probes_and_creates_the_keys(moto, tmp_path, capsys):
    bucket = moto.create_bucket()
    config = _config(tmp_path, f"s3://{bucket}", moto.endpoint_url)

    code = _certdrop(config, "init")

    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert f"object store s3://{bucket}/ at {moto.endpoint_url}: conditional writes" in out
    assert "certdrop-issuer-v1:" in out
    raw = moto.client("s3").list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in raw] == [store_layout.STORE_CHECK]  # the probe object is gone


def test_doctor_fails_the_store_check_through_the_proxy_and_passes_it_direct(
    moto, proxy, tmp_path, capsys
):
    bucket = moto.create_bucket()

    stripped = _certdrop(_config(tmp_path, f"s3://{bucket}", proxy.url), "doctor")
    failing = capsys.readouterr().out
    direct = _certdrop(_config(tmp_path, f"s3://{bucket}", moto.endpoint_url), "doctor")
    passing = capsys.readouterr().out

    assert stripped == EXIT_DOCTOR
    assert failing.startswith("[FAIL] object store: conditional writes")
    store = f"s3://{bucket}/ at {proxy.url}"
    for write in ("If-None-Match: * over an existing object", "If-Match naming a wrong ETag"):
        assert f"FAIL  {store}  {write}: accepted, where it must be refused" in failing
    assert "runs refuse this store (store.no_conditional_writes)" in failing
    assert "doctor: 1 of 3 check(s) failed" in failing
    assert direct == EXIT_OK, passing
    assert passing.startswith("[ok] object store: conditional writes")
    direct_store = f"s3://{bucket}/ at {moto.endpoint_url}"
    assert f"ok    {direct_store}  If-Match naming a wrong ETag: refused" in passing
    assert "doctor: all 3 check(s) passed" in passing


def test_a_local_directory_store_passes_init_and_doctor(tmp_path, capsys):
    config = _config(tmp_path, "store")

    assert _certdrop(config, "init") == EXIT_OK
    assert _certdrop(config, "doctor") == EXIT_OK

    out = capsys.readouterr().out
    assert f"object store {(tmp_path / 'store').as_uri()}: conditional writes honoured" in out
    assert "[ok] object store: conditional writes" in out
    assert sorted(p.name for p in (tmp_path / "store" / "state").iterdir()) == [
        "store-check.json",
        "store-probe",
    ]
    assert not list((tmp_path / "store" / "state" / "store-probe").iterdir())


def test_issue_and_run_refuse_the_store_and_one_run_probes_it_once(moto, proxy, tmp_path, capsys):
    bucket = moto.create_bucket()
    config = _config(tmp_path, f"s3://{bucket}", proxy.url, sites=SITES)

    issued = _certdrop(config, "issue", "alpha")
    issue_error = _error_line(capsys.readouterr().err)
    init_issuer(parts.keystore(config))  # `run` publishes: it needs the issuer's keys
    probes_before = _probe_writes(proxy, bucket)
    ran = _certdrop(config, "run", "--concurrency", "3")
    table = capsys.readouterr().out

    assert issued == EXIT_STORE
    assert f"the object store s3://{bucket}/ at {proxy.url} ignores conditional" in issue_error
    assert ran == EXIT_STORE
    rows = [line.split() for line in table.splitlines()]
    assert [row[:2] for row in rows] == [[site, "failed"] for site in SITES]
    assert all("ignores conditional writes" in line for line in table.splitlines())
    # Three sites on three threads, one probe (its three writes) for them all.
    assert _probe_writes(proxy, bucket) - probes_before == 3
    # No run took a lock, placed an order or saved a state on it.
    keys = [o["Key"] for o in moto.client("s3").list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == [store_layout.STORE_CHECK]


def test_a_run_gets_the_stores_refusal_as_a_store_error_with_its_code(moto, proxy, tmp_path):
    bucket = moto.create_bucket()
    config = _config(tmp_path, f"s3://{bucket}", proxy.url, sites=SITES)
    store = S3Store(bucket, endpoint_url=proxy.url, region=REGION)

    outcome = Runner(config, store, parts.keystore(config), None).run_site("alpha", force=True)

    assert outcome.result == "failed"
    assert isinstance(outcome.error, StoreError)
    assert outcome.error.code == "store.no_conditional_writes"
    assert outcome.error.transient is False


def _requests_for(store: S3Store, key: str) -> Counter[str]:
    """Counts this store's requests naming `key`, or a key below it, by HTTP method."""
    seen: Counter[str] = Counter()

    def count(request, **_):
        if f"/{store.bucket}/{key}" in request.url:
            seen[request.method] += 1

    store.client.meta.events.register("before-send.s3", count)
    return seen


def test_the_store_is_probed_once_per_endpoint_then_read_with_one_get(moto, proxy, tmp_path):
    bucket = moto.create_bucket()
    config = _config(tmp_path, f"s3://{bucket}", moto.endpoint_url, sites=SITES)

    def run(endpoint: str) -> tuple[Counter[str], Counter[str], str]:
        store = S3Store(bucket, endpoint_url=endpoint, region=REGION)
        probes = _requests_for(store, PROBES)
        record = _requests_for(store, store_layout.STORE_CHECK)
        runner = Runner(config, store, parts.keystore(config), None)
        # The CA is never reached: each site fails there, after the store was checked.
        reasons = [o.reason for o in runner.run_many(SITES, concurrency=3, force=True)]
        return probes, record, " ".join(reasons)

    first = run(moto.endpoint_url)
    second = run(moto.endpoint_url)
    moved = run(proxy.url)  # the same bucket reached through another endpoint
    back = run(moto.endpoint_url)
    again = run(moto.endpoint_url)

    assert first[:2] == (Counter(PUT=3, DELETE=1), Counter(GET=1, PUT=1))
    assert second[:2] == (Counter(), Counter(GET=1))  # one GET: the record names this endpoint
    assert "conditional writes" not in first[2] + second[2]
    assert moved[:2] == (Counter(PUT=3, DELETE=1), Counter(GET=1, PUT=1))
    assert moved[2].count("ignores conditional writes") == 3
    assert back[:2] == (Counter(PUT=3, DELETE=1), Counter(GET=1, PUT=1))  # the record changed
    assert again[:2] == (Counter(), Counter(GET=1))


def test_a_store_is_named_by_its_url_and_endpoint_never_by_a_credential():
    store = S3Store("fleet", "eu", endpoint_url="https://key:secret@minio.lan:9000/s3?token=t")

    assert store.location == "s3://fleet/eu/ at https://minio.lan:9000/s3"
    assert S3Store("fleet").location == "s3://fleet/ on AWS S3"
