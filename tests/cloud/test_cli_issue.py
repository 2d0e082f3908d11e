"""`certdrop issue` as a user runs it: a whole process, its files, its output and exit code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from cloud.acme.certificate_keys import key_matches_certificate
from cloud.cli.exit_codes import EXIT_CONFIG, EXIT_DNS
from lab.issuer_config import bind_config
from tests.cloud.issuing import txt_values

CERTDROP = [sys.executable, "-m", "cloud.cli"]


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CERTDROP, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def _config(tmp_path, pebble, bind_auth):
    return bind_config(tmp_path, pebble, bind_auth)


def test_issue_writes_key_leaf_chain_and_fullchain_and_reports_each_step(
    tmp_path, pebble, bind_auth
):
    config = _config(tmp_path, pebble, bind_auth)
    out = tmp_path / "out"

    result = _run("--config", config.source, "issue", "example", "--out", out)

    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "cert.pem",
        "chain.pem",
        "fullchain.pem",
        "privkey.pem",
    ]
    assert (out / "privkey.pem").stat().st_mode & 0o777 == 0o600
    key = load_pem_private_key((out / "privkey.pem").read_bytes(), password=None)
    leaf = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())
    assert key_matches_certificate(key, leaf)
    assert (out / "fullchain.pem").read_text() == (out / "cert.pem").read_text() + (
        out / "chain.pem"
    ).read_text()
    for step in (
        "order placed",
        "TXT values served by every authoritative nameserver",
        "authorizations valid",
        "removed 2 TXT value(s)",
    ):
        assert step in result.stderr
    assert " ms)" in result.stderr
    assert "issued example: example.test, *.example.test" in result.stdout
    assert "PRIVATE KEY" not in result.stdout + result.stderr


def test_issue_fails_with_one_clear_line_and_the_dns_exit_code(
    tmp_path, pebble, bind_auth, tsig_key
):
    config = _config(tmp_path, pebble, bind_auth)
    (tmp_path / "tsig").write_text("AAAA" + tsig_key.secret[4:])  # a wrong TSIG secret

    result = _run("--config", config.source, "issue", "example", "--out", tmp_path / "out")

    assert result.returncode == EXIT_DNS
    errors = [line for line in result.stderr.splitlines() if line.startswith("certdrop: error:")]
    assert len(errors) == 1
    assert "TSIG" in errors[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    assert txt_values(bind_auth.address, "_acme-challenge.example.test.") == set()


def test_an_unknown_site_is_a_configuration_error(tmp_path, pebble, bind_auth):
    config = _config(tmp_path, pebble, bind_auth)

    result = _run("--config", config.source, "issue", "nope", "--out", tmp_path / "out")

    assert result.returncode == EXIT_CONFIG
    assert "sites.nope: no such site — use one of: example" in result.stderr


def test_secrets_never_appear_in_verbose_output(tmp_path, pebble, bind_auth, tsig_key):
    config = _config(tmp_path, pebble, bind_auth)

    result = _run("--config", config.source, "-v", "issue", "example", "--out", tmp_path / "o")

    assert result.returncode == 0, result.stderr
    assert tsig_key.secret not in result.stderr + result.stdout
    assert "PRIVATE KEY" not in result.stderr + result.stdout


def test_issue_refuses_a_site_another_run_is_working_on(tmp_path, pebble, bind_auth):
    from datetime import timedelta

    from cloud.pipeline import parts
    from cloud.pipeline.lock import SiteLock

    config = _config(tmp_path, pebble, bind_auth)
    with SiteLock(parts.store(config), "example", timedelta(minutes=5), owner="a-cron-run"):
        result = _run("--config", config.source, "issue", "example")

    assert result.returncode == EXIT_CONFIG
    assert "site example is being worked on by run a-cron-run (pid" in result.stderr
