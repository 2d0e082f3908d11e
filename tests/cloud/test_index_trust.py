"""Index v2 and key rotation against TUF's attacks (docs/threat-model.md), driven through both
command lines: `certdrop` (Pebble, BIND, a directory store) and `certdrop-agent` (a process,
under faketime where days must pass) installing into the DSM emulator. The attacker writes to
the store; they hold no issuer key unless a test says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from cloud import config as config_module
from cloud.cli.exit_codes import EXIT_OK
from cloud.config import Config
from cloud.fleet.alerts.rules import evaluate
from cloud.fleet.status import collect
from cloud.keys.issuer import load_issuer
from cloud.pipeline import parts
from cloud.store import Store, StoredObject
from lab.dsm_emulator import EmulatorHandle, serve
from lab.issuer_config import bind_config
from lab.ports import wait_until
from nas_agent import cycle, store_layout
from nas_agent.bundle import (
    ESCROW_RECIPIENT,
    build_index,
    open_sealed,
    parse_index,
    sign_entry,
    sign_index,
)
from nas_agent.bundle.rotation import sign_rotation
from nas_agent.enrollment import enrollment_of
from nas_agent.errors import BundleError
from nas_agent.keys import AgentKeys, generate_agent_keys, key_id, save_agent_keys
from tests.cloud.test_cli_issue import _run

REPO = Path(__file__).resolve().parents[2]
USER, PASSWORD = "certdrop", "s3cret-for-the-emulator"


@dataclass
class Fleet:
    config_source: str
    store: Store
    nas: Path
    keys: AgentKeys
    dsm: EmulatorHandle

    @property
    def index_key(self) -> str:
        return store_layout.agent_index("nas-1")

    def certdrop(self, *args: str, days_later: float = 0) -> subprocess.CompletedProcess[str]:
        if not days_later:
            return _run("--config", self.config_source, *args)
        return _later(days_later, [sys.executable, "-m", "cloud.cli"], self.config_source, *args)

    def agent(self, days_later: float = 0) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "nas_agent.cli", "-c", str(self.nas / "agent.conf")]
        return _later(days_later, command, None, "run", "--once")

    def agent_state(self) -> dict:
        return json.loads((self.nas / "state.json").read_text())

    def agent_report(self) -> dict:
        found = self.store.get(store_layout.agent_status("nas-1"))
        assert isinstance(found, StoredObject)
        return json.loads(found.body)["report"]

    def index_bytes(self) -> bytes:
        found = self.store.get(self.index_key)
        assert isinstance(found, StoredObject)
        return found.body


def _later(days: float, command: list[str], config: str | None, *args: str):
    """`command` run as if `days` had passed (faketime moves the process's clock only)."""
    prefix = ["faketime", "-f", f"+{days}d"] if days else []
    options = ["--config", config] if config else []
    return subprocess.run(
        [*prefix, *command, *options, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )


@pytest.fixture
def fleet(tmp_path, pebble, bind_auth):
    """`init`; agent nas-1 enrolled through `agent add`, its agent.conf with the issuer line
    `init` printed; version 1 of "example" issued and installed into the DSM emulator."""
    (tmp_path / "cloud").mkdir()
    config = bind_config(tmp_path / "cloud", pebble, bind_auth)
    initialised = _run("--config", config.source, "init")
    assert initialised.returncode == EXIT_OK, initialised.stderr
    issuer_line = next(
        line.strip() for line in initialised.stdout.splitlines() if "certdrop-issuer-v1:" in line
    )
    keys = generate_agent_keys("nas-1")
    nas = tmp_path / "nas"
    (nas / "keys").mkdir(parents=True)
    save_agent_keys(keys, str(nas / "keys"))
    (nas / "password").write_text(PASSWORD)
    os.chmod(nas / "password", 0o600)
    dsm = serve(str(tmp_path / "dsm"), 0, 0, USER, PASSWORD)
    (nas / "agent.conf").write_text(
        f"[agent]\nid = nas-1\nissuer_key = {issuer_line}\n"
        f"[source]\nurl = {config.storage.store_url}\n"
        f"[dsm]\nurl = {dsm.https_url}\nusername = {USER}\npassword_file = password\n"
        "insecure = true\nconfirm_timeout = 5\n"
        "[site:example]\nhostnames = nas.example.test\nmake_default = true\n"
    )
    token = enrollment_of(keys).token()
    added = _run("--config", config.source, "agent", "add", token, "--site", "example")
    assert added.returncode == EXIT_OK, added.stderr
    fleet = Fleet(config.source, parts.store(config), nas, keys, dsm)
    issued = fleet.certdrop("issue", "example")
    assert issued.returncode == EXIT_OK, issued.stderr
    first = fleet.agent()
    assert first.returncode == cycle.EXIT_OK, first.stderr
    try:
        yield fleet
    finally:
        dsm.stop()


# --- finding 3: indefinite freeze ------------------------------------------------------------


def test_an_old_index_served_forever_freezes_the_agent_which_says_so(fleet):
    stale = fleet.index_bytes()
    renewed = fleet.certdrop("issue", "example")
    assert renewed.returncode == EXIT_OK, renewed.stderr
    # The attacker withholds version 2: the agent keeps getting the index it already has.
    fleet.store.put(fleet.index_key, stale)

    same_day = fleet.agent()
    eight_days_later = fleet.agent(days_later=8)

    assert same_day.returncode == cycle.EXIT_OK, same_day.stderr
    assert eight_days_later.returncode == cycle.EXIT_FROZEN, eight_days_later.stderr
    assert "expired" in eight_days_later.stderr
    report = fleet.agent_report()
    assert report["frozen"] is True
    assert report["last_error"]["code"] == "bundle.index_expired"
    # The operator sees it and is alerted.
    assert "frozen" in fleet.certdrop("status").stdout
    now = datetime.now(UTC)
    alerts = evaluate(collect(_config_of(fleet), fleet.store, now), now)
    assert [a.kind for a in alerts if a.agent == "nas-1"] == ["agent_frozen"]


def test_an_index_older_than_the_one_accepted_is_refused(fleet):
    stale = fleet.index_bytes()
    # Issue times are whole seconds: signed within the same one, the stale index would not be
    # older, and its older versions would be refused one by one instead.
    signed = parse_index(stale).issued_at
    assert signed is not None
    wait_until(lambda: datetime.now(UTC) >= signed + timedelta(seconds=1), 5, "the next second")
    assert fleet.certdrop("issue", "example").returncode == EXIT_OK
    assert fleet.agent().returncode == cycle.EXIT_OK  # version 2 installed
    fleet.store.put(fleet.index_key, stale)

    replayed = fleet.agent()

    assert replayed.returncode == cycle.EXIT_REFUSED
    assert "bundle.index_rolled_back" in json.dumps(fleet.agent_state()["last_error"])


def test_run_signs_indexes_again_before_they_expire(fleet):
    signed_at = parse_index(fleet.index_bytes()).issued_at

    resigned = fleet.certdrop("run", days_later=3)
    not_frozen = fleet.agent(days_later=8)

    assert resigned.returncode == EXIT_OK, resigned.stderr
    assert "nas-1" in resigned.stdout
    index = parse_index(fleet.index_bytes())
    assert index.issued_at is not None and signed_at is not None
    assert index.issued_at - signed_at >= timedelta(days=3)
    assert not_frozen.returncode == cycle.EXIT_OK, not_frozen.stderr


def test_entries_cannot_be_mixed_across_indexes(fleet):
    document = json.loads(fleet.index_bytes())
    document["signed"]["entries"][0]["version"] = 7  # an entry the issuer never signed here
    document["signed"]["entries"][0]["object"] = "bundles/example/7.sealed"
    fleet.store.put(fleet.index_key, json.dumps(document).encode())

    mixed = fleet.agent()

    assert mixed.returncode == cycle.EXIT_REFUSED
    assert fleet.agent_state()["last_error"]["code"] == "bundle.signature_invalid"


# --- no downgrade ---------------------------------------------------------------------------


def _v1_index(fleet: Fleet, keys_of_issuer) -> bytes:
    """What the issuer wrote before v2, for the bundle now in the store (its entry signed with
    the real issuer key, as an old copy would be)."""
    entry = parse_index(fleet.index_bytes()).entries[0]
    sealed = fleet.store.get(store_layout.agent_prefix("nas-1") + entry.object_key)
    assert isinstance(sealed, StoredObject)
    plaintext = open_sealed(
        sealed.body,
        recipient_id="nas-1",
        private_key=fleet.keys.box_key,
        site=entry.site,
        version=entry.version,
    )
    return build_index(
        [sign_entry(plaintext, sealed.body, agent_id="nas-1", signing_key=keys_of_issuer)]
    )


def test_an_agent_that_accepted_v2_never_reads_v1_again(fleet, tmp_path):
    issuer = load_issuer(parts.keystore(_config_of(fleet)))
    until = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    conf = fleet.nas / "agent.conf"
    conf.write_text(
        conf.read_text().replace("[agent]\n", f"[agent]\naccept_index_v1_until = {until}\n")
    )
    (fleet.nas / "state.json").unlink()  # the DSM still refuses an older certificate
    fleet.store.put(fleet.index_key, _v1_index(fleet, issuer.signing_key))
    in_window = fleet.agent()
    assert in_window.returncode == cycle.EXIT_OK, in_window.stderr  # the upgrade window

    assert fleet.certdrop("issue", "example").returncode == EXIT_OK
    assert fleet.agent().returncode == cycle.EXIT_OK  # v2 accepted from here on
    fleet.store.put(fleet.index_key, _v1_index(fleet, issuer.signing_key))
    downgraded = fleet.agent()

    assert downgraded.returncode == cycle.EXIT_REFUSED
    assert fleet.agent_state()["last_error"]["code"] == "bundle.index_downgrade"


def test_v1_is_refused_without_an_upgrade_window(fleet):
    issuer = load_issuer(parts.keystore(_config_of(fleet)))
    (fleet.nas / "state.json").unlink()
    fleet.store.put(fleet.index_key, _v1_index(fleet, issuer.signing_key))

    refused = fleet.agent()

    assert refused.returncode == cycle.EXIT_REFUSED
    assert "accept_index_v1_until" in refused.stderr


# --- finding 4: key rotation ----------------------------------------------------------------


def test_issuer_rotate_agents_follow_with_no_config_change(fleet):
    conf_before = (fleet.nas / "agent.conf").read_bytes()
    old_key_id = key_id(load_issuer(parts.keystore(_config_of(fleet))).signing_key.public_key())

    rotated = fleet.certdrop("issuer", "rotate")
    followed = fleet.agent()
    renewed = fleet.certdrop("issue", "example")
    installed = fleet.agent()

    assert rotated.returncode == EXIT_OK, rotated.stderr
    index = parse_index(fleet.index_bytes())
    assert index.issuer_key_id != old_key_id
    assert [r.previous_key_id for r in index.rotations] == [old_key_id]
    assert followed.returncode == cycle.EXIT_OK, followed.stderr
    assert renewed.returncode == EXIT_OK, renewed.stderr
    assert installed.returncode == cycle.EXIT_OK, installed.stderr
    assert "installed: example" in installed.stdout
    state = fleet.agent_state()
    assert state["index"]["trust"]["key_id"] == index.issuer_key_id
    assert state["index"]["trust"]["sequence"] == 1
    assert (fleet.nas / "agent.conf").read_bytes() == conf_before
    # An agent that lost its state walks the chain again from its configured key.
    (fleet.nas / "state.json").unlink()
    assert fleet.agent().returncode == cycle.EXIT_OK


def test_a_forked_rotation_signed_with_a_retired_key_is_refused(fleet):
    retired = load_issuer(parts.keystore(_config_of(fleet))).signing_key
    assert fleet.certdrop("issuer", "rotate").returncode == EXIT_OK
    assert fleet.agent().returncode == cycle.EXIT_OK  # follows rotation 1

    # Someone who kept the retired key signs another successor and an index under it.
    impostor = ed25519.Ed25519PrivateKey.generate()
    fork = sign_rotation(retired, impostor.public_key(), sequence=1, issued_at=datetime.now(UTC))
    document = json.loads(fleet.index_bytes())
    entries = parse_index(fleet.index_bytes()).entries
    forged = sign_index(
        [replace(e, envelope=None, issuer_key_id=key_id(impostor.public_key())) for e in entries],
        agent_id="nas-1",
        signing_key=impostor,
        issued_at=datetime.now(UTC).replace(microsecond=0),
        expires_at=datetime.now(UTC).replace(microsecond=0) + timedelta(days=7),
        rotations=[fork],
    )
    assert document["rotations"] != json.loads(forged)["rotations"]
    fleet.store.put(fleet.index_key, forged)

    refused = fleet.agent()

    assert refused.returncode == cycle.EXIT_REFUSED
    assert fleet.agent_state()["last_error"]["code"] in (
        "bundle.rotation_fork",
        "bundle.issuer_key_unknown",
    )


def test_escrow_rotation_reseals_every_copy_and_new_agents_still_get_the_current_one(fleet):
    before = load_issuer(parts.keystore(_config_of(fleet)))

    rotated = fleet.certdrop("issuer", "rotate", "--escrow")
    newcomer = generate_agent_keys("nas-2")
    token = enrollment_of(newcomer).token()
    added = fleet.certdrop("agent", "add", token, "--site", "example")

    assert rotated.returncode == EXIT_OK, rotated.stderr
    assert "1 escrow cop" in rotated.stdout
    after = load_issuer(parts.keystore(_config_of(fleet)))
    assert after.retired_escrow_keys == ()
    copies = list(fleet.store.list(store_layout.ESCROW_PREFIX))
    assert len(copies) == 1
    site, version = store_layout.parse_escrow(copies[0].key)
    body = fleet.store.get(copies[0].key).body
    open_sealed(body, recipient_id=ESCROW_RECIPIENT, private_key=after.escrow_key, site=site,
                version=version)  # fmt: skip
    with pytest.raises(BundleError):
        open_sealed(body, recipient_id=ESCROW_RECIPIENT, private_key=before.escrow_key,
                    site=site, version=version)  # fmt: skip
    assert added.returncode == EXIT_OK, added.stderr
    assert "delivered current certificates of: example" in added.stdout


def _config_of(fleet: Fleet) -> Config:
    return config_module.load(fleet.config_source)


def test_an_old_index_put_back_is_not_signed_again_with_its_stale_entry(fleet):
    """Review finding: re-signing must not give a superseded entry a fresh expiry."""
    stale = fleet.index_bytes()  # version 1
    assert fleet.certdrop("issue", "example").returncode == EXIT_OK  # version 2 published
    fleet.store.put(fleet.index_key, stale)

    resigned = fleet.certdrop("run", days_later=3)  # the stale copy is due for re-signing

    assert resigned.returncode == EXIT_OK, resigned.stderr
    assert [e.version for e in parse_index(fleet.index_bytes()).entries] == []
    assert "older than the site's current certificate" in resigned.stderr
