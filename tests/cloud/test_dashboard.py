"""The fleet dashboard: the page, the timeline and the JSON for a fleet with one expired, one due
and one healthy site; served by `certdrop dashboard` and by the Lambda behind a function URL."""

from __future__ import annotations

import base64
import html
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import requests

from cloud.errors import StoreError
from cloud.fleet.alerts.rules import evaluate
from cloud.fleet.dashboard import make_app, view
from cloud.fleet.dashboard.server import serving
from cloud.fleet.status import FleetStatus, collect
from cloud.pipeline.site_state import (
    CsrRefusal,
    ErrorRecord,
    load_site_state,
    save_site_state,
)
from lab.sample_fleet import (
    DAY,
    SITES,
    _record,
    _registry,
    add_custody_site,
    make_fleet,
)
from nas_agent.enrollment import enrollment_of
from nas_agent.keys import generate_agent_keys

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"
RED = "#c62828"
GREEN = "#2e7d32"


@pytest.fixture
def fleet(tmp_path):
    return make_fleet(tmp_path, NOW)


@pytest.fixture
def client(fleet):
    return make_app(lambda: collect(fleet.config, fleet.store, NOW)).test_client()


def _text(fragment: str) -> str:
    """What a reader sees of an HTML fragment: tags dropped, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def _element(page: str, tag: str, **attributes: str) -> str:
    """The inside of the first `tag` element carrying these data-* attributes."""
    wanted = "".join(rf'(?=[^>]*\bdata-{k}="{re.escape(v)}")' for k, v in attributes.items())
    found = re.search(rf"<{tag}\b{wanted}[^>]*>(.*?)</{tag}>", page, re.S)
    assert found, f"no <{tag}> with {attributes}"
    return found.group(1)


def _badges(fragment: str) -> list[tuple[str, str]]:
    """(colour, text) of each badge in the fragment."""
    found = re.findall(r'<span class="badge (\w+)">(.*?)</span>', fragment, re.S)
    return [(level, _text(text)) for level, text in found]


def test_the_sites_table_shows_each_sites_health_and_days_left_in_colour_and_words(client):
    page = client.get("/").text

    expired = _element(page, "tr", site="expired")
    due = _element(page, "tr", site="due")
    healthy = _element(page, "tr", site="healthy")
    assert _badges(expired) == [("red", "expired · 5 days ago"), ("red", "expired")]
    assert _badges(due) == [("green", "25 days left"), ("amber", "due")]
    assert _badges(healthy) == [("green", "80 days left"), ("green", "healthy")]
    assert "v3" in _text(expired) and "2026-11-23 12:00 UTC" in _text(expired)
    assert "now two thirds of the lifetime passed" in _text(due)


def test_the_sites_table_shows_the_last_error_and_how_many_failures_in_a_row(client):
    page = client.get("/").text

    expired = _text(_element(page, "tr", site="expired"))
    assert "acme.rate_limited: too many certificates" in expired
    assert "4 failures in a row" in expired
    assert "backing off after 4 failures" in expired
    assert "rate_limited" not in _text(_element(page, "tr", site="healthy"))


def test_the_grid_shows_each_agents_version_of_each_site(client):
    page = client.get("/").text

    ok_healthy = _element(page, "td", agent="nas-ok", site="healthy")
    behind_healthy = _element(page, "td", agent="nas-behind", site="healthy")
    assert _text(ok_healthy) == "v2 current 80 days left"
    assert _badges(behind_healthy) == [("amber", "behind"), ("amber", "renew soon · 20 days left")]
    assert _text(behind_healthy).startswith("v1 behind")
    assert _text(_element(page, "td", agent="nas-behind", site="due")) == "not assigned"
    assert _text(_element(page, "td", agent="nas-quiet", site="due")) == "v5 current 25 days left"


def test_an_assigned_site_an_agent_has_not_installed_is_marked_in_red(fleet):
    status = collect(fleet.config, fleet.store, NOW)
    quiet = status.agent("nas-quiet")
    emptied = replace(quiet, installed={})
    changed = replace(status, agents=tuple(emptied if a is quiet else a for a in status.agents))

    page = make_app(lambda: changed).test_client().get("/").text

    cell = _element(page, "td", agent="nas-quiet", site="due")
    assert _badges(cell) == [("red", "not installed")]


def test_the_agents_table_flags_the_quiet_and_the_failing_agent_and_shows_its_error(client):
    page = client.get("/").text

    quiet = _element(page, "tr", agent="nas-quiet")
    behind = _element(page, "tr", agent="nas-behind")
    ok = _element(page, "tr", agent="nas-ok")
    assert ("red", "quiet") in _badges(quiet)
    assert "2 days ago" in _text(quiet) and "reports every 15 min" in _text(quiet)
    assert ("red", "failing") in _badges(behind)
    assert "install.failed: DSM did not serve the new certificate" in _text(behind)
    assert _badges(ok) == [("green", "ok")]
    assert "10 min ago" in _text(ok)
    header = page.split("<thead>", 2)[1].split("</thead>")[0]  # the grid's column heads
    assert "nas-quiet quiet" in _text(header) and "nas-ok" in _text(header)


def test_the_summary_counts_sites_by_health_and_agents_needing_a_look(client):
    page = client.get("/").text

    summary = _element(page, "ul")
    assert _text(summary) == "1 expired 1 due 1 healthy 2 agents needing a look"
    assert "Generated 2026-11-28 12:00 UTC" in _text(page)


def test_text_from_the_store_is_escaped_on_the_page_and_in_the_picture(fleet, client):
    state = load_site_state(fleet.store, "expired")
    attack = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
    save_site_state(
        fleet.store, replace(state, last_error=ErrorRecord("badCSR", attack, NOW, False))
    )

    page = client.get("/").text
    picture = client.get("/timeline.svg").text

    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;img" in page
    assert attack in _text(_element(page, "tr", site="expired"))
    ET.fromstring(picture)  # still well-formed


def test_the_page_fetches_nothing_and_runs_no_script(client):
    response = client.get("/")

    page = response.text
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert re.findall(r"<link\b[^>]*>", page) == ['<link rel="icon" href="data:,">']
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert "<svg" in page  # the timeline is inline, not a second request


def test_the_dashboard_is_read_only(client):
    for path in ("/", "/status.json", "/timeline.svg"):
        assert client.post(path).status_code == 405
        assert client.delete(path).status_code == 405


def test_status_json_is_the_fleet_read_model(fleet, client):
    response = client.get("/status.json")

    assert response.mimetype == "application/json"
    assert response.get_json() == collect(fleet.config, fleet.store, NOW).as_json()


def _rows(picture: str) -> dict[str, ET.Element]:
    root = ET.fromstring(picture)
    return {g.get("data-site"): g for g in root.iter(f"{SVG}g") if g.get("class") == "site-row"}


def test_the_timeline_is_svg_with_one_row_per_site_coloured_by_days_left(client):
    response = client.get("/timeline.svg")

    assert response.mimetype == "image/svg+xml"
    rows = _rows(response.text)
    assert list(rows) == list(SITES)
    bars = {site: row.find(f"{SVG}rect") for site, row in rows.items()}
    assert {site: bar.get("fill") for site, bar in bars.items()} == {
        "expired": RED,
        "due": GREEN,
        "healthy": GREEN,
    }
    # Bars run from not_before to not_after: issued 95, 65 and 10 days ago, lifetimes alike.
    starts = [float(bars[s].get("x")) for s in SITES]
    widths = {round(float(bars[s].get("width"))) for s in SITES}
    assert starts == sorted(starts) and len(set(starts)) == 3
    assert len(widths) == 1
    assert "expired 5 days ago" in "".join(rows["expired"].itertext())


def test_the_timeline_marks_now_the_next_renewals_and_each_agents_installed_expiry(client):
    picture = client.get("/timeline.svg").text

    rows = _rows(picture)
    root = ET.fromstring(picture)
    assert "now" in [t.text for t in root.iter(f"{SVG}text")]
    for site in SITES:
        (diamond,) = rows[site].iter(f"{SVG}polygon")
        assert "next renewal" in diamond.find(f"{SVG}title").text
    dots = {
        c.find(f"{SVG}title").text.split(":")[0]: c.get("fill")
        for c in rows["healthy"].iter(f"{SVG}circle")
    }
    assert set(dots) == {"nas-ok", "nas-behind"}
    assert dots["nas-behind"] == "#ffffff"  # hollow: behind
    assert dots["nas-ok"] == GREEN
    assert list(rows["expired"].iter(f"{SVG}circle")) == []  # no agent receives it


def test_a_site_never_issued_gets_a_row_without_a_bar(fleet):
    status = collect(fleet.config, fleet.store, NOW)
    never = replace(
        status.site("healthy"),
        site="fresh",
        version=None,
        not_before=None,
        not_after=None,
        days_left=None,
        health="never issued",
    )
    status = replace(status, sites=(*status.sites, never))
    client = make_app(lambda: status).test_client()

    rows = _rows(client.get("/timeline.svg").text)
    page = client.get("/").text

    assert rows["fresh"].find(f"{SVG}rect") is None
    assert "never issued" in "".join(rows["fresh"].itertext())
    assert ("grey", "never issued") in _badges(_element(page, "tr", site="fresh"))


def test_an_empty_fleet_renders_and_says_how_to_add_agents():
    client = make_app(lambda: FleetStatus(NOW, (), ())).test_client()

    page = client.get("/")
    picture = client.get("/timeline.svg").text

    assert page.status_code == 200
    assert "certdrop-agent enroll" in _text(page.text)
    assert _rows(picture) == {}
    assert "no sites configured" in "".join(ET.fromstring(picture).itertext())


def test_a_store_that_cannot_be_read_gives_503_with_the_reason(client):
    def broken():
        raise StoreError("state/sites/<x>.json", "S3 GetObject: AccessDenied")

    response = make_app(broken).test_client().get("/")

    assert response.status_code == 503
    assert "AccessDenied" in response.text
    assert "&lt;x&gt;" in response.text and "<x>" not in response.text


def test_served_on_loopback_the_page_answers_over_http(client, fleet):
    app = make_app(lambda: collect(fleet.config, fleet.store, NOW))

    with serving(app) as url:
        assert url.startswith("http://127.0.0.1:")
        response = requests.get(url, timeout=10)
        picture = requests.get(url + "timeline.svg", timeout=10)

    assert response.status_code == 200
    assert "nas-behind" in response.text
    assert picture.headers["Content-Type"].startswith("image/svg+xml")


# --- certdrop dashboard ------------------------------------------------------------------------


def _config_file(tmp_path, store_url: str):
    sites = "".join(f'[sites.{s}]\ndomain = "{s}.example.test"\nprovider = "dns"\n' for s in SITES)
    text = f"""
[ca]
directory = "https://acme.example/directory"
terms_agreed = true

[storage]
url = "{store_url}"

[providers.dns]
type = "exec"
command = ["/bin/true"]

{sites}"""
    path = tmp_path / "certdrop.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _certdrop(*args: str, **kwargs) -> subprocess.Popen:
    command = [sys.executable, "-m", "cloud.cli", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)  # fmt: skip


def test_certdrop_dashboard_serves_the_configured_store_on_loopback(tmp_path):
    make_fleet(tmp_path, datetime.now(UTC))
    config = _config_file(tmp_path, "store")

    process = _certdrop("--config", str(config), "dashboard", "--port", "0")
    try:
        line = process.stdout.readline()  # printed once listening; the pipe has no deadline
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, (line, process.stderr.read() if process.poll() is not None else "")
        page = requests.get(url.group(0), timeout=10).text
        status = requests.get(url.group(0) + "status.json", timeout=10).json()
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()

    assert "read-only" in line
    assert "nas-quiet" in page and "expired · 5 days ago" in page
    assert [s["site"] for s in status["sites"]] == list(SITES)


def test_certdrop_dashboard_refuses_a_port_in_use_and_a_bad_configuration(tmp_path):
    make_fleet(tmp_path, NOW)
    config = _config_file(tmp_path, "store")
    with serving(make_app(lambda: None)) as url:
        port = url.rsplit(":", 1)[1].strip("/")
        busy = _certdrop("--config", str(config), "dashboard", "--port", port)
        _, busy_err = busy.communicate(timeout=60)
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text('[sites.a]\ndomain = "a.example.test"\n', encoding="utf-8")
    bad = _certdrop("--config", str(bad_config), "dashboard", "--port", "0")
    _, bad_err = bad.communicate(timeout=60)

    assert busy.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in busy_err
    assert bad.returncode == 2
    assert "ca: missing" in bad_err


# --- the Lambda behind a function URL ----------------------------------------------------------


def _function_url_event(path: str) -> dict:
    """A GET as a Lambda function URL with AWS_IAM auth delivers it (payload format 2.0)."""
    now = datetime.now(UTC)
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "host": "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws",
            "accept": "text/html,application/xhtml+xml",
            "accept-encoding": "gzip, deflate, br",
            "user-agent": "Mozilla/5.0",
            "x-amz-date": now.strftime("%Y%m%dT%H%M%SZ"),
            "x-amz-security-token": "FwoGZXIvYXdzEXAMPLE",
            "x-amzn-trace-id": "Root=1-5e1b4151-5ac6c58f1a3b4c5d6e7f8a9b",
            "x-forwarded-for": "203.0.113.7",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdefghijklmnopqrstuvwxyz012345",
            "authorizer": {
                "iam": {
                    "accessKey": "ASIAEXAMPLE",
                    "accountId": "123456789012",
                    "callerId": "AROAEXAMPLE:operator",
                    "cognitoIdentity": None,
                    "principalOrgId": None,
                    "userArn": "arn:aws:sts::123456789012:assumed-role/operator/operator",
                    "userId": "AROAEXAMPLE:operator",
                }
            },
            "domainName": "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefghijklmnopqrstuvwxyz012345",
            "http": {
                "method": "GET",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "Mozilla/5.0",
            },
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }


@pytest.fixture
def deployed(tmp_path, monkeypatch):
    """The bucket of a deployed stack on moto, holding make_fleet's fleet and its config."""
    pytest.importorskip("apig_wsgi")
    from cloud.store.s3 import S3Store
    from lab.moto import MotoServer, fake_aws_env

    fleet = make_fleet(tmp_path, datetime.now(UTC))
    with fake_aws_env(), MotoServer() as moto:
        monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint_url)
        bucket = moto.create_bucket()
        store = S3Store(bucket, endpoint_url=moto.endpoint_url)
        config = _config_file(tmp_path, f"s3://{bucket}").read_bytes()
        store.put("config/certdrop.toml", config)
        for prefix in ("state/", "agents/"):
            for info in fleet.store.list(prefix):
                store.put(info.key, fleet.store.get(info.key).body)
        monkeypatch.setenv("CERTDROP_BUCKET", bucket)
        monkeypatch.setenv("CERTDROP_QUEUE_URL", f"{moto.endpoint_url}/123456789012/unused")
        yield fleet


def test_the_lambda_answers_a_function_url_request_for_the_page(deployed):
    from cloud.aws import handlers

    response = handlers.dashboard(_function_url_event("/"), None)

    assert response["statusCode"] == 200
    assert response["headers"]["content-type"].startswith("text/html")
    assert response["isBase64Encoded"] is False
    page = response["body"]
    assert ("red", "expired") in _badges(_element(page, "tr", site="expired"))
    assert ("amber", "behind") in _badges(_element(page, "td", agent="nas-behind", site="healthy"))


def test_the_lambda_answers_status_json_and_the_timeline(deployed):
    from cloud.aws import handlers

    data = handlers.dashboard(_function_url_event("/status.json"), None)
    picture = handlers.dashboard(_function_url_event("/timeline.svg"), None)

    assert data["statusCode"] == 200
    assert data["headers"]["content-type"] == "application/json"
    status = json.loads(data["body"])
    assert {s["site"]: s["health"] for s in status["sites"]} == {
        "expired": "expired",
        "due": "due",
        "healthy": "healthy",
    }
    assert picture["statusCode"] == 200
    svg = base64.b64decode(picture["body"]) if picture["isBase64Encoded"] else picture["body"]
    assert list(_rows(svg)) == list(SITES)


def test_the_served_times_are_the_stores_now_not_a_cached_page(deployed, monkeypatch):
    from cloud.aws import handlers

    first = handlers.dashboard(_function_url_event("/status.json"), None)
    later = datetime.now(UTC) + timedelta(days=30)

    class _Later(datetime):
        @classmethod
        def now(cls, tz=None):
            return later

    monkeypatch.setattr(handlers, "datetime", _Later)
    second = handlers.dashboard(_function_url_event("/status.json"), None)

    assert first["body"] != second["body"]
    assert later.isoformat() in second["body"]


# --- found by an independent review of what the views tell (each failed before its fix) ---


def test_the_dashboard_summary_counts_a_site_whose_csr_was_refused(fleet, tmp_path):
    """README (Dashboard): "One page: a summary, ..."; the bar: a site in trouble is never
    shown healthy. Health "CSR refused" is red in the sites table.

    Reproduction: agent-custody site "cust" whose only agent's CSR statement was refused
    (csr.key_reused); the `csr_refused` alert fires.

    Expected: the summary at the top of the page counts it (4 sites: 1 expired, 1 due, 1
    healthy, 1 CSR refused).
    Instead: the summary lists only the issuer-custody health words, so it reads "1 expired,
    1 due, 1 healthy" for four sites: the refused site is not in it at all (likewise "waiting"
    and "waiting for CSR").

    Found by an independent review of what the views tell; it failed before the fix.
    """
    now = fleet.now
    rec = _record("cust", 1, now - 10 * DAY, 90 * DAY)
    refusal = CsrRefusal("csr.key_reused", "the CSR reuses the key", now - DAY, 2)
    fleet = add_custody_site(fleet, tmp_path, {"nas-ca": rec}, refusal)

    status = collect(fleet.config, fleet.store, now)
    assert status.site("cust").health == "CSR refused"
    page = make_app(lambda: status).test_client().get("/").text
    summary = re.search(r'<ul class="summary".*?</ul>', page, re.S).group(0)
    words = " ".join(re.sub(r"<[^>]+>", " ", summary).split())

    assert "CSR refused" in words, f"summary of 4 sites: {words!r}"


def test_an_agent_added_a_minute_ago_is_not_flagged_red_on_the_dashboard(fleet):
    """README (Operating a fleet): an agent is quiet after "no report for three of its poll
    intervals"; `status.py`: "Quiet also before the first report, once it is overdue since the
    agent was added". The bar: a healthy one is not shown failing.

    Reproduction: agent nas-new approved two minutes ago, no report yet (its first poll has not
    come).

    Expected: neutral until its first report is overdue, as in `certdrop status` ("no status
    report yet") and the alerts (none).
    Instead: the dashboard flags it with a red "report problem" badge and counts it under
    "agents needing a look", exactly like an agent whose report failed to verify.

    Found by an independent review of what the views tell; it failed before the fix.
    """
    now = fleet.now
    _registry(fleet.store).add(
        enrollment_of(generate_agent_keys("nas-new")), ("healthy",), now - timedelta(minutes=2)
    )

    status = collect(fleet.config, fleet.store, now)
    agent = status.agent("nas-new")
    assert not agent.quiet and not [a for a in evaluate(status, now) if a.agent == "nas-new"]
    flags = [(b.level, b.word) for b in view.agent_flags(agent)]

    assert ("red", "report problem") not in flags, f"dashboard flags {flags}"
