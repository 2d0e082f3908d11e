"""Mistaken certdrop.toml values (or a file that is not UTF-8) are refused as configuration
problems (exit 2, every problem listed), never accepted to fail later with a traceback, a wrong
domain or a wrong folder (from independent reviews: each test failed before its fix)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cloud.cli.exit_codes import EXIT_CONFIG
from cloud.cli.main import main
from cloud.config import parse
from cloud.errors import ConfigError

_BASE = """
[ca]
directory = "https://ca.example/directory"
terms_agreed = true

[storage]
url = "store"

[providers.dns]
{provider}

[sites.example]
domain = "{domain}"
provider = "dns"
"""

_RFC2136 = 'type = "rfc2136"\nserver = "127.0.0.1:53"\ntsig_name = "k"\ntsig_secret = "env:K"'


def _text(provider: str = _RFC2136, domain: str = "example.com") -> str:
    return textwrap.dedent(_BASE).format(provider=provider, domain=domain)


@pytest.mark.parametrize(
    "provider",
    [
        pytest.param(_RFC2136 + "\ntimeout = nan", id="rfc2136-timeout-nan"),
        pytest.param(_RFC2136 + "\ntimeout = -1", id="rfc2136-timeout-negative"),
        pytest.param(_RFC2136 + "\ntimeout = 0", id="rfc2136-timeout-zero"),
        pytest.param('type = "route53"\ninsync_timeout = -5', id="route53-insync-negative"),
        pytest.param('type = "exec"\ncommand = ["/bin/true"]\ntimeout = inf', id="exec-inf"),
    ],
)
def test_a_provider_timeout_that_is_not_a_positive_number_is_a_config_problem(provider):
    """[ca].order_timeout and [dns].propagation_timeout refuse nan, inf, 0 and negatives; the
    providers' `timeout` settings take any float."""
    with pytest.raises(ConfigError):
        parse(_text(provider), Path("/tmp/certdrop.toml"))


def test_a_nan_provider_timeout_is_exit_2_naming_the_key(tmp_path, capsys):
    """Before, `certdrop issue` died of a ValueError from the socket layer (exit 1, "a bug; the
    traceback is printed") instead of exit 2 naming the key."""
    path = tmp_path / "certdrop.toml"
    path.write_text(_text(_RFC2136 + "\ntimeout = nan"))
    assert main(["-c", str(path), "issue", "example"]) == EXIT_CONFIG
    assert "providers.dns.timeout" in capsys.readouterr().err


def test_an_idn_domain_is_converted_as_browsers_and_cas_do_idna2008():
    """`straße.example` is `xn--strae-oqa.example` under IDNA 2008 / UTS 46 non-transitional
    (what Let's Encrypt, Chrome, Firefox and Safari use). Python's "idna" codec is IDNA 2003 and
    maps it to `strasse.example`: a different domain, which certdrop would then place TXT values
    for and order a certificate for."""
    config = parse(_text(domain="straße.example"), Path("/tmp/certdrop.toml"))
    assert config.sites["example"].domain == "xn--strae-oqa.example"


def test_a_domain_idna2008_disallows_is_refused():
    """`☃.example` (a symbol) is not a valid IDNA 2008 label; IDNA 2003 encodes it, so the site is
    accepted and every order is refused by the CA (rejectedIdentifier) instead of a config
    problem naming the domain."""
    with pytest.raises(ConfigError):
        parse(_text(domain="☃.example"), Path("/tmp/certdrop.toml"))


def test_two_sites_for_the_same_names_are_a_config_problem():
    """Two [sites.*] tables ordering the same names (here `example.com` and `example.com.`)
    are accepted. They share one `_acme-challenge` name and one ACME account, so a run that
    died between newOrder and saving its URL looks the order up by names alone
    (`AcmeClient.find_order(site.names)`) and can take over the other site's order; each also
    spends the CA's exact-set limit. The loader should name the duplicate."""
    text = _text() + '\n[sites.again]\ndomain = "example.com."\nprovider = "dns"\n'
    with pytest.raises(ConfigError):
        parse(text, Path("/tmp/certdrop.toml"))


@pytest.mark.parametrize(
    "command",
    [
        ["site", "list"],
        ["site", "add", "shop", "--domain", "shop.example.com", "--provider", "dns"],
    ],
    ids=["load", "edit"],
)
def test_a_config_file_that_is_not_utf8_is_a_configuration_error_not_a_crash(
    tmp_path, capsys, command
):
    """README exit table: "2 | bad usage, configuration (every problem is listed)", and "1 |
    unexpected failure — a bug; the traceback is printed". A certdrop.toml saved in Latin-1 or
    Windows-1252 (an accented contact name, a comment) is a configuration problem. Before,
    `cloud.config.load` (and `site add`'s reader, `cloud.config.edit._read`) caught only
    OSError, so UnicodeDecodeError escaped: a traceback and exit 1 (the agent's loader already
    reported the same case as `(file): cannot read (not UTF-8 text)`, exit 2)."""
    config = tmp_path / "certdrop.toml"
    config.write_bytes(_text().encode() + b"# caf\xe9 (saved as Latin-1)\n")
    line = _text().count("\n") + 1

    assert main(["-c", str(config), *command]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.startswith("certdrop: error:")
    assert f"(file): not UTF-8 text (byte 0xe9 on line {line})" in err


def _storage_problems(url: str) -> dict[str, str]:
    text = _text().replace('url = "store"', url)
    with pytest.raises(ConfigError) as caught:
        parse(text, Path("/tmp/certdrop.toml"))
    return {p.key: f"{p.cause} — {p.fix}" for p in caught.value.problems}


@pytest.mark.parametrize(
    "url",
    ["https://minio.lan:9000/certdrop", "S3://certdrop/fleet", "gs://certdrop/fleet"],
)
def test_a_storage_url_of_an_unknown_scheme_is_refused_not_taken_as_a_local_folder(url):
    """README reference: `url = "data/store"  # a directory, file:///abs/dir, or
    s3://bucket/prefix`; "Every problem in a file is reported at once, each with the key, what
    is wrong and what to write". A URL of any other scheme (an https:// MinIO address, an
    upper-case S3://, a gs:// bucket) is a mistake. Before, it was silently taken as a relative
    directory path: the store became `<config dir>/https:/minio.lan:9000/certdrop`,
    `init`/`run` wrote keys-sealed bundles there and no agent ever saw them. An upper-case
    scheme is refused too, naming the lower-case one: the endpoint_url rule and the agents an
    invitation hands the URL to compare it as written."""
    problems = _storage_problems(f'url = "{url}"')

    assert "storage.url" in problems
    if url.startswith("S3://"):
        assert "write s3:// in lower case" in problems["storage.url"]


@pytest.mark.parametrize("key", ["url", "keys_dir"])
def test_an_empty_storage_path_is_refused_not_the_config_directory(key):
    """Bar: an empty string is malformed config with a clear error naming the key (the site's
    `domain = ""` is refused so). Before, `[storage] url = ""` silently made the
    configuration's own folder the object store (`file:///<config dir>`, state/ and agents/
    written beside certdrop.toml), and `keys_dir = ""` put the issuer's private keys there."""
    problems = _storage_problems(f'{key} = ""')

    assert problems == {f"storage.{key}": problems[f"storage.{key}"]}
    assert problems[f"storage.{key}"].startswith("is empty")
