"""What a new user hits in the first hour (issue 14), driven through the `certdrop` CLI as typed."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
from datetime import timedelta
from pathlib import Path, PurePosixPath

import pytest
import tomlkit
from cryptography import x509
from cryptography.x509.oid import NameOID
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cloud.cli.exit_codes import EXIT_ACME, EXIT_CONFIG, EXIT_DNS, EXIT_OK, EXIT_STORE
from cloud.config import Config, parse
from cloud.errors import ConfigError
from cloud.pipeline import parts
from cloud.pipeline.lock import SiteLock
from lab.issuer_config import bind_config
from lab.moto import REGION, MotoServer, fake_aws_env
from lab.ports import free_port, wait_until
from nas_agent.enrollment import enrollment_of
from nas_agent.keys import generate_agent_keys

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"


def _certdrop(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "cloud.cli", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_relative_paths_resolve_against_the_config_file_from_any_working_directory(
    tmp_path, pebble, bind_auth
):
    home = tmp_path / "ops"
    home.mkdir()
    bind_config(home, pebble, bind_auth)  # url = "store", keys_dir = "keys": both relative
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    runs = [
        _certdrop(home, "--config", "certdrop.toml", "init"),
        _certdrop(home, "--config", "certdrop.toml", "site", "list"),
        _certdrop(elsewhere, "-c", "../ops/certdrop.toml", "issue", "example", "--out", "cert"),
        _certdrop(elsewhere, "-c", "../ops/certdrop.toml", "status"),
    ]

    for run in runs:
        assert run.returncode == EXIT_OK, run.stderr
        assert "Traceback" not in run.stderr
    assert (home / "store" / "state" / "sites" / "example.json").is_file()
    assert (home / "keys").is_dir() and not (elsewhere / "keys").exists()
    assert (elsewhere / "cert" / "fullchain.pem").is_file()  # --out is the user's own path


# --- helpers of the tests below ------------------------------------------------------------------


def _run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`certdrop ARGS` in `cwd`, with `env` added to the environment."""
    full = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    command = [sys.executable, "-m", "cloud.cli", *args]
    return subprocess.run(command, cwd=cwd, env=full, capture_output=True, text=True, timeout=120)


def _error_lines(run: subprocess.CompletedProcess) -> list[str]:
    return [line for line in run.stderr.splitlines() if line.startswith("certdrop: error:")]


def _unreachable_aws() -> dict[str, str]:
    """Throw-away AWS credentials and every AWS endpoint on a loopback port nobody listens on."""
    with fake_aws_env():
        env = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{free_port()}"
    env["AWS_MAX_ATTEMPTS"] = "1"  # botocore's retries only make the test slower
    return env


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


LE_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
LE_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"

# A configuration that needs no running service to load: `site list` reads only the file.
OFFLINE = """\
[ca]
directory = "https://acme-staging-v02.api.letsencrypt.org/directory"
terms_agreed = true
contact = "ops@example.test"

[storage]
url = "store"
keys_dir = "keys"

[dns]
resolvers = ["127.0.0.1:53"]
propagation_timeout = 30

[providers.dns]
type = "rfc2136"
server = "127.0.0.1:53"
tsig_name = "acme-key"
tsig_secret = "env:TSIG_SECRET"

[sites.example]
domain = "example.test"
provider = "dns"
"""


# --- 5. error messages -------------------------------------------------------------------------


@pytest.mark.parametrize("wrong", ["a path the CA does not serve", "a port nobody listens on"])
def test_a_wrong_ca_directory_is_reported_with_its_url_and_its_setting(
    tmp_path, pebble, bind_auth, wrong
):
    bind_config(tmp_path, pebble, bind_auth)
    if wrong == "a path the CA does not serve":
        url = pebble.directory_url.replace("/dir", "/acme/directory")
    else:
        url = f"https://127.0.0.1:{free_port()}/directory"
    config = tmp_path / "certdrop.toml"
    config.write_text(config.read_text().replace(pebble.directory_url, url))

    run = _run(tmp_path, "-c", "certdrop.toml", "issue", "example")

    assert run.returncode == EXIT_ACME, run.stderr
    assert "Traceback" not in run.stderr
    (error,) = _error_lines(run)
    assert url in error and "ca.directory" in error


def test_an_unreachable_secrets_manager_holding_the_issuer_keys_is_the_key_store_exit(tmp_path):
    config = OFFLINE.replace(
        'keys_dir = "keys"',
        'acme_secret = "certdrop/acme"\n'
        'signing_secret = "certdrop/signing"\n'
        'escrow_secret = "certdrop/escrow"',
    )
    (tmp_path / "certdrop.toml").write_text(config)

    run = _run(tmp_path, "-c", "certdrop.toml", "init", env=_unreachable_aws())

    assert run.returncode == EXIT_STORE, run.stderr
    assert "Traceback" not in run.stderr
    (error,) = _error_lines(run)
    assert "Secrets Manager" in error and "certdrop/signing" in error


def test_an_aws_sm_reference_secrets_manager_cannot_reach_is_the_store_exit(
    tmp_path, pebble, bind_auth
):
    bind_config(tmp_path, pebble, bind_auth)
    config = tmp_path / "certdrop.toml"
    text = re.sub(
        r'tsig_secret = "file:[^"]*"', 'tsig_secret = "aws-sm:certdrop/tsig"', config.read_text()
    )
    config.write_text(text)

    run = _run(tmp_path, "-c", "certdrop.toml", "issue", "example", env=_unreachable_aws())

    assert run.returncode == EXIT_STORE, run.stderr
    assert "Traceback" not in run.stderr
    (error,) = _error_lines(run)
    assert "aws-sm:certdrop/tsig" in error and "Secrets Manager" in error


@pytest.mark.parametrize(
    "command", [(".venv38/bin/python", "-m", "cloud.cli"), (".venv38/bin/certdrop",)]
)
def test_certdrop_on_a_python_older_than_3_11_says_which_python_it_needs(tmp_path, command):
    program = REPO / command[0]
    if not program.exists():
        pytest.skip(f"no {command[0]} (make test creates the Python 3.8 venv)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [str(program), *command[1:], "--help"]
    run = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)

    assert run.returncode != EXIT_OK
    assert "Traceback" not in run.stderr
    (line,) = run.stderr.strip().splitlines()
    assert "3.11" in line and "3.8" in line


# --- 6. silent waits ---------------------------------------------------------------------------


def test_a_propagation_wait_shows_which_nameserver_still_lacks_which_value(
    tmp_path, pebble, bind_auth, bind_stale
):
    nameservers = {
        "ns1.example.test": bind_auth.address,
        "ns2.example.test": bind_stale.address,  # never gets the values
        "ns1.validation.test": bind_auth.address,
    }
    bind_config(tmp_path, pebble, bind_auth, nameservers=nameservers, propagation_timeout=8)
    journal = tmp_path / "store" / "state" / "challenges" / "example.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "cloud.cli", "-c", "certdrop.toml", "issue", "example"]
    with subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:

        def journalled() -> list[str]:
            if process.poll() is not None:
                raise AssertionError("certdrop ended before it journalled its TXT values")
            try:  # the values are journalled before they are added, and until they are removed
                entries = json.loads(journal.read_text())["entries"]
                return [entry["record"]["value"] for entry in entries]
            except (FileNotFoundError, ValueError):
                return []

        values = wait_until(journalled, 60, "the TXT values journalled")
        _out, err = process.communicate(timeout=120)

    assert process.returncode == EXIT_DNS, err
    assert len(values) == 2  # the apex's and the wildcard's, at one name
    lines = err.splitlines()
    error_at = next(i for i, line in enumerate(lines) if line.startswith("certdrop: error:"))
    progress = [
        i
        for i, line in enumerate(lines)
        if "ns2.example.test." in line
        and bind_stale.address in line
        and all(value in line for value in values)
    ]
    assert progress, err
    assert all(i < error_at for i in progress)
    assert len(progress) <= 2, err  # every few seconds, not at every poll


# --- 8. small things ---------------------------------------------------------------------------


def test_the_issue_summary_names_the_issuer_of_the_leaf(tmp_path, pebble, bind_auth):
    bind_config(tmp_path, pebble, bind_auth)

    run = _run(tmp_path, "-c", "certdrop.toml", "issue", "example", "--out", "cert")

    assert run.returncode == EXIT_OK, run.stderr
    leaf = x509.load_pem_x509_certificate((tmp_path / "cert" / "cert.pem").read_bytes())
    issuer_cn = leaf.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    (line,) = [line for line in run.stdout.splitlines() if line.split()[:1] == ["issuer"]]
    assert line.split(None, 1)[1].startswith(issuer_cn)


def test_issuer_show_prints_the_public_lines_init_printed(tmp_path, pebble, bind_auth):
    bind_config(tmp_path, pebble, bind_auth)
    before = _run(tmp_path, "-c", "certdrop.toml", "issuer", "show")
    init = _run(tmp_path, "-c", "certdrop.toml", "init")

    show = _run(tmp_path, "-c", "certdrop.toml", "issuer", "show")

    def lines(text: str) -> list[str]:
        return re.findall(r"certdrop-(?:issuer|escrow)-v1:\S+", text)

    assert before.returncode == EXIT_CONFIG and "certdrop init" in before.stderr
    assert init.returncode == EXIT_OK, init.stderr
    assert show.returncode == EXIT_OK, show.stderr
    assert len(lines(init.stdout)) == 2 and lines(show.stdout) == lines(init.stdout)
    assert "PRIVATE" not in show.stdout


def test_certdrop_version_is_the_installed_packages(tmp_path):
    run = _run(tmp_path, "--version")

    assert run.returncode == EXIT_OK, run.stderr
    assert run.stdout.strip() == f"certdrop {importlib.metadata.version('certdrop')}"


def test_help_shows_the_default_configuration_and_certdrop_config_sets_another(
    tmp_path, pebble, bind_auth
):
    home = tmp_path / "ops"
    home.mkdir()
    bind_config(home, pebble, bind_auth)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    usage = _run(elsewhere, "--help", env={"CERTDROP_CONFIG": ""})  # "": not set
    listed = _run(elsewhere, "site", "list", env={"CERTDROP_CONFIG": "../ops/certdrop.toml"})

    assert usage.returncode == EXIT_OK
    assert "certdrop.toml" in usage.stdout and "CERTDROP_CONFIG" in usage.stdout
    assert listed.returncode == EXIT_OK, listed.stderr
    assert "example.test, *.example.test" in listed.stdout


def _with_staging(config: Config, staging: str) -> None:
    """Names `staging` as the CA's staging directory in the configuration's file."""
    path = Path(config.source)
    text = path.read_text().replace("[ca]\n", f'[ca]\nstaging_directory = "{staging}"\n', 1)
    path.write_text(text)


def test_a_dry_run_issues_from_staging_and_leaves_state_and_agents_as_they_were(
    tmp_path, pebble, bind_auth
):
    _with_staging(bind_config(tmp_path, pebble, bind_auth), pebble.directory_url)
    token = enrollment_of(generate_agent_keys("nas-01")).token()
    for setup in (
        ("init",),
        ("issue", "example"),
        ("agent", "add", token, "--site", "example"),
    ):
        done = _run(tmp_path, "-c", "certdrop.toml", *setup)
        assert done.returncode == EXIT_OK, done.stderr
    store_before = _files(tmp_path / "store")
    keys_before = set(os.listdir(tmp_path / "keys"))

    run = _run(tmp_path, "-c", "certdrop.toml", "issue", "example", "--dry-run", "--out", "try")

    assert run.returncode == EXIT_OK, run.stderr
    assert "dry run" in run.stdout and "issued example: example.test, *.example.test" in run.stdout
    assert (tmp_path / "try" / "fullchain.pem").is_file()
    assert _files(tmp_path / "store") == store_before  # no state, version, escrow, agent object
    (account,) = set(os.listdir(tmp_path / "keys")) - keys_before
    assert "staging" in account  # its own ACME account at the staging CA


def test_a_dry_run_takes_the_sites_lock(tmp_path, pebble, bind_auth):
    config = bind_config(tmp_path, pebble, bind_auth)
    _with_staging(config, pebble.directory_url)
    with SiteLock(parts.store(config), "example", timedelta(minutes=5), owner="a-cron-run"):
        run = _run(tmp_path, "-c", "certdrop.toml", "issue", "example", "--dry-run")

    assert run.returncode == EXIT_CONFIG, run.stderr
    assert "site example is being worked on by run a-cron-run" in run.stderr


def test_a_dry_run_needs_a_staging_directory_unless_the_ca_is_lets_encrypt(
    tmp_path, pebble, bind_auth
):
    bind_config(tmp_path, pebble, bind_auth)

    run = _run(tmp_path, "-c", "certdrop.toml", "issue", "example", "--dry-run")

    assert run.returncode == EXIT_CONFIG, run.stderr
    assert "Traceback" not in run.stderr
    assert "ca.staging_directory" in run.stderr
    assert not (tmp_path / "store" / "state" / "sites").exists()
    lets_encrypt = OFFLINE.replace(LE_STAGING, LE_PRODUCTION)
    assert parse(lets_encrypt, tmp_path / "le.toml").ca.staging_directory == LE_STAGING


# --- 9. the README's examples ------------------------------------------------------------------


def _fenced(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", README.read_text(), re.M | re.S)


def test_every_readme_configuration_example_runs_as_printed(tmp_path):
    blocks = _fenced("toml")
    full = [b for b in blocks if re.search(r"^\[ca\]", b, re.M)]
    fragments = [b for b in blocks if b not in full]
    assert len(full) >= 2  # the configuration reference and the AWS operator's configuration
    for block in blocks:
        tomllib.loads(block)
    reference, *others = full
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The reference, and each fragment added to it, from another working directory.
    for number, text in enumerate([reference, *(reference + "\n" + f for f in fragments)]):
        home = tmp_path / f"ops-{number}"
        home.mkdir()
        (home / "certdrop.toml").write_text(text)
        for command in (("site", "list"), ("status",)):
            run = _run(elsewhere, "-c", f"../ops-{number}/certdrop.toml", *command)
            assert run.returncode == EXIT_OK, (text, run.stderr)
    # The AWS operator's: its placeholders are the stack's outputs, here moto's.
    with fake_aws_env(), MotoServer() as moto:
        secrets = moto.client("secretsmanager")
        outputs = {"BUCKET": moto.create_bucket(), "REGION": REGION}
        for name in (
            "ACME_ACCOUNT_SECRET_ARN",
            "ISSUER_SIGNING_KEY_SECRET_ARN",
            "ESCROW_KEY_SECRET_ARN",
        ):
            outputs[name] = secrets.create_secret(Name=name.lower())["ARN"]
        env = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
        env["AWS_ENDPOINT_URL"] = moto.endpoint_url
        for number, text in enumerate(others):
            for placeholder, value in outputs.items():
                text = text.replace(placeholder, value)
            home = tmp_path / f"aws-{number}"
            home.mkdir()
            (home / "certdrop.toml").write_text(text)
            runs = [
                _run(home, "-c", "certdrop.toml", *command, env=env)
                for command in (("init",), ("issuer", "show"), ("site", "list"))
            ]
            for run in runs:
                assert run.returncode == EXIT_OK, (text, run.stderr)
            assert "certdrop-issuer-v1:" in runs[0].stdout
    # One file name throughout: the one `certdrop` reads by default.
    names = set(re.findall(r"certdrop (?:-c|--config) (\S+)", README.read_text()))
    assert names == {"certdrop.toml"}


# --- 10. configuration edge cases --------------------------------------------------------------


def test_configuration_edge_cases_are_each_reported_together_never_as_a_traceback(tmp_path):
    text = OFFLINE.replace('contact = "ops@example.test"', 'contact = ["ops@example.test", 5]')
    text = text.replace("propagation_timeout = 30", "propagation_timeout = -1")
    text += '\n[dns.nameservers]\n"ns1.example.test" = { address = "192.0.2.53" }\n'
    (tmp_path / "certdrop.toml").write_text(text)

    run = _run(tmp_path, "-c", "certdrop.toml", "site", "list")

    assert run.returncode == EXIT_CONFIG, run.stderr
    assert "Traceback" not in run.stderr
    for key in ("ca.contact", "dns.propagation_timeout", 'dns.nameservers."ns1.example.test"'):
        assert f"  - {key}: " in run.stderr


def test_site_add_on_a_file_with_a_toml_syntax_error_names_the_line(tmp_path):
    text = OFFLINE.replace("propagation_timeout = 30", "propagation_timeout = = 30")
    (tmp_path / "certdrop.toml").write_text(text)
    line = text.splitlines().index("propagation_timeout = = 30") + 1

    run = _run(
        tmp_path,
        "-c",
        "certdrop.toml",
        "site",
        "add",
        "shop",
        "--domain",
        "shop.test",
        "--provider",
        "dns",
    )

    assert run.returncode == EXIT_CONFIG, run.stderr
    assert "Traceback" not in run.stderr
    (error,) = _error_lines(run)
    assert "certdrop.toml" in error
    assert f"line {line}" in run.stderr
    assert (tmp_path / "certdrop.toml").read_text() == text


_KEYS_OF = {
    "ca": (
        *("directory", "staging_directory", "contact", "terms_agreed", "ca_bundle", "eab_kid"),
        *("eab_hmac_key", "eab_hmac_alg", "preferred_chain", "order_timeout"),
    ),
    "storage": (
        *("url", "keys_dir", "endpoint_url", "region", "acme_secret", "signing_secret"),
        "escrow_secret",
    ),
    "dns": ("resolvers", "nameservers", "propagation_timeout"),
    "providers": (
        *("type", "server", "tsig_name", "tsig_secret", "api_url", "api_key", "command"),
        *("env", "secret_env", "options", "secret_options", "provider", "timeout", "ttl"),
    ),
    "sites": ("domain", "wildcard", "extra_names", "key_type", "provider", "profile", "challenge"),
    "alerts": (
        *("webhook_url", "webhook_secret", "sns_topic_arn", "expiry_days"),
        "remind_after_hours",
    ),
}
_STRINGS = (
    *("", "https://acme.example/dir", "http://127.0.0.1:8080/hook", "env:X", "file:/none"),
    *("aws-sm:name#field", "192.0.2.1", "192.0.2.1:53", "[2001:db8::1]:53", "::1", "a..b"),
    *("example.test", "*.example.test", "dns-01", "dns-persist-01", "ec-p384", "rfc2136"),
    *("exec", "lexicon", "route53", "cloudflare", "powerdns", "s3://", "s3://bucket/p"),
    *("file:///tmp/store", "arn:aws:sns:us-east-1:123456789012:t", "ops@example.test"),
    *("mailto:ops@example.test", "hmac-sha256", "HS384", "ns1.example.test.", "https://[x"),
)
_SCALARS = st.one_of(
    st.sampled_from(_STRINGS),
    st.text(max_size=12),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.booleans(),
)
_NAMES = st.sampled_from(("ns1.example.test", "ns1.example.test.", "x", "", "..")) | st.text(
    max_size=6
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_NAMES, inner, max_size=3),
    max_leaves=8,
)
_VALID = tomllib.loads(OFFLINE)


def _table(section: str, valid: dict) -> st.SearchStrategy:
    """The section's keys with any values, often the valid table with some keys changed."""
    keys = st.sampled_from((*_KEYS_OF[section], "unknown"))
    changed = st.dictionaries(keys, _VALUES, max_size=4)
    return st.builds(lambda extra: {**valid, **extra}, changed) | changed | _VALUES


_DOCUMENTS = st.fixed_dictionaries(
    {},
    optional={
        "ca": _table("ca", _VALID["ca"]),
        "storage": _table("storage", _VALID["storage"]),
        "dns": _table("dns", _VALID["dns"]),
        "alerts": _table("alerts", {"webhook_url": "https://hooks.example.test/"}),
        "providers": st.dictionaries(
            st.sampled_from(("dns", "p", "")),
            _table("providers", _VALID["providers"]["dns"]),
            max_size=2,
        )
        | _VALUES,
        "sites": st.dictionaries(
            st.sampled_from(("example", "Not An Id", "x.y")),
            _table("sites", _VALID["sites"]["example"]),
            max_size=2,
        )
        | _VALUES,
        "unknown": _VALUES,
    },
)


@settings(max_examples=400, deadline=None, report_multiple_bugs=False)
@given(document=_DOCUMENTS)
def test_any_configuration_document_ends_in_a_config_or_a_config_error(document):
    try:
        text = tomlkit.dumps(document)
    except Exception:  # a value tomlkit cannot write is no document at all
        assume(False)
        raise
    try:
        parse(text, PurePosixPath("/etc/certdrop/certdrop.toml"))
    except ConfigError:
        pass
    except Exception as exc:
        raise AssertionError(f"{type(exc).__name__}: {exc}\n--- the document:\n{text}") from exc
