"""The configuration file: what it accepts, and the exact words of every complaint."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from cloud.acme.certificate_keys import KeyType
from cloud.acme.challenge_types import ChallengeType
from cloud.config import load, parse
from cloud.errors import ConfigError
from cloud.secrets import SecretRef, resolve

GOOD = """
[ca]
directory = "https://acme.example/directory"
terms_agreed = true
contact = "ops@example.test"

[providers.bind]
type = "rfc2136"
server = "127.0.0.1:5300"
tsig_name = "acme-key"
tsig_secret = "env:TSIG_SECRET"

[sites.example]
domain = "Example.TEST."
provider = "bind"
"""


def _parse(text: str, base: Path = Path("/etc/certdrop")) -> object:
    return parse(textwrap.dedent(text), base / "certdrop.toml")


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        _parse(text)
    return [str(p) for p in caught.value.problems]


def test_a_minimal_site_gets_apex_and_wildcard_with_an_ec_p256_key():
    config = _parse(GOOD)
    site = config.sites["example"]
    assert site.names == ("example.test", "*.example.test")
    assert site.key_type is KeyType.EC_P256
    assert site.profile is None
    assert config.ca.contact == ("mailto:ops@example.test",)


def test_secrets_stay_references_until_used():
    config = _parse(GOOD)
    assert config.providers["bind"].values["tsig_secret"] == SecretRef("env", "TSIG_SECRET")


def test_relative_storage_paths_are_relative_to_the_config_file():
    config = _parse(GOOD, Path("/srv/cd"))
    assert config.storage.store_url == "file:///srv/cd/data/store"
    assert config.storage.keys_dir == Path("/srv/cd/data/keys")


def test_extra_names_follow_the_apex_and_wildcard_without_duplicates():
    config = _parse(
        GOOD.replace(
            'provider = "bind"',
            'provider = "bind"\n'
            'extra_names = ["nas.other.test", "example.test", "*.lan.other.test"]\n'
            'key_type = "rsa-3072"\nprofile = "shortlived"',
        )
    )
    site = config.sites["example"]
    assert site.names == ("example.test", "*.example.test", "nas.other.test", "*.lan.other.test")
    assert site.key_type is KeyType.RSA_3072
    assert site.profile == "shortlived"


def test_a_dns_persist_01_site_has_no_provider():
    persisted = _parse(GOOD.replace('provider = "bind"', 'challenge = "dns-persist-01"'))
    site = persisted.sites["example"]

    assert site.challenge is ChallengeType.DNS_PERSIST_01
    assert site.provider is None
    assert site.names == ("example.test", "*.example.test")
    assert _parse(GOOD).sites["example"].challenge is ChallengeType.DNS_01


def test_dns_settings_map_nameservers_to_addresses():
    config = _parse(
        GOOD
        + """
[dns]
resolvers = ["127.0.0.1:5301"]
nameservers = { "NS1.example.test" = "127.0.0.1:5300" }
propagation_timeout = 30
"""
    )
    assert config.dns.resolvers == ("127.0.0.1:5301",)
    assert config.dns.nameserver_addresses == {"ns1.example.test.": ("127.0.0.1:5300",)}
    assert config.dns.timeout == 30.0


def test_alerts_are_off_without_an_alerts_table():
    assert _parse(GOOD).alerts is None


def test_an_alerts_table_keeps_its_secret_as_a_reference_and_has_defaults():
    config = _parse(
        GOOD
        + """
[alerts]
webhook_url = "https://hooks.example.test/certdrop"
webhook_secret = "env:WEBHOOK_SECRET"
"""
    )
    alerts = config.alerts
    assert alerts.webhook_url == "https://hooks.example.test/certdrop"
    assert alerts.webhook_secret == SecretRef("env", "WEBHOOK_SECRET")
    assert alerts.sns_topic_arn is None
    assert (alerts.expiry_days, alerts.remind_after) == (14.0, timedelta(hours=24))


def test_alerts_to_an_sns_topic_with_own_thresholds():
    config = _parse(
        GOOD
        + """
[alerts]
sns_topic_arn = "arn:aws:sns:eu-west-1:123456789012:certdrop-alarms"
expiry_days = 21
remind_after_hours = 6.5
"""
    )
    alerts = config.alerts
    assert alerts.sns_topic_arn == "arn:aws:sns:eu-west-1:123456789012:certdrop-alarms"
    assert alerts.webhook_url is None
    assert (alerts.expiry_days, alerts.remind_after) == (21.0, timedelta(hours=6.5))


def test_every_problem_is_reported_at_once():
    problems = _problems(
        """
        [ca]
        directory = "http://insecure.example/dir"
        terms_agreed = false

        [providers.bind]
        type = "rfc2136"
        tsig_secret = "hunter2"

        [sites.Bad_Id]
        domain = "example.test"
        provider = "bind"
        """
    )
    assert problems == [
        "ca.directory: 'http://insecure.example/dir' is not an https:// URL — give the CA's ACME "
        "directory URL, e.g. https://acme-staging-v02.api.letsencrypt.org/directory",
        "ca.terms_agreed: the CA's terms of service must be agreed to register an account — "
        "read them and write terms_agreed = true",
        "providers.bind.server: missing — add server: the primary nameserver, "
        '"host" or "host:port" (port 53 by default)',
        "providers.bind.tsig_name: missing — add tsig_name: the TSIG key name",
        "providers.bind.tsig_secret: a secret must be given by reference, not inline — write "
        '"env:VARIABLE", "file:/path/to/secret" or "aws-sm:secret-name"',
        "sites.Bad_Id: a site id must be lower-case letters, digits, '.' and '-' (max 63), "
        "starting with a letter or digit — rename the table, e.g. [sites.example-com] or "
        '[sites."example.com"]',
    ]


BAD_CONFIGS = [
    pytest.param(
        "",
        ["ca: missing — add a [ca] table"],
        id="empty file",
    ),
    pytest.param(
        "[ca]\n",
        [
            "ca.directory: missing — add directory = <a string>",
            "ca.terms_agreed: missing — add terms_agreed = <true or false>",
        ],
        id="an empty [ca] table",
    ),
    pytest.param(
        "[ca\n",
        [
            "(file): not valid TOML: Expected ']' at the end of a table declaration "
            "(at line 1, column 4) — fix the syntax"
        ],
        id="not TOML",
    ),
    pytest.param(
        "[ca]\nterms_agreed = true\n",
        ["ca.directory: missing — add directory = <a string>"],
        id="no directory: production or staging is never a default",
    ),
    pytest.param(
        '[ca]\ndirectory = "https://ca/d"\n',
        ["ca.terms_agreed: missing — add terms_agreed = <true or false>"],
        id="terms not agreed",
    ),
    pytest.param(
        '[ca]\ndirectory = "https://ca/d"\nterms_agreed = 1\n',
        [
            "ca.terms_agreed: must be true or false, not an integer — write terms_agreed = "
            "<true or false>"
        ],
        id="an integer is not a boolean",
    ),
    pytest.param(
        '[ca]\ndirectory = "https://ca/d"\nterms_agreed = true\neab_kid = "kid-1"\n',
        ['ca.eab_hmac_key: missing while eab_kid is set — write "env:EAB_HMAC_KEY"'],
        id="EAB key id without its key",
    ),
    pytest.param(
        '[ca]\ndirectory = "https://ca/d"\nterms_agreed = true\neab_kid = "k"\n'
        'eab_hmac_key = "env:K"\neab_hmac_alg = "MD5"\n',
        ["ca.eab_hmac_alg: 'MD5' is not supported — use ('HS256', 'HS384', 'HS512')"],
        id="EAB with an unknown MAC",
    ),
    pytest.param(
        '[ca]\ndirectory = "https://ca/d"\nterms_agreed = true\ncontact = "nobody"\n'
        "order_timeout = -1\n",
        [
            "ca.contact: 'nobody' is not an e-mail address — write \"ops@example.com\"",
            "ca.order_timeout: must be positive — give seconds, e.g. 90",
        ],
        id="bad contact and timeout",
    ),
    pytest.param(
        '[ca]\ndirectory = "https://ca/d"\nterms_agreed = true\nca_bundle = "missing.pem"\n',
        ["ca.ca_bundle: /etc/certdrop/missing.pem does not exist — give a PEM file"],
        id="CA bundle that does not exist",
    ),
    pytest.param(
        '[ca]\ndirectory = "https://ca/d"\nterms_agreed = true\ndirectroy = "x"\n',
        [
            "ca.directroy: unknown key — remove it; known keys: account_key, ca_bundle, contact, "
            "directory, eab_hmac_alg, eab_hmac_key, eab_kid, limits, order_timeout, "
            "preferred_chain, staging_directory, terms_agreed"
        ],
        id="misspelt key",
    ),
    pytest.param(
        GOOD.replace('type = "rfc2136"', 'type = "bind9"'),
        [
            "providers.bind.type: unknown provider type 'bind9' — use one of: cloudflare, exec, "
            "lexicon, powerdns, rfc2136, route53"
        ],
        id="unknown provider type",
    ),
    pytest.param(
        GOOD.replace('provider = "bind"', 'provider = "route"'),
        [
            "sites.example.provider: no provider named 'route' — define [providers.route] or use "
            "one of: bind"
        ],
        id="site naming a provider that does not exist",
    ),
    pytest.param(
        GOOD.replace('domain = "Example.TEST."', 'domain = "localhost"\nkey_type = "ec-p521"'),
        [
            "sites.example.domain: 'localhost' is not a domain name — write \"example.com\"",
            "sites.example.key_type: unknown key type 'ec-p521' — use ec-p256, ec-p384, "
            "rsa-2048, rsa-3072, rsa-4096",
        ],
        id="bad domain and key type",
    ),
    pytest.param(
        GOOD.replace('provider = "bind"', 'provider = "bind"\nextra_names = ["a..b", 7]'),
        [
            "sites.example.extra_names: 'a..b' is not a domain name — write names such as "
            '"nas.example.org" or "*.lan.example.org"',
            "sites.example.extra_names: 7 is not a domain name — write names such as "
            '"nas.example.org" or "*.lan.example.org"',
        ],
        id="bad extra names",
    ),
    pytest.param(
        GOOD.replace('provider = "bind"', 'provider = "bind"\nchallenge = "dns-persist-01"'),
        [
            "sites.example.provider: a dns-persist-01 site writes no DNS records, so it takes no "
            "provider — remove provider (the record is created once: see `certdrop site "
            'persist-record`), or write challenge = "dns-01"'
        ],
        id="a dns-persist-01 site naming a provider",
    ),
    pytest.param(
        GOOD.replace('provider = "bind"', ""),
        [
            "sites.example.provider: missing: a dns-01 site writes its TXT values through a "
            'provider — add provider = "<a [providers.NAME]>", or challenge = "dns-persist-01" '
            "for a site whose issuer holds no DNS credentials"
        ],
        id="a dns-01 site without a provider",
    ),
    pytest.param(
        GOOD.replace('provider = "bind"', 'challenge = "dns-persist"'),
        [
            "sites.example.challenge: unknown challenge 'dns-persist' — write \"dns-01\" (the "
            'default: TXT values written through a provider) or "dns-persist-01" (one record '
            "created once, no DNS credentials)"
        ],
        id="an unknown challenge, reported alone",
    ),
    pytest.param(
        GOOD + '\n[dns]\nresolvers = ["not an address!"]\npropagation_timeout = 0\n',
        [
            "dns.resolvers: 'not an address!' is not an IP address with an optional port — "
            'write "192.0.2.53", "192.0.2.53:5353" or "[2001:db8::53]:53"',
            "dns.propagation_timeout: must be positive — give seconds, e.g. 120",
        ],
        id="bad DNS check settings",
    ),
    pytest.param(
        GOOD + "\n[alerts]\nexpiry_days = 7\n",
        [
            'alerts: no channel to send alerts to — add webhook_url = "https://..." or '
            'sns_topic_arn = "arn:aws:sns:..."'
        ],
        id="alerts with nowhere to send them",
    ),
    pytest.param(
        GOOD + '\n[alerts]\nwebhook_url = "http://hooks.example.test/x"\n'
        'webhook_secret = "s3cr3t"\n',
        [
            "alerts.webhook_url: 'http://hooks.example.test/x' is not an https:// URL — give "
            "the receiver's https:// URL (http:// only to 127.0.0.1, ::1 or localhost)",
            "alerts.webhook_secret: a secret must be given by reference, not inline — write "
            '"env:VARIABLE", "file:/path/to/secret" or "aws-sm:secret-name"',
        ],
        id="plain-http webhook and an inline secret",
    ),
    pytest.param(
        GOOD + '\n[alerts]\nwebhook_secret = "env:HOOK"\nsns_topic_arn = "certdrop-alarms"\n',
        [
            "alerts.webhook_secret: set while webhook_url is not — add webhook_url, or remove "
            "webhook_secret",
            "alerts.sns_topic_arn: 'certdrop-alarms' is not an SNS topic ARN — write "
            '"arn:aws:sns:REGION:ACCOUNT:TOPIC" (the stack\'s AlarmTopicArn output)',
        ],
        id="a webhook secret without a webhook, a topic name instead of its ARN",
    ),
    pytest.param(
        GOOD + '\n[alerts]\nwebhook_url = "https://h.test/"\nexpiry_days = 0\n'
        "remind_after_hours = -1\nremind_after = 3\n",
        [
            "alerts.remind_after: unknown key — remove it; known keys: expiry_days, "
            "remind_after_hours, sns_topic_arn, webhook_secret, webhook_url",
            "alerts.expiry_days: must be positive — give days, e.g. 14",
            "alerts.remind_after_hours: must be positive — give hours, e.g. 24",
        ],
        id="alert thresholds that are not positive, a misspelt key",
    ),
    pytest.param(
        GOOD + '\n[alerts]\nwebhook_url = "https://h.test/"\nexpiry_days = "14"\n',
        [
            "alerts.expiry_days: must be an integer or a number, not a string — write "
            "expiry_days = <an integer or a number>"
        ],
        id="days as a string",
    ),
    pytest.param(
        'alerts = "https://h.test/"\n' + GOOD,
        ["alerts: must be a table — write it as [alerts]"],
        id="alerts not written as a table",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CONFIGS)
def test_bad_configuration_is_refused_with_exact_problems(text, expected):
    assert _problems(text) == expected


def test_the_error_message_lists_every_problem_under_the_file_name():
    with pytest.raises(ConfigError) as caught:
        _parse('[ca]\ndirectory = "https://ca/d"\n')
    assert str(caught.value) == (
        "/etc/certdrop/certdrop.toml: 1 configuration problem:\n"
        "  - ca.terms_agreed: missing — add terms_agreed = <true or false>"
    )


def test_an_unreadable_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "absent.toml")


def test_a_config_file_with_a_utf8_byte_order_mark_is_read(tmp_path):
    """README: "One TOML file." A file saved by an editor that writes a UTF-8 BOM (Windows
    Notepad, many Windows editors) holds the same TOML; the agent's INI side had the same gap.
    Before, `load` refused it (exit 2) with "(file): not valid TOML: Invalid statement (at
    line 1, column 1)", pointing at a line that reads `[ca]`."""
    config = tmp_path / "certdrop.toml"
    config.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())

    assert load(config).sites["example"].domain == "example.test"


def test_a_config_in_the_bucket_is_read_as_a_local_file_is(tmp_path):
    """The Lambda's copy (`cloud.aws.environment.load_config`) is decoded by the same rule: a
    byte order mark is dropped, and bytes that are not UTF-8 are a configuration problem, not a
    UnicodeDecodeError."""
    from cloud.aws.environment import load_config
    from cloud.store.local import LocalStore

    store = LocalStore(str(tmp_path))
    store.put("config/certdrop.toml", b"\xef\xbb\xbf" + GOOD.encode())
    store.put("config/latin-1.toml", GOOD.encode() + b"# caf\xe9\n")

    assert "example" in load_config(store, "config/certdrop.toml").sites
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_config(store, "config/latin-1.toml")


def test_a_relative_file_secret_reference_is_relative_to_the_config_file(tmp_path, monkeypatch):
    """README, Issuer configuration reference: "Relative paths are relative to the file.
    ... a secret setting takes a reference, `env:NAME` (an environment variable), `file:/path`
    (a file's content)". `ca_bundle = "pebble-ca.pem"` was found beside the file; a
    `tsig_secret = "file:acme-key.secret"` beside it was not: the reference kept the relative
    path and `secrets.resolve` read it from the working directory, so the same configuration
    worked from its folder and failed (secret.unreadable) from cron or any other directory."""
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "acme-key.secret").write_text("c2VjcmV0\n")
    config = folder / "certdrop.toml"
    config.write_text(GOOD.replace('"env:TSIG_SECRET"', '"file:acme-key.secret"'))
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    loaded = load(config)

    assert resolve(loaded.providers["bind"].values["tsig_secret"]) == "c2VjcmV0"


# --- [dns] ip_versions: the address families of nameservers asked -----------------------------


def test_nameservers_of_both_address_families_are_asked_by_default() -> None:
    assert _parse(GOOD).dns.ip_versions == (4, 6)


def test_ip_versions_restricts_the_address_families_asked() -> None:
    """A host without an IPv6 route writes [4] (spares a warning per check)."""
    assert _parse(GOOD + "[dns]\nip_versions = [4]\n").dns.ip_versions == (4,)
    assert _parse(GOOD + "[dns]\nip_versions = [6, 4, 6]\n").dns.ip_versions == (6, 4)


@pytest.mark.parametrize("written", ["[]", "[5]", '["4"]', "[true]", "4", '"4"'])
def test_ip_versions_other_than_a_list_of_4_and_6_is_a_config_problem(written: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _parse(GOOD + f"[dns]\nip_versions = {written}\n")
    assert [p.key for p in caught.value.problems] == ["dns.ip_versions"]
