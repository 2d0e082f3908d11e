"""Provider tables: checked once, by the config layer, against the settings each provider declares.

`build_provider` trusts what comes out (test_dns_provider_registry.py); so every complaint about
what an operator wrote in a `[providers.<name>]` table is made here, in the config's own words.
"""

from __future__ import annotations

import pytest

from cloud.config import parse_provider
from cloud.errors import ConfigError
from cloud.secrets import SecretRef

RFC2136 = {"type": "rfc2136", "server": "127.0.0.1:53", "tsig_name": "k.", "tsig_secret": "env:K"}


def problems(table: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_provider("dns", table)
    return [str(p) for p in caught.value.problems]


def test_settings_arrive_typed_with_secrets_as_references():
    config = parse_provider(
        "hook",
        {
            "type": "exec",
            "command": "/usr/local/bin/dns-hook --zone 'my zone'",
            "timeout": 5,
            "env": {"RETRIES": 3, "DRY_RUN": False, "ZONE": "example.test"},
            "secret_env": {"TOKEN": "env:HOOK_TOKEN"},
        },
    )

    assert (config.name, config.type) == ("hook", "exec")
    assert dict(config.values) == {
        "command": ("/usr/local/bin/dns-hook", "--zone", "my zone"),
        "timeout": 5.0,
        "env": {"RETRIES": "3", "DRY_RUN": "false", "ZONE": "example.test"},
        "secret_env": {"TOKEN": SecretRef("env", "HOOK_TOKEN")},
    }
    assert isinstance(config.values["timeout"], float)


def test_settings_left_out_stay_out_for_the_registry_to_default():
    config = parse_provider("dns", RFC2136)

    assert set(config.values) == {"server", "tsig_name", "tsig_secret"}
    assert config.values["server"] == ("127.0.0.1", 53)
    assert config.values["tsig_secret"] == SecretRef("env", "K")


def test_the_tsig_algorithm_is_compared_in_lower_case_without_a_trailing_dot():
    config = parse_provider("dns", RFC2136 | {"tsig_algorithm": "HMAC-SHA512."})
    assert config.values["tsig_algorithm"] == "hmac-sha512"


def test_missing_and_unknown_settings_are_reported_together():
    found = problems({"type": "rfc2136", "server": "127.0.0.1", "tsig_nmae": "k."})

    assert found == [
        "providers.dns.tsig_nmae: unknown key — remove it; known keys: server, timeout, "
        "tsig_algorithm, tsig_name, tsig_secret, type",
        "providers.dns.tsig_name: missing — add tsig_name: the TSIG key name",
        "providers.dns.tsig_secret: missing — add tsig_secret: the TSIG key secret (base64)",
    ]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param(
            {"server": "127.0.0.1:99999"},
            "providers.dns.server: bad port in '127.0.0.1:99999' — write server = "
            '"192.0.2.53" or "192.0.2.53:5353"',
            id="server port out of range",
        ),
        pytest.param(
            {"server": ":53"},
            "providers.dns.server: no host in ':53' — write server = "
            '"192.0.2.53" or "192.0.2.53:5353"',
            id="server without a host",
        ),
        pytest.param(
            {"tsig_algorithm": "hmac-sha3"},
            "providers.dns.tsig_algorithm: unknown algorithm 'hmac-sha3' — use one of: "
            "hmac-sha256, hmac-sha384, hmac-sha512, hmac-sha224, hmac-sha1, hmac-md5",
            id="unknown TSIG algorithm",
        ),
        pytest.param(
            {"timeout": "10"},
            "providers.dns.timeout: must be an integer or a number, not a string — write "
            "timeout = <an integer or a number>",
            id="timeout as a string",
        ),
    ],
)
def test_a_bad_rfc2136_setting_is_refused_naming_the_key(changes, expected):
    assert problems(RFC2136 | changes) == [expected]


@pytest.mark.parametrize("command", [[], "", ["ok", 3], "'unclosed", 7])
def test_an_empty_or_malformed_exec_command_is_refused(command):
    (found,) = problems({"type": "exec", "command": command})
    assert found.startswith("providers.dns.command: must be ")


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"type": "exec", "command": ["hook"], "secret_env": {"TOKEN": "abc"}}, "secret_env.TOKEN"),
        (
            {"type": "lexicon", "provider": "powerdns", "secret_options": {"auth_token": "x!"}},
            "secret_options.auth_token",
        ),
    ],
)
def test_an_inline_value_in_a_secret_table_is_refused(table, key):
    assert problems(table) == [
        f"providers.dns.{key}: a secret must be given by reference, not inline — write "
        '"env:VARIABLE", "file:/path/to/secret" or "aws-sm:secret-name"'
    ]


def test_a_table_value_that_is_not_text_is_refused():
    assert problems({"type": "exec", "command": ["hook"], "env": {"LIST": [1]}}) == [
        "providers.dns.env.LIST: must be a string, number or boolean — write it as a table, "
        'e.g. env = { name = "value" }'
    ]


def test_an_access_key_without_its_secret_is_refused():
    assert problems({"type": "route53", "access_key_id": "env:AWS_KEY_ID"}) == [
        "providers.dns.access_key_id: access_key_id and secret_access_key must be given "
        "together — give both, or neither to use the standard AWS credential chain"
    ]


def test_an_unknown_provider_type_lists_the_known_ones():
    (found,) = problems({"type": "bind9"})
    assert "unknown provider type 'bind9'" in found and "rfc2136" in found
