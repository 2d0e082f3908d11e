"""The floor under `certdrop issue`: the least any client can do to issue the same certificate.

Run as a process (`python bench/_floor.py STATE.json`), it imports only what an issuance needs
(the `acme` library's client, dnspython's query and update, cryptography), loads an account
registered beforehand, orders example.test + *.example.test, writes both TXT values in one RFC
2136 update, answers both challenges, polls every 10 ms until the CA has validated and issued,
downloads the certificate and removes the values: the interpreter, those imports and the round
trips, nothing else (no configuration, state, lock, journal, propagation check or checks of the
certificate). No certdrop change can make `certdrop issue` cheaper than this process.

With `--fleet N` it issues N certificates one after the other on one session and prints the CPU
one of them cost once warm: the least CPU per certificate a fleet run on these libraries can
spend (certdrop's fleet figure also carries its start-up and everything a run keeps durable).

    state = register(work / "floor", directory_url, ca_bundle, bind, tsig)   # once, untimed
    subprocess.run([sys.executable, "bench/_floor.py", str(state)], check=True)
    subprocess.run([sys.executable, "bench/_floor.py", str(state), "--fleet", "20"], check=True)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import dns.query
import dns.tsig
import dns.tsigkeyring
import dns.update
import josepy as jose
from acme import challenges, client, crypto_util, messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

NAMES = ("example.test", "*.example.test")
ZONE = "example.test."
_POLL = 0.01  # seconds between polls: tighter than any real client would


def register(workdir: Path, directory_url: str, ca_bundle: Path, dns_server: str, tsig) -> Path:
    """Registers an account (the timed runs reuse it, as certdrop reuses its own) and writes
    what a run needs to `workdir`/state.json; returns that path."""
    workdir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    net = _network(jose.JWKEC(key=key), str(ca_bundle))
    acme = client.ClientV2(_directory(net, directory_url), net)
    account = acme.new_account(
        messages.NewRegistration.from_data(email="floor@example.test", terms_of_service_agreed=True)
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    state = {
        "directory": directory_url,
        "ca_bundle": str(ca_bundle),
        "dns": dns_server,
        "tsig_name": tsig.name,
        "tsig_secret": tsig.secret,
        "key": pem.decode("ascii"),
        "account": account.uri,
    }
    path = workdir / "state.json"
    path.write_text(json.dumps(state))
    return path


def issue(state: dict) -> str:
    """One issuance; the certificate chain's PEM."""
    return issue_with(state, *connect(state))


def connect(state: dict) -> tuple[jose.JWK, client.ClientV2]:
    """The account's key and a client holding its session (connections, nonce, directory)."""
    key = serialization.load_pem_private_key(state["key"].encode(), password=None)
    jwk = jose.JWKEC(key=key)
    net = _network(jwk, state["ca_bundle"])
    net.account = messages.RegistrationResource(uri=state["account"], body=messages.Registration())
    return jwk, client.ClientV2(_directory(net, state["directory"]), net)


def cpu_per_certificate(state: dict, count: int) -> float:
    """CPU seconds one issuance costs this process once warm: `count` issuances on one session,
    as a fleet run issues many (the fleet's floor)."""
    jwk, acme = connect(state)
    issue_with(state, jwk, acme)  # warm: connections, nonce, first-call costs
    start = time.process_time()
    for _ in range(count):
        issue_with(state, jwk, acme)
    return (time.process_time() - start) / count


def issue_with(state: dict, jwk: jose.JWK, acme: client.ClientV2) -> str:
    """One issuance on an open session; the certificate chain's PEM."""
    leaf_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    order = acme.new_order(crypto_util.make_csr(leaf_key, list(NAMES)))
    answers, values = [], []
    pending = [a for a in order.authorizations if a.body.status == messages.STATUS_PENDING]
    for authz in pending:  # the CA may hand out one it validated already: nothing to answer
        challenge = next(c for c in authz.body.challenges if isinstance(c.chall, challenges.DNS01))
        response, validation = challenge.response_and_validation(jwk)
        name = challenge.chall.validation_domain_name(authz.body.identifier.value)
        answers.append((challenge, response))
        values.append((name + ".", validation))
    _update(state, values, add=True)
    try:
        for challenge, response in answers:
            acme.answer_challenge(challenge, response)
        for authz in pending:
            while acme.poll(authz)[0].body.status != messages.STATUS_VALID:
                time.sleep(_POLL)
        order = acme.begin_finalization(order)
        while True:
            body = messages.Order.from_json(acme._post_as_get(order.uri).json())
            if body.status == messages.STATUS_VALID and body.certificate:
                return acme._post_as_get(body.certificate).text
            if body.status == messages.STATUS_INVALID:
                raise RuntimeError(f"order invalid: {body.error}")
            time.sleep(_POLL)
    finally:
        _update(state, values, add=False)


def _network(jwk: jose.JWK, ca_bundle: str) -> client.ClientNetwork:
    # acme types verify_ssl bool; it goes to requests' `verify`, which also takes a CA file.
    return client.ClientNetwork(jwk, alg=jose.ES256, verify_ssl=ca_bundle)  # type: ignore[arg-type]


def _directory(net: client.ClientNetwork, url: str) -> messages.Directory:
    return messages.Directory.from_json(net.get(url).json())


def _update(state: dict, values: list[tuple[str, str]], *, add: bool) -> None:
    """One RFC 2136 update, signed with the zone's TSIG key, adding or deleting every value."""
    keyring = dns.tsigkeyring.from_text({state["tsig_name"]: state["tsig_secret"]})
    update = dns.update.UpdateMessage(ZONE, keyring=keyring, keyalgorithm=dns.tsig.HMAC_SHA256)
    for name, value in values:
        if add:
            update.add(name, 60, "TXT", f'"{value}"')
        else:
            update.delete(name, "TXT", f'"{value}"')
    host, _, port = state["dns"].rpartition(":")
    dns.query.tcp(update, host, port=int(port), timeout=10)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[2] == "--fleet":
        cpu = cpu_per_certificate(json.loads(Path(sys.argv[1]).read_text()), int(sys.argv[3]))
        print(json.dumps({"cpu_ms_per_certificate": cpu * 1000}))
        raise SystemExit(0)
    issued = issue(json.loads(Path(sys.argv[1]).read_text()))
    if "BEGIN CERTIFICATE" not in issued:
        raise SystemExit("no certificate")
