"""An upgraded agent reads the state file an older version wrote, keeping what it installed.

STATE_5BC1FCC is what commit 5bc1fcc (2026-11-28) wrote (no failed_last, site_errors, index,
key_requests, dsm_check; errors by class name), kept by an independent upgrade review as a
regression. Runs on Python 3.8.
"""

from nas_agent.state import decode_state, encode_state

STATE_5BC1FCC = b"""{
  "dsm_version": "DSM 7 (Auth API v7)",
  "format": "certdrop-agent-state-v1",
  "index_etag": "\\"3f00a3523b22943c6b18f772f7a0ad0f8af7485113a5bc832a82a78d5bb1b93a\\"",
  "last_error": {"kind": "SourceUnavailable", "message": "down", "at": "2026-12-05T09:00:00Z",
                 "site": null},
  "last_success": "2026-12-05T09:02:16Z",
  "sites": {"example": {"dsm_certificate_id": "Vrb0jE",
    "fingerprint": "77060c86fea3591dc2cb8d94e0b9d0bb97a71229348fea64093ee461d13396c7",
    "installed_at": "2026-12-05T09:02:16Z", "not_after": "2031-12-05T09:02:14Z",
    "version": 1}}
}"""


def test_a_5bc1fcc_state_keeps_its_installed_version_and_maps_its_error():
    state = decode_state(STATE_5BC1FCC)
    assert state.installed_version("example") == 1
    assert state.installed_version("example", signer="any-key") == 1  # no signer recorded
    assert state.last_error is not None and state.last_error.code == "source.unavailable"
    assert state.failed_last is None and not state.failing  # times decide: success was later
    assert state.index is None and state.key_requests is None
    assert decode_state(encode_state(state)) == state
