"""`make demo`'s script, run as CI runs it: every emulated DSM must end serving its new
wildcard certificate, the DNS-PERSIST-01 site must be issued from the record its owner placed
once, and the status table must show it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "demo" / "run.py"


def test_the_demo_ends_with_every_dsm_serving_its_new_certificate_and_the_status_showing_it(
    tmp_path,
):
    for _ in range(2):  # re-running it works
        done = subprocess.run(
            [sys.executable, str(DEMO)],
            capture_output=True,
            text=True,
            timeout=180,
            env={**os.environ, "CERTDROP_DEMO_DIR": str(tmp_path / "demo")},
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "everything it started is stopped" in done.stdout
    served = done.stdout.split("==> what each emulated DSM serves now")[1]
    assert served.count("names    example.test, *.example.test") == 1  # nas-home
    assert served.count("names    shop.test, *.shop.test") == 1
    assert served.count("names    *.vault.test, vault.test") == 1  # nas-office, its own key
    # The agent-custody site: nas-office made the key and posted a CSR; the issuer ordered with
    # it; no object (escrow copies opened) and no issuer output holds that key.
    assert "vault    not due   -      nas-office: waiting for CSR" in done.stdout
    assert "site vault: CSR " in done.stdout and " posted" in done.stdout
    assert "vault  issued    v1     nas-office: issued v1" in done.stdout
    scan = done.stdout.split("==> vault's key is on nas-office only")[1].split("==>")[0]
    assert "its DSM serves the certificate of the current one" in scan
    assert "1 of vault: leaf and chain only): no key of vault" in scan
    assert "lines scanned: no key of vault" in scan
    # Each NAS onboarded by invite, join, approve; the 2FA unit's join remembered its device.
    onboarding = done.stdout.split("==> each NAS joins in three steps")[1].split("==>")[0]
    assert onboarding.count("certdrop-invite-v1:") >= 3
    assert onboarding.count("enrollment posted") == 3
    assert onboarding.count("approved; it receives") == 3
    assert "this device is remembered by DSM" in onboarding
    # The signing key rotated; every agent followed it, the agent of "example" installed its new
    # version under the new key, each with its agent.conf untouched.
    rotation = done.stdout.split("==> the issuer rotates its signing key")[1].split("==>")[0]
    assert "(rotation 1); agents follow it at their next poll" in rotation
    assert rotation.count("issuer key rotated: now following") == 3
    assert rotation.count("installed: example") == 1
    assert "byte for byte what it was before the rotation" in rotation
    status = done.stdout.split("==> the operator's view")[1]
    for row in (
        "nas-home    example v2, shop v1",
        "nas-office  vault v1",
        "nas-shop    shop v1",
    ):
        assert row in status
    assert status.count("healthy") == 3
    # The DNS-PERSIST-01 site: its record printed, placed once by its owner, checked, issued.
    persist = done.stdout.split("==> a site by DNS-PERSIST-01")[1].split("==>")[0]
    assert '_validation-persist.vault.test. 3600 IN TXT "pebble.letsencrypt.org; accounturi=' in (
        persist
    )
    assert "nsupdate -y" in persist
    assert "[ok] object store: conditional writes" in persist
    assert "doctor: all 3 check(s) passed" in persist
    assert "vault  _validation-persist.vault.test.  this issuer's" in status
    assert "dashboard --port 8080" in done.stdout
