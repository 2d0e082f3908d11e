"""The agent's state file: pure updates, atomic 0600 saves, and clear refusals of damaged files."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nas_agent.errors import StateCorrupt, StateUnwritable
from nas_agent.state import (
    MAX_ERROR_MESSAGE,
    AgentState,
    decode_state,
    encode_state,
    load_state,
    save_state,
)
from nas_agent.status import status_report

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=timezone.utc)
FINGERPRINT = hashlib.sha256(b"leaf").hexdigest()


def installed_state(version: int = 7, site: str = "example.com") -> AgentState:
    return AgentState().with_installed(
        site,
        version=version,
        fingerprint=FINGERPRINT,
        not_after=NOW + timedelta(days=60),
        dsm_certificate_id="Ab12Cd",
        installed_at=NOW,
    )


def full_state() -> AgentState:
    return (
        installed_state()
        .with_error("source.unavailable", "HTTP 503", NOW - timedelta(hours=1))
        .with_success(NOW)
        .with_index_etag('"9b2c"', "1" * 64)
        .with_unconfigured_sites(["shop", "blog"])
        .with_dsm_check(NOW, "2" * 64)
        .with_dsm_version("DSM 7.2.1-69057 Update 5")
    )


def test_no_file_is_an_empty_state(tmp_path: Path) -> None:
    state = load_state(str(tmp_path / "state.json"))
    assert state == AgentState()
    assert state.installed_version("example.com") is None and not state.failing


def test_a_saved_state_loads_back_equal(tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    save_state(path, full_state())
    loaded = load_state(path)
    assert loaded == full_state()
    assert loaded.installed_version("example.com") == 7
    assert loaded.installed("example.com").dsm_certificate_id == "Ab12Cd"


def test_the_file_is_owner_only_and_no_temporary_file_remains(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    old_umask = os.umask(0o022)
    try:
        save_state(str(path), installed_state(1))
        save_state(str(path), installed_state(2))
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    assert load_state(str(path)).installed_version("example.com") == 2


def test_a_failed_save_is_transient_and_leaves_nothing_behind(tmp_path: Path) -> None:
    occupied = tmp_path / "state.json"
    occupied.mkdir()  # a directory cannot be replaced by a file
    with pytest.raises(StateUnwritable) as caught:
        save_state(str(occupied), full_state())
    assert caught.value.transient
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    assert occupied.is_dir()


def test_updates_return_new_states_and_leave_the_old_one_alone() -> None:
    before = installed_state(3)
    after = before.with_installed(
        "example.org",
        version=1,
        fingerprint=FINGERPRINT,
        not_after=NOW,
        dsm_certificate_id="x",
        installed_at=NOW,
    )
    assert sorted(after.sites) == ["example.com", "example.org"]
    assert sorted(before.sites) == ["example.com"]
    with pytest.raises(TypeError):
        after.sites["example.net"] = after.sites["example.com"]  # type: ignore[index]


def test_timestamps_are_kept_to_whole_utc_seconds() -> None:
    moment = datetime(2026, 11, 28, 13, 0, 0, 987654, tzinfo=timezone(timedelta(hours=1)))
    state = AgentState().with_success(moment)
    assert decode_state(encode_state(state)).last_success == NOW
    with pytest.raises(ValueError, match="timezone-aware"):
        AgentState().with_success(datetime(2026, 11, 28))


@pytest.mark.parametrize(
    ("site", "changes", "message"),
    [
        ("Example Com", {}, "not a site id"),
        ("example.com", {"version": 0}, "positive integer"),
        ("example.com", {"fingerprint": "ABC"}, "64 lower-case hex"),
        ("example.com", {"dsm_certificate_id": ""}, "dsm_certificate_id"),
    ],
)
def test_an_install_record_with_bad_fields_is_refused(
    site: str, changes: dict, message: str
) -> None:
    fields = {
        "version": 1,
        "fingerprint": FINGERPRINT,
        "not_after": NOW,
        "dsm_certificate_id": "x",
        "installed_at": NOW,
    }
    fields.update(changes)
    with pytest.raises(ValueError, match=message):
        AgentState().with_installed(site, **fields)


def test_an_error_after_the_last_success_is_failing_and_a_success_clears_that() -> None:
    errored = (
        AgentState()
        .with_success(NOW)
        .with_error("bundle.names_not_covered", "x", NOW, "example.com")
    )
    recovered = errored.with_success(NOW + timedelta(minutes=5))
    assert errored.failing and not recovered.failing
    assert recovered.last_error is not None and recovered.last_error.site == "example.com"
    assert AgentState().with_error("agent_config.invalid", "x", NOW).failing


def test_an_error_after_a_clock_set_back_is_still_failing() -> None:
    """`failing` compared the times of the last error and the last success: after the NAS's
    clock was set back (an RTC reset, an NTP correction) an error recorded after a success read
    as older, and the signed report said `failing: false`. The order of events decides now."""
    errored = (
        AgentState()
        .with_success(NOW)
        .with_error("bundle.names_not_covered", "x", NOW - timedelta(hours=1), "example.com")
    )
    assert errored.failing
    assert decode_state(encode_state(errored)).failing
    assert not errored.with_success(NOW - timedelta(minutes=50)).failing


def test_a_state_file_written_before_the_order_of_events_judges_failing_by_time() -> None:
    document = json.loads(
        encode_state(AgentState().with_success(NOW).with_error("x.y", "x", NOW + timedelta(1)))
    )
    del document["failed_last"]
    assert decode_state(json.dumps(document).encode()).failing
    document["last_success"] = "2030-01-01T00:00:00Z"
    assert not decode_state(json.dumps(document).encode()).failing


def test_a_sites_error_stays_until_a_cycle_in_which_it_did_not_fail() -> None:
    state = (
        AgentState()
        .with_error("bundle.names_not_covered", "names", NOW, "shop")
        .with_error("install.failed", "rolled back", NOW, "blog")
    )
    assert {site: e.code for site, e in state.site_errors.items()} == {
        "shop": "bundle.names_not_covered",
        "blog": "install.failed",
    }
    assert state.last_error is not None and state.last_error.code == "install.failed"
    assert set(state.with_site_errors_of(["blog", "gone"]).site_errors) == {"blog"}
    assert decode_state(encode_state(state)) == state


def test_a_state_file_written_before_codes_reads_its_class_names_as_codes() -> None:
    document = json.loads(encode_state(full_state()))
    del document["site_errors"]
    document["last_error"] = {"kind": "SourceUnavailable", "message": "HTTP 503",
                              "at": "2026-11-28T11:00:00Z", "site": None}  # fmt: skip
    old = decode_state(json.dumps(document).encode())
    document["last_error"]["kind"] = "ErrorOfAnAgentLongGone"
    gone = decode_state(json.dumps(document).encode())

    assert old.last_error is not None and old.last_error.code == "source.unavailable"
    assert old.site_errors == {}
    assert gone.last_error is not None and gone.last_error.code == "unknown"


def test_a_refused_dsm_login_keeps_the_agent_failing_until_a_login_is_accepted() -> None:
    refused = (
        AgentState()
        .with_dsm_check(NOW, "2" * 64, code="dsm.login_wrong_password", message="wrong")
        .with_success(NOW + timedelta(minutes=15))
    )
    accepted = refused.with_dsm_check(NOW + timedelta(days=1), "2" * 64)
    assert refused.failing and not accepted.failing
    assert refused.dsm_check is not None and refused.dsm_check.error is not None
    assert refused.dsm_check.error.code == "dsm.login_wrong_password"
    assert decode_state(encode_state(refused)) == refused


def test_a_state_file_written_before_scopes_and_checks_reads_as_never_checked() -> None:
    document = json.loads(encode_state(full_state()))
    for key in ("index_scope", "unconfigured_sites", "dsm_check"):
        del document[key]
    old = decode_state(json.dumps(document).encode())
    assert old.index_etag == '"9b2c"' and old.index_scope is None
    assert old.unconfigured_sites == () and old.dsm_check is None


def test_long_error_messages_are_cut_to_keep_the_file_small() -> None:
    state = AgentState().with_error("source.failed", "e" * 10_000, NOW)
    assert state.last_error is not None and len(state.last_error.message) == MAX_ERROR_MESSAGE


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "not a state file"),
        (b"{not json", "not a state file"),
        (b'{"format": "certdrop-agent-state-v9", "sites": {}}', "certdrop-agent-state-v9"),
        (b'{"format": "certdrop-agent-state-v1", "sites": []}', "sites is not an object"),
    ],
)
def test_a_damaged_file_says_what_to_do(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(StateCorrupt) as caught:
        load_state(str(path))
    assert reason in str(caught.value)
    assert f"mv {path} {path}.broken" in str(caught.value)
    assert not caught.value.transient


def test_a_record_with_a_wrong_field_is_corrupt() -> None:
    document = json.loads(encode_state(full_state()))
    document["sites"]["example.com"]["fingerprint"] = "not hex"
    with pytest.raises(StateCorrupt, match="fingerprint"):
        decode_state(json.dumps(document).encode())


def test_the_status_report_shows_what_is_installed_and_nothing_local() -> None:
    report = json.loads(
        status_report(full_state(), agent_id="nas-01", now=NOW, poll_interval=900.0)
    )
    assert report["agent"] == "nas-01" and report["seen_at"] == "2026-11-28T12:00:00Z"
    assert report["poll_interval_s"] == 900
    assert report["sites"]["example.com"]["version"] == 7
    assert report["sites"]["example.com"]["fingerprint"] == FINGERPRINT
    assert report["dsm_version"] == "DSM 7.2.1-69057 Update 5"
    assert report["last_error"]["code"] == "source.unavailable" and report["failing"] is False
    assert report["site_errors"] == {}
    assert report["unconfigured_sites"] == ["blog", "shop"]
    assert report["dsm_check"] == {"at": "2026-11-28T12:00:00Z", "error": None}
    text = json.dumps(report)
    assert "Ab12Cd" not in text and "9b2c" not in text
    assert "1" * 64 not in text and "2" * 64 not in text


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_FIELDS = [
    ("format",),
    ("sites",),
    ("last_success",),
    ("last_error",),
    ("last_error", "at"),
    ("site_errors",),
    ("index_etag",),
    ("index_scope",),
    ("unconfigured_sites",),
    ("dsm_check",),
    ("dsm_check", "at"),
    ("dsm_check", "error"),
    ("dsm_check", "transient"),
    ("sites", "example.com"),
    ("sites", "example.com", "version"),
    ("sites", "example.com", "not_after"),
    ("sites", "example.com", "dsm_certificate_id"),
]


@given(st.binary(max_size=500))
def test_arbitrary_bytes_only_ever_raise_state_corrupt(data: bytes) -> None:
    with contextlib.suppress(StateCorrupt):
        decode_state(data)


@given(where=st.sampled_from(_FIELDS), value=_JSON)
def test_any_field_replaced_by_any_json_is_read_or_refused_as_corrupt(
    where: tuple, value: object
) -> None:
    document = json.loads(encode_state(full_state()))
    holder = document
    for key in where[:-1]:
        holder = holder[key]
    holder[where[-1]] = value
    with contextlib.suppress(StateCorrupt):
        decode_state(json.dumps(document).encode())


@given(
    version=st.integers(min_value=1, max_value=2**53 - 1),
    message=st.text(max_size=50),
    etag=st.none() | st.text(max_size=40),
    site=st.from_regex(r"[a-z0-9][a-z0-9.-]{0,20}", fullmatch=True),
)
def test_any_state_round_trips(version: int, message: str, etag: str | None, site: str) -> None:
    state = (
        installed_state(version, site)
        .with_error("source.failed", message, NOW, site)
        .with_index_etag(etag)
    )
    assert decode_state(encode_state(state)) == state
