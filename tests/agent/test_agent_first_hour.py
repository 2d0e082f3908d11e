"""What a NAS admin hits in the first hour (issue 14), driven through `certdrop-agent` as typed.

Also runs on DSM 7's Python 3.8.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from nas_agent import cycle
from nas_agent.cli import main
from nas_agent.config import AgentConfig, parse_config
from nas_agent.config.errors import AgentConfigError
from nas_agent.enrollment import issuer_key_line

README = Path(__file__).resolve().parents[2] / "README.md"
ISSUER_LINE = issuer_key_line(ed25519.Ed25519PrivateKey.generate().public_key())

MINIMAL = """\
[agent]
id = nas-01

[source]
url = file:///volume1/certdrop/store

[dsm]
username = certdrop
password_file = dsm-password

[site:example]
hostnames = nas.example.com
"""


def _version() -> str:
    from importlib.metadata import version

    return version("certdrop")


# --- 8. --version, the default configuration and CERTDROP_AGENT_CONFIG ------------------------


def test_certdrop_agent_version_is_the_installed_packages(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])

    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == "certdrop-agent " + _version()


def test_help_shows_the_default_configuration_and_an_environment_variable_sets_another(
    tmp_path, monkeypatch, capsys
) -> None:
    home = tmp_path / "certdrop"
    home.mkdir()
    (home / "agent.conf").write_text(MINIMAL)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("CERTDROP_AGENT_CONFIG", raising=False)

    with pytest.raises(SystemExit):
        main(["--help"])
    usage = capsys.readouterr().out
    monkeypatch.setenv("CERTDROP_AGENT_CONFIG", "../certdrop/agent.conf")
    code = main(["enroll"])
    enrolled = capsys.readouterr()

    assert "agent.conf" in usage and "CERTDROP_AGENT_CONFIG" in usage
    assert code == cycle.EXIT_OK, enrolled.err
    assert "certdrop-agent-v1:nas-01:" in enrolled.out
    assert sorted(p.name for p in (home / "keys").iterdir())  # beside agent.conf


# --- 10. every problem of agent.conf at once, and never anything but a configuration error -----


def test_syntax_problems_of_agent_conf_are_reported_with_every_other_problem(
    tmp_path, capsys
) -> None:
    text = MINIMAL.replace("id = nas-01", "id = NAS 01\nid = nas-01\nthis line has no equals sign")
    text = text.replace("username = certdrop\n", "")
    path = tmp_path / "agent.conf"
    path.write_text(text)

    code = main(["-c", str(path), "enroll"])

    err = capsys.readouterr().err
    assert code == cycle.EXIT_CONFIG
    assert "Traceback" not in err
    problems = [line for line in err.splitlines() if line.startswith("  - ")]
    assert any("agent.id: is set twice (lines 2 and 3)" in line for line in problems), err
    assert any("line 4" in line and "this line has no equals sign" in line for line in problems)
    assert any(line.startswith("  - dsm.username: missing") for line in problems), err


# Values worth trying for each key: good ones, and the odd ones a hand-edited file has.
_VALUES = {
    "id": ("nas-01", "NAS 01", ""),
    "issuer_key": (ISSUER_LINE, ISSUER_LINE[:-2], "certdrop-issuer-v1:..."),
    "keys_dir": ("keys", "/var/keys", "~/keys"),
    "state_file": ("state.json", "%(x)s"),
    "poll_interval": ("1h", "59", "inf", "nan", "1e400", "-5", "15 m", "x"),
    "url": (
        *("s3://bucket/prefix", "s3://", "s3://[x", "s3://Bad_Bucket", "https://certs.test/"),
        *("https://[x/", "http://x/", "file:///dir", "file://host/dir", "file:///"),
        *("https://127.0.0.1:5001", "https://127.0.0.1:99999", "https://:5001", "ftp://x"),
    ),
    "endpoint_url": ("https://minio:9000", "minio", "https://[x"),
    "region": ("eu-central-1", "REGION"),
    "credentials_file": ("aws-creds",),
    "addressing_style": ("path", "virtual", "diagonal"),
    "ca_file": ("ca.pem",),
    "timeout": ("30", "0", "-1", "inf", "x"),
    "username": ("certdrop", "root"),
    "password_file": ("dsm-password",),
    "password_env": ("DSM_PASSWORD", "1x"),
    "device_id_file": ("dsm-device-id",),
    "insecure": ("true", "maybe"),
    "confirm_timeout": ("60", "0"),
    "temp_admin": ("true", "false", "perhaps"),
    "hostnames": (
        *("nas.example.com", "*.example.com", "a..b", "Bücher.example.com", "x" * 70 + ".com"),
        "nas.example.com, *.example.com",
    ),
    "description": ("certdrop example",),
    "make_default": ("true", "false"),
    "services": ("FTPS, WebDAV",),
    "colour": ("blue",),
}
_SECTION_KEYS = {
    "agent": ("id", "issuer_key", "keys_dir", "state_file", "poll_interval", "colour"),
    "source": (
        *("url", "endpoint_url", "region", "credentials_file", "addressing_style", "ca_file"),
        "timeout",
    ),
    "dsm": (
        *("url", "username", "password_file", "password_env", "device_id_file", "ca_file"),
        *("insecure", "timeout", "confirm_timeout", "temp_admin"),
    ),
    "site:example": ("hostnames", "description", "make_default", "services", "colour"),
}
_ODD_LINES = st.one_of(
    st.sampled_from(("", "# a comment", "; another", "   ", "[", "]", "=", "key", "=value")),
    st.sampled_from(("this line has no equals sign", "    continued", "[DEFAULT]", "[site:X Y]")),
    st.text(max_size=20),
)


def _entry(key: str) -> st.SearchStrategy:
    return st.sampled_from(_VALUES[key]).map(lambda value: f"{key} = {value}")


def _section(name: str) -> st.SearchStrategy:
    lines = st.lists(st.sampled_from(_SECTION_KEYS[name]).flatmap(_entry) | _ODD_LINES, max_size=7)
    return lines.map(lambda body: f"[{name}]\n" + "\n".join(body) + "\n")


_PARTS = st.one_of(*(_section(name) for name in _SECTION_KEYS), _ODD_LINES)


@settings(max_examples=500, deadline=None, report_multiple_bugs=False)
@given(st.lists(_PARTS, max_size=8))
def test_any_agent_conf_text_ends_in_a_config_or_a_config_error(parts) -> None:
    text = "\n".join(parts)
    try:
        config = parse_config(text, "/volume1/certdrop/agent.conf")
    except AgentConfigError:
        return
    except Exception as exc:
        raise AssertionError(f"{type(exc).__name__}: {exc}\n--- agent.conf:\n{text}") from exc
    assert isinstance(config, AgentConfig)


# --- 9. the README's agent.conf examples ---------------------------------------------------------


_PLACEHOLDERS = {
    "certdrop-issuer-v1:...": ISSUER_LINE,
    "s3://BUCKET": "s3://certdrop-example",
    "= REGION": "= eu-central-1",
}


def _with_sections(text: str, fragment: str) -> str:
    """`text` with each section `fragment` has replaced by the fragment's."""
    section = r"^\[{}\]\n(.*?)(?=^\[|\Z)"
    for name, body in re.findall(section.format("([^]]+)"), fragment, re.M | re.S):
        replacement = f"[{name}]\n{body}\n".replace("\\", "\\\\")  # taken literally
        text = re.sub(section.format(re.escape(name)), replacement, text, flags=re.M | re.S)
    return text


def test_every_readme_agent_conf_example_runs_as_printed(tmp_path, monkeypatch, capsys) -> None:
    blocks = re.findall(r"^```ini\n(.*?)^```$", README.read_text(), re.M | re.S)
    full = [b for b in blocks if re.search(r"^\[agent\]", b, re.M) and "[dsm]" in b]
    fragments = [b for b in blocks if b not in full and "[default]" not in b]
    # The reference; `join` writes agent.conf on the other paths (tests/cloud/test_invite_join).
    assert full
    s3_example = next(b for b in full if "url = s3://" in b)
    examples = list(full)
    for fragment in fragments:  # each replaces its sections in the S3 example
        examples.append(_with_sections(s3_example, fragment))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for number, text in enumerate(examples):
        # The documented placeholders: the issuer key line `certdrop init` printed, and the
        # stack's bucket and region.
        for placeholder, value in _PLACEHOLDERS.items():
            text = text.replace(placeholder, value)
        home = tmp_path / f"nas-{number}"
        home.mkdir()
        (home / "agent.conf").write_text(text)

        code = main(["-c", f"../nas-{number}/agent.conf", "enroll"])

        out, err = capsys.readouterr()
        assert code == cycle.EXIT_OK, (text, err)
        assert "certdrop-agent-v1:" in out
