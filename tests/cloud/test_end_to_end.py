"""The whole pipeline on the embedded default: Pebble + BIND issue, a directory store, an
enrolled agent, the DSM emulator serving the result — with a 90-day certificate and with a
6-day one of the "shortlived" profile."""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from cloud.config import Config
from cloud.keys.issuer import init_issuer, public_lines
from cloud.pipeline import parts
from cloud.pipeline.site_state import load_site_state
from cloud.publish.publisher import Publisher
from lab.dsm_emulator import EmulatorHandle, serve
from lab.issuer_config import bind_config
from nas_agent import cycle
from nas_agent.config import load_config
from nas_agent.dsm.client import DsmClient
from nas_agent.enrollment import enrollment_of
from nas_agent.keys import generate_agent_keys, save_agent_keys
from tests.cloud.issuing import issue_and_publish

USER, PASSWORD = "certdrop", "s3cret-for-the-emulator"


def _handshake_sha256(url: str, server_name: str) -> tuple[str, x509.Certificate]:
    host, port = url.removeprefix("https://").rstrip("/").split(":")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    return hashlib.sha256(der).hexdigest(), x509.load_der_x509_certificate(der)


def _bindings(dsm_url: str) -> dict[str, str]:
    """service name → id of the certificate serving it."""
    client = DsmClient(dsm_url, timeout=10)
    with client.logged_in(USER, PASSWORD) as session:
        listed = client.list_certificates(session)
    client.close()
    return {service.service: cert.id for cert in listed for service in cert.services}


def _enrolled_nas(tmp_path: Path, config: Config, dsm: EmulatorHandle) -> tuple[Publisher, Path]:
    """The issuer's keys, and an agent "nas-1" enrolled for the site "example" that reads the
    store's directory and installs into `dsm`; returns the publisher and the agent's INI file."""
    issuer = init_issuer(parts.keystore(config))
    issuer_line, _ = public_lines(issuer)
    nas = tmp_path / "nas"
    (nas / "keys").mkdir(parents=True)
    keys = generate_agent_keys("nas-1")
    save_agent_keys(keys, str(nas / "keys"))
    (nas / "password").write_text(PASSWORD)
    os.chmod(nas / "password", 0o600)
    (nas / "agent.conf").write_text(
        f"[agent]\nid = nas-1\nissuer_key = {issuer_line}\n"
        f"[source]\nurl = {config.storage.store_url}\n"
        f"[dsm]\nurl = {dsm.https_url}\nusername = {USER}\npassword_file = password\n"
        "insecure = true\nconfirm_timeout = 5\n"
        "[site:example]\nhostnames = nas.example.test\nmake_default = true\n"
    )
    publisher = Publisher(parts.store(config), issuer)
    record = publisher.registry.add(enrollment_of(keys), ("example",), datetime.now(UTC))
    publisher.subscribe(record, ("example",))
    return publisher, nas / "agent.conf"


def test_a_published_certificate_reaches_dsm_and_a_second_poll_imports_nothing(
    tmp_path, pebble, bind_auth
):
    # The issuer: config, one site.
    (tmp_path / "cloud").mkdir()
    config = bind_config(tmp_path / "cloud", pebble, bind_auth)
    store = parts.store(config)

    # The NAS: an emulated DSM and an enrolled agent reading the store's directory.
    dsm = serve(str(tmp_path / "dsm"), 0, 0, USER, PASSWORD)
    try:
        publisher, agent_ini = _enrolled_nas(tmp_path, config, dsm)
        bindings_before = _bindings(dsm.http_url)

        cert = issue_and_publish(config, store, publisher).certificate
        agent_config = load_config(str(agent_ini))
        first = cycle.run_cycle(agent_config)
        second = cycle.run_cycle(agent_config)

        served, leaf = _handshake_sha256(dsm.https_url, "nas.example.test")
        bindings_after = _bindings(dsm.http_url)
        imports = [r for r in dsm.requests if r.api_method == "import"]
    finally:
        dsm.stop()

    assert first.exit_code == cycle.EXIT_OK, first.failures
    assert first.installed == ("example",)
    assert served == cert.fingerprint_sha256
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == ["*.example.test", "example.test"]
    # The new certificate took the DSM web UI ("default"); every other binding stayed.
    new_id = bindings_after["default"]
    assert {s: i for s, i in bindings_after.items() if s != "default"} == {
        s: i for s, i in bindings_before.items() if s != "default"
    }
    assert new_id != bindings_before["default"]
    # The second poll: one conditional request, no body, no import.
    assert second.exit_code == cycle.EXIT_OK
    assert second.index_unchanged
    assert (second.requests, second.body_bytes) == (1, 0)
    assert len(imports) == 1


def test_a_shortlived_site_gets_a_six_day_certificate_that_the_agent_installs_into_dsm(
    tmp_path, pebble_profiles, bind_auth
):
    (tmp_path / "cloud").mkdir()
    site = 'domain = "example.test"\n    profile = "shortlived"'
    config = bind_config(tmp_path / "cloud", pebble_profiles, bind_auth, site=site)
    store = parts.store(config)

    dsm = serve(str(tmp_path / "dsm"), 0, 0, USER, PASSWORD)
    try:
        publisher, agent_ini = _enrolled_nas(tmp_path, config, dsm)
        cert = issue_and_publish(config, store, publisher).certificate
        cycle_result = cycle.run_cycle(load_config(str(agent_ini)))
        served, leaf = _handshake_sha256(dsm.https_url, "nas.example.test")
    finally:
        dsm.stop()

    assert cycle_result.exit_code == cycle.EXIT_OK, cycle_result.failures
    assert cycle_result.installed == ("example",)
    assert served == cert.fingerprint_sha256
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert timedelta(days=6) - timedelta(seconds=1) <= lifetime <= timedelta(days=6)
    state = load_site_state(store, "example")
    assert state.current.profile == "shortlived"
    # Renewed inside the CA's window, which Pebble puts around day 4 of the 6.
    assert state.current.not_before + timedelta(days=3) <= state.window.renew_at
    assert state.window.renew_at < state.current.not_before + timedelta(days=5)
