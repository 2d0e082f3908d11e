"""`certdrop site add|list|remove`: edits of the operator's file, and what removal takes away."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cloud.cli.exit_codes import EXIT_CONFIG, EXIT_OK
from cloud.cli.main import main
from cloud.config import load
from cloud.keys.issuer import init_issuer
from cloud.pipeline import parts
from cloud.publish.publisher import Publisher
from cloud.publish.registry import AgentRegistry
from lab.issuer_config import bind_config
from nas_agent.bundle import parse_index
from nas_agent.enrollment import enrollment_of
from nas_agent.keys import generate_agent_keys
from tests.cloud.issuing import issue_and_publish


@pytest.fixture
def config(tmp_path, pebble, bind_auth):
    config = bind_config(tmp_path, pebble, bind_auth)
    config.source.write_text("# the operator's own words stay\n" + config.source.read_text())
    return config


def test_site_add_appends_a_table_and_keeps_comments(config, capsys):
    code = main(
        ["-c", str(config.source), "site", "add", "shop", "--domain", "shop.example.test",
         "--provider", "dns", "--extra-name", "nas.other.test", "--key-type", "rsa-3072"]
    )  # fmt: skip

    assert code == EXIT_OK
    text = config.source.read_text()
    assert text.startswith("# the operator's own words stay\n")
    assert "[sites.shop]" in text
    assert "site shop added: shop.example.test, *.shop.example.test, nas.other.test" in (
        capsys.readouterr().out
    )
    assert load(config.source).sites["shop"].key_type.value == "rsa-3072"


def test_site_add_of_a_dns_persist_01_site_names_no_provider(config, capsys):
    code = main(
        ["-c", str(config.source), "site", "add", "vault", "--domain", "vault.example.test",
         "--challenge", "dns-persist-01"]
    )  # fmt: skip
    listed = main(["-c", str(config.source), "site", "list"])

    assert (code, listed) == (EXIT_OK, EXIT_OK)
    site = load(config.source).sites["vault"]
    assert (site.challenge.value, site.provider) == ("dns-persist-01", None)
    out = capsys.readouterr().out
    assert "create its record once: certdrop site persist-record vault" in out
    assert "vault    ec-p256   dns-persist-01  vault.example.test" in out


def test_site_add_of_an_agent_custody_site_says_where_its_keys_are_made(config, capsys):
    code = main(
        ["-c", str(config.source), "site", "add", "vault", "--domain", "vault.example.test",
         "--challenge", "dns-persist-01", "--key-custody", "agent"]
    )  # fmt: skip
    listed = main(["-c", str(config.source), "site", "list"])

    assert (code, listed) == (EXIT_OK, EXIT_OK)
    assert load(config.source).sites["vault"].key_custody.value == "agent"
    out = capsys.readouterr().out
    assert "its keys are made on each NAS" in out
    assert "keys made by its agents (agent custody)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["example", "--domain", "x.example.test", "--provider", "dns"], "already exists"),
        (["new", "--domain", "x.example.test", "--provider", "nope"], "no provider named 'nope'"),
        (["new", "--domain", "localhost", "--provider", "dns"], "is not a domain name"),
        (["Bad_Id", "--domain", "x.example.test", "--provider", "dns"], "a site id must be"),
        (["new", "--domain", "x.example.test"], "missing: a dns-01 site writes its TXT values"),
        (
            [
                "new",
                "--domain",
                "x.example.test",
                "--challenge",
                "dns-persist-01",
                "--provider",
                "dns",
            ],
            "a dns-persist-01 site writes no DNS records, so it takes no provider",
        ),
    ],
)
def test_a_bad_site_add_is_refused_and_leaves_the_file_as_it_was(config, capsys, args, message):
    before = config.source.read_text()

    code = main(["-c", str(config.source), "site", "add", *args])

    assert code == EXIT_CONFIG
    assert message in capsys.readouterr().err
    assert config.source.read_text() == before


def test_site_list_shows_each_site(config, capsys):
    assert main(["-c", str(config.source), "site", "list"]) == EXIT_OK

    assert "example  ec-p256   dns  example.test, *.example.test" in capsys.readouterr().out


def test_site_remove_takes_the_site_from_the_file_the_store_and_its_agents(config, capsys):
    store = parts.store(config)
    publisher = Publisher(store, init_issuer(parts.keystore(config)))
    keys = generate_agent_keys("nas-1")
    publisher.registry.add(enrollment_of(keys), ("example",), datetime.now(UTC))
    issue_and_publish(config, store, publisher)
    assert parse_index(store.get("agents/nas-1/index.json").body).sites == ("example",)

    code = main(["-c", str(config.source), "site", "remove", "example"])

    assert code == EXIT_OK
    assert "withdrawn from 1 agent(s)" in capsys.readouterr().out
    assert "[sites.example]" not in config.source.read_text()
    assert parse_index(store.get("agents/nas-1/index.json").body).sites == ()
    assert list(store.list("agents/nas-1/bundles/")) == []
    assert list(store.list("escrow/")) == []
    assert store.get("state/sites/example.json") is None
    assert AgentRegistry(store).get("nas-1").sites == ()


def test_removing_an_unknown_site_changes_nothing(config, capsys):
    before = config.source.read_text()

    assert main(["-c", str(config.source), "site", "remove", "nope"]) == EXIT_CONFIG
    assert "sites.nope: no such site" in capsys.readouterr().err
    assert config.source.read_text() == before


# A configuration nothing here contacts: `site add` only edits and checks the file.
_LOCAL = """\
[ca]
directory = "https://127.0.0.1:9/dir"
terms_agreed = true

[providers.home-bind]
type = "rfc2136"
server = "127.0.0.1:53"
tsig_name = "acme-key"
tsig_secret = "env:CERTDROP_TEST_TSIG"

[sites.example]
domain = "example.com"
provider = "home-bind"
"""
_ADD_SHOP = ["site", "add", "shop", "--domain", "shop.example.com", "--provider", "home-bind"]


def test_site_add_edits_a_symlinked_config_in_place(tmp_path, capsys):
    """README: "`site add` and `site remove` edit the configuration file in place, keeping its
    comments". With certdrop.toml a symlink (into a versioned config folder, /etc/certdrop
    managed by a config tool), the edit was written with os.replace over the *link*: the link
    became a regular file and the real configuration never got the site (every other user of
    it, and the next deploy, silently lost the edit)."""
    real = tmp_path / "managed" / "certdrop.toml"
    real.parent.mkdir()
    real.write_text(_LOCAL)
    real.chmod(0o640)
    link = tmp_path / "certdrop.toml"
    link.symlink_to(real)

    assert main(["-c", str(link), *_ADD_SHOP]) == EXIT_OK, capsys.readouterr().err

    assert link.is_symlink(), "the symlink was replaced by a regular file"
    assert "[sites.shop]" in real.read_text()
    assert real.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in real.parent.iterdir()] == ["certdrop.toml"]  # no temporary left


def test_site_add_keeps_crlf_line_endings(tmp_path, capsys):
    """A file written on Windows keeps its CRLF endings: before, the lines `site add` read came
    back with LF (text-mode reading dropped the CR), so an edit rewrote every line of it."""
    config = tmp_path / "certdrop.toml"
    config.write_bytes(_LOCAL.replace("\n", "\r\n").encode())

    assert main(["-c", str(config), *_ADD_SHOP]) == EXIT_OK, capsys.readouterr().err

    data = config.read_bytes()
    assert b"[sites.shop]\r\n" in data
    assert data.count(b"\n") == data.count(b"\r\n")


def test_site_add_reads_a_file_with_a_utf8_byte_order_mark(tmp_path, capsys):
    """The editor's byte order mark (Windows Notepad) is no TOML error for `site add` either:
    before, its reader refused the file as "not valid TOML" at line 1, column 1."""
    config = tmp_path / "certdrop.toml"
    config.write_bytes(b"\xef\xbb\xbf" + _LOCAL.encode())

    assert main(["-c", str(config), *_ADD_SHOP]) == EXIT_OK, capsys.readouterr().err

    assert "shop" in load(config).sites
