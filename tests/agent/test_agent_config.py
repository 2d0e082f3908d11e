"""The agent's INI configuration: defaults, paths, every problem reported with key, cause and fix,
and the checks `run` needs (issuer key, 0600 secrets files)."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from nas_agent import config as config_module
from nas_agent.config import (
    AgentConfig,
    check_runnable,
    dsm_password,
    load_config,
    parse_config,
)
from nas_agent.config.errors import AgentConfigError, SecretFileError
from nas_agent.dsm.pinning import PinnedCertificates
from nas_agent.enrollment import issuer_key_line
from nas_agent.keys import raw_public_bytes
from nas_agent.secret_files import check_secret_file, read_secret_file
from nas_agent.sources import open_source
from nas_agent.sources.s3 import S3Source

ISSUER = ed25519.Ed25519PrivateKey.generate().public_key()
ISSUER_LINE = issuer_key_line(ISSUER)

MINIMAL = f"""
[agent]
id = nas-01
issuer_key = {ISSUER_LINE}

[source]
url = file:///mnt/certdrop

[dsm]
username = certdrop
password_file = dsm-password

[site:example.com]
hostnames = nas.example.com
"""


def parse(text: str, directory: str = "/etc/certdrop") -> AgentConfig:
    return parse_config(textwrap.dedent(text), os.path.join(directory, "agent.ini"))


def problems_of(text: str) -> dict[str, str]:
    with pytest.raises(AgentConfigError) as caught:
        parse(text)
    return {p.key: f"{p.cause} — {p.fix}" for p in caught.value.problems}


def with_lines(text: str, section: str, *lines: str) -> str:
    """`text` with `lines` added at the end of `[section]`."""
    head = f"[{section}]\n"
    return text.replace(head, head + "".join(line + "\n" for line in lines), 1)


def test_the_documented_example_is_a_valid_configuration() -> None:
    documented = config_module.__doc__.split("\n\n    [agent]", 1)[1]
    example = textwrap.dedent("    [agent]" + documented)
    config = parse(example.replace("certdrop-issuer-v1:...", ISSUER_LINE))
    assert config.agent.id == "nas-01"
    assert config.source.credentials_file == "/etc/certdrop/aws-creds"
    assert config.dsm.insecure is False and isinstance(config.dsm.verify, PinnedCertificates)
    assert config.sites["example.com"].services == ("FTPS", "WebDAV")


def test_a_minimal_configuration_gets_the_documented_defaults() -> None:
    config = parse(MINIMAL)
    assert config.agent.keys_dir == "/etc/certdrop/keys"
    assert config.agent.state_file == "/etc/certdrop/state.json"
    assert config.agent.poll_interval == 3600
    assert raw_public_bytes(config.agent.issuer_key) == raw_public_bytes(ISSUER)
    assert config.dsm.url == "https://127.0.0.1:5001"
    assert config.dsm.device_id_file == "/etc/certdrop/dsm-device-id"
    assert (config.dsm.timeout, config.dsm.confirm_timeout) == (90, 60)
    # Neither ca_file nor insecure: DSM's certificate pinned in the state directory.
    assert isinstance(config.dsm.verify, PinnedCertificates)
    assert config.dsm.verify.path == "/etc/certdrop/dsm-tls-pin"
    assert config.dsm.otp_journal_file == "/etc/certdrop/dsm-otp-enforce.journal"
    site = config.sites["example.com"]
    assert (site.description, site.make_default, site.services) == (
        "certdrop example.com",
        False,
        (),
    )


def test_paths_are_relative_to_the_configuration_file() -> None:
    text = with_lines(MINIMAL, "agent", "keys_dir = ../keys", "state_file = /var/lib/state.json")
    config = parse(text, "/volume1/certdrop/conf")
    assert config.agent.keys_dir == "/volume1/certdrop/keys"
    assert config.agent.state_file == "/var/lib/state.json"
    assert config.dsm.password_file == "/volume1/certdrop/conf/dsm-password"
    # What the agent writes itself is beside its state, wherever that is.
    assert config.dsm.pin_file == "/var/lib/dsm-tls-pin"
    assert config.dsm.otp_journal_file == "/var/lib/dsm-otp-enforce.journal"


def test_inline_comments_and_continued_values_are_read() -> None:
    text = MINIMAL.replace(
        "hostnames = nas.example.com",
        "hostnames = nas.example.com,  # the first is the SNI name\n    files.example.com",
    )
    text = text.replace(
        f"issuer_key = {ISSUER_LINE}", f"issuer_key = {ISSUER_LINE[:30]}\n    {ISSUER_LINE[30:]}"
    )
    config = parse(text)
    assert config.sites["example.com"].hostnames == ("nas.example.com", "files.example.com")
    assert config.agent.issuer_key_line is not None


@pytest.mark.parametrize(
    ("written", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("1.5h", 5400), ("2 h", 7200)]
)
def test_poll_interval_takes_seconds_or_a_unit(written: str, seconds: float) -> None:
    config = parse(with_lines(MINIMAL, "agent", f"poll_interval = {written}"))
    assert config.agent.poll_interval == seconds


@pytest.mark.parametrize(
    ("section", "line", "key"),
    [
        ("agent", "poll_interval = 169h", "agent.poll_interval"),
        ("agent", "poll_interval = " + "9" * 400, "agent.poll_interval"),
        ("source", "timeout = 3601", "source.timeout"),
        ("dsm", "timeout = 9999999999", "dsm.timeout"),
        ("dsm", "confirm_timeout = 61m", "dsm.confirm_timeout"),
    ],
)
def test_a_duration_past_its_bound_is_refused(section: str, line: str, key: str) -> None:
    """A poll interval of up to a week and timeouts of up to an hour: anything longer is a typo
    (a long digit string even reads as inf), and would crash the run far from the file."""
    found = problems_of(with_lines(MINIMAL, section, line))
    assert set(found) == {key}
    assert "is not a duration from" in found[key]


def test_durations_take_their_bounds() -> None:
    config = parse(
        with_lines(
            with_lines(MINIMAL, "agent", "poll_interval = 168h"),
            "dsm",
            "timeout = 1h",
            "confirm_timeout = 3600",
        )
    )
    assert (config.agent.poll_interval, config.dsm.timeout) == (7 * 86400, 3600)
    assert config.dsm.confirm_timeout == 3600


def test_every_problem_is_reported_together_with_key_cause_and_fix() -> None:
    found = problems_of(
        """
        [agent]
        id = NAS 01
        poll_interval = 30
        colour = blue

        [source]
        url = http://certs.example.com/

        [dsm]
        url = http://127.0.0.1:5000
        password_file = p
        password_env = DSM_PASSWORD
        insecure = perhaps

        [site:example.com]
        hostnames = *.example.com
        """
    )
    assert set(found) == {
        "agent.id",
        "agent.poll_interval",
        "agent.colour",
        "source.url",
        "dsm.url",
        "dsm.username",
        "dsm.password_env",
        "dsm.insecure",
        "site:example.com.hostnames",
    }
    assert all(" — " in text and not text.endswith(" — ") for text in found.values())
    assert "plain http:// is refused" in found["source.url"]


@pytest.mark.parametrize(
    ("text", "key", "cause"),
    [
        ("[agent]\nid = a\nid = b\n", "agent.id", "is set twice"),
        ("[agent]\nid = a\n[agent]\n", "[agent]", "appears twice"),
        ("id = nas-01\n", "(file)", "a key before any [section]"),
        ("[agent]\nthis line has no equals sign\n", "(file)", "cannot read"),
    ],
)
def test_syntax_errors_name_the_line_or_key(text: str, key: str, cause: str) -> None:
    with pytest.raises(AgentConfigError) as caught:
        parse(text)
    # Reported with the file's other problems (here: the sections it lacks).
    (problem,) = [p for p in caught.value.problems if cause in p.cause]
    assert problem.key == key


def test_sections_and_keys_that_do_not_exist_are_reported_not_ignored() -> None:
    text = MINIMAL + "\n[DEFAULT]\nusername = x\n\n[sites:example.org]\nhostnames = a.example.org\n"
    found = problems_of(with_lines(text, "dsm", "pasword_file = typo"))
    assert set(found) == {"[DEFAULT]", "[sites:example.org]", "dsm.pasword_file"}
    assert "known: " in found["dsm.pasword_file"] and "password_file" in found["dsm.pasword_file"]


def test_missing_sections_are_each_named() -> None:
    found = problems_of("[agent]\nid = nas-01\n")
    assert {"[source]", "[dsm]", "[site:<id>]"} <= set(found)


def test_the_password_comes_from_exactly_one_place() -> None:
    neither = problems_of(MINIMAL.replace("password_file = dsm-password\n", ""))
    both = problems_of(with_lines(MINIMAL, "dsm", "password_env = DSM_PASSWORD"))
    assert "dsm.password_file" in neither and "password_env" in neither["dsm.password_file"]
    assert "set together with password_file" in both["dsm.password_env"]


def test_insecure_is_never_combined_with_a_ca_file() -> None:
    found = problems_of(with_lines(MINIMAL, "dsm", "ca_file = dsm.pem", "insecure = yes"))
    assert set(found) == {"dsm.insecure"}


def problem_keys(text: str) -> set:
    try:
        parse(text)
    except AgentConfigError as exc:
        return {problem.key for problem in exc.problems}
    return set()


@pytest.mark.parametrize("host", ["nas.example.com", "192.168.1.10", "[fd00::1]", "127.0.0.2"])
def test_insecure_is_refused_for_a_dsm_on_another_machine(host: str) -> None:
    text = with_lines(MINIMAL, "dsm", f"url = https://{host}:5001", "insecure = true")
    assert problem_keys(text) == {"dsm.insecure"}


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_insecure_is_accepted_for_a_dsm_on_this_machine(host: str) -> None:
    config = parse(with_lines(MINIMAL, "dsm", f"url = https://{host}:5001", "insecure = true"))
    assert config.dsm.verify is False


def test_a_ca_file_is_what_dsm_is_verified_with() -> None:
    config = parse(with_lines(MINIMAL, "dsm", "ca_file = dsm.pem", "insecure = no"))
    assert config.dsm.verify == "/etc/certdrop/dsm.pem"


def test_source_options_are_checked_against_the_url_kind() -> None:
    text = MINIMAL.replace("url = file:///mnt/certdrop", "url = https://certs.example.com/")
    found = problems_of(with_lines(text, "source", "endpoint_url = https://minio:9000"))
    assert set(found) == {"source.endpoint_url"}


def test_source_options_open_the_configured_source(tmp_path: Path) -> None:
    text = MINIMAL.replace("url = file:///mnt/certdrop", "url = s3://certdrop/prod")
    config = parse(with_lines(text, "source", "region = eu-central-1", "timeout = 10"))
    with open_source(config.source.url, config.agent.id, **config.source.options()) as source:
        assert isinstance(source, S3Source) and source.location.endswith("/agents/nas-01/")


def test_a_damaged_issuer_key_line_is_a_problem_of_that_key() -> None:
    damaged = ISSUER_LINE[:-3] + ("AAA" if not ISSUER_LINE.endswith("AAA") else "BBB")
    found = problems_of(MINIMAL.replace(ISSUER_LINE, damaged))
    assert set(found) == {"agent.issuer_key"}


def test_a_configuration_without_issuer_key_parses_but_cannot_run(tmp_path: Path) -> None:
    config = parse(MINIMAL.replace(f"issuer_key = {ISSUER_LINE}\n", ""), str(tmp_path))
    secret(tmp_path / "dsm-password", "pw")
    assert config.agent.issuer_key is None
    with pytest.raises(AgentConfigError) as caught:
        check_runnable(config)
    assert [p.key for p in caught.value.problems] == ["agent.issuer_key"]


def test_hostnames_are_lower_case_idna_without_duplicates() -> None:
    text = MINIMAL.replace(
        "hostnames = nas.example.com",
        "hostnames = NAS.Example.com., Bücher.example.com, *.lan.example.com, nas.example.com",
    )
    site = parse(text).sites["example.com"]
    assert site.hostnames == ("nas.example.com", "xn--bcher-kva.example.com", "*.lan.example.com")
    assert site.sni == "nas.example.com"


def test_unicode_hostnames_take_their_idna_2008_form() -> None:
    # As browsers and CAs map them (UTS 46 non-transitional): IDNA 2003 made "straße" "strasse",
    # another name, so the agent would have refused the certificate issued for the real one.
    text = MINIMAL.replace("hostnames = nas.example.com", "hostnames = nas.straße.example")
    assert parse(text).sites["example.com"].hostnames == ("nas.xn--strae-oqa.example",)


@pytest.mark.parametrize(
    "hostnames",
    ["*.example.com", "localhost", "bad_name.example.com", "a..b", "nas.\u2603.example"],
)
def test_unusable_hostnames_are_refused(hostnames: str) -> None:
    found = problems_of(MINIMAL.replace("hostnames = nas.example.com", f"hostnames = {hostnames}"))
    assert set(found) == {"site:example.com.hostnames"}


def test_sites_must_not_share_a_description_or_both_be_default() -> None:
    second = (
        "\n[site:example.org]\nhostnames = nas.example.org\ndescription = certdrop example.com\n"
    )
    text = with_lines(MINIMAL, "site:example.com", "make_default = true")
    found = problems_of(text + second + "make_default = true\n")
    assert set(found) == {"site:example.org.description", "site:example.org.make_default"}


def test_a_section_named_after_an_impossible_site_id_is_refused() -> None:
    found = problems_of(MINIMAL.replace("[site:example.com]", "[site:Example Com]"))
    assert set(found) == {"[site:Example Com]"}


def test_an_agent_conf_saved_with_a_utf8_byte_order_mark_is_read(tmp_path: Path) -> None:
    """README: "One INI file ... Every problem is reported at once, with the key, the cause and
    the fix"; `join` says "for temp_admin or other hostnames, edit agent.conf afterwards". A file
    saved by an editor that writes a UTF-8 BOM still begins with `[agent]`. Before, the BOM was
    read as part of the first line: every key of [agent] was reported as "line N: a key before
    any [section] — start with [agent]" (the fix it gave was already there), exit 2."""
    path = tmp_path / "agent.ini"
    path.write_bytes(b"\xef\xbb\xbf" + textwrap.dedent(MINIMAL).lstrip().encode())

    assert load_config(str(path)).agent.id == "nas-01"


def test_an_unreadable_file_is_reported_as_the_file(tmp_path: Path) -> None:
    with pytest.raises(AgentConfigError) as caught:
        load_config(str(tmp_path / "absent.ini"))
    assert caught.value.problems[0].key == "(file)"


def secret(path: Path, text: str, mode: int = 0o600) -> str:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return str(path)


def runnable(tmp_path: Path, text: str = MINIMAL) -> AgentConfig:
    path = tmp_path / "agent.ini"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_config(str(path))


def test_a_configuration_with_private_secrets_can_run(tmp_path: Path) -> None:
    secret(tmp_path / "dsm-password", "correct horse\n")
    config = runnable(tmp_path)
    check_runnable(config)
    assert dsm_password(config.dsm) == "correct horse"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_a_password_file_others_can_read_stops_the_run_naming_the_file(
    tmp_path: Path, mode: int
) -> None:
    path = secret(tmp_path / "dsm-password", "hunter2", mode)
    config = runnable(tmp_path)
    with pytest.raises(AgentConfigError) as caught:
        check_runnable(config)
    (problem,) = caught.value.problems
    assert problem.key == f"dsm.password_file ({path})"
    assert f"mode {mode:04o}" in problem.cause and problem.fix == f"run: chmod 600 {path}"
    assert "hunter2" not in str(caught.value)
    with pytest.raises(SecretFileError):
        dsm_password(config.dsm)


def test_every_file_problem_is_reported_together(tmp_path: Path) -> None:
    secret(tmp_path / "aws-creds", "[default]\n", 0o644)
    secret(tmp_path / "dsm-device-id", "device", 0o644)
    text = MINIMAL.replace("url = file:///mnt/certdrop", "url = s3://b-1/p")
    text = with_lines(text, "source", "credentials_file = aws-creds")
    config = runnable(tmp_path, with_lines(text, "dsm", "ca_file = absent.pem"))
    with pytest.raises(AgentConfigError) as caught:
        check_runnable(config)
    keys = [re.sub(r" \(.*\)$", "", p.key) for p in caught.value.problems]
    assert sorted(keys) == [
        "dsm.ca_file",
        "dsm.device_id_file",
        "dsm.password_file",  # missing
        "source.credentials_file",
    ]


def test_a_missing_device_id_file_is_fine_until_dsm_login_writes_it(tmp_path: Path) -> None:
    secret(tmp_path / "dsm-password", "pw")
    check_runnable(runnable(tmp_path))


def test_the_password_variable_must_be_set_to_run(tmp_path: Path) -> None:
    text = MINIMAL.replace("password_file = dsm-password", "password_env = CERTDROP_DSM_PASSWORD")
    config = runnable(tmp_path, text)
    with pytest.raises(AgentConfigError, match="CERTDROP_DSM_PASSWORD is not set"):
        check_runnable(config, environ={})
    check_runnable(config, environ={"CERTDROP_DSM_PASSWORD": "pw"})
    assert dsm_password(config.dsm, environ={"CERTDROP_DSM_PASSWORD": "pw"}) == "pw"


def test_secret_files_must_be_regular_files(tmp_path: Path) -> None:
    with pytest.raises(SecretFileError, match="not a regular file"):
        check_secret_file(str(tmp_path))


def test_an_owner_only_read_only_secret_file_is_accepted(tmp_path: Path) -> None:
    path = secret(tmp_path / "s", "value\r\n", 0o400)
    check_secret_file(path)
    assert read_secret_file(path) == "value"


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_secret_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = secret(tmp_path / "s", "value")
    os.chown(path, 65534, -1)
    with pytest.raises(SecretFileError) as caught:
        check_secret_file(path, key="dsm.password_file")
    assert "owned by uid 65534" in caught.value.cause
    assert caught.value.fix == f"run: chown {os.geteuid()} {path}"
