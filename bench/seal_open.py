"""Cost of the bundle contract per bundle: seal, sign, open (every agent check), sizes.

    python bench/seal_open.py [--rounds N]

For an ECDSA P-256 and an RSA-4096 certificate bundle it prints the median time to seal one
object (encode + HPKE), to sign its index entry, to open it alone (HPKE + decode) and to
verify_and_open it as the agent does (signature, hash, HPKE, PEM parsing, key/chain/validity/names);
the sealed object's overhead over the plaintext; and the size of index.json with one entry and of
each further entry. Runs with the agent's Python 3.8 as well as 3.11.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

# Reuse the tests' tiny PKI rather than a second certificate factory.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cryptography

from lab.sample_bundles import HOSTNAMES, SITE, make_world, plaintext_of
from lab.sample_pki import NOW
from nas_agent.bundle import (
    build_index,
    open_sealed,
    seal,
    sign_entry,
    verify_and_open,
)
from nas_agent.bundle.plaintext import encode_plaintext


def _median_ms(call, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def _bench(world, key_type: str, rounds: int) -> dict:
    plaintext = plaintext_of(world.pki.issue(key_type=key_type), site=SITE, version=2)
    agent = world.agents["nas-a"]
    public = agent.box_key.public_key()
    signing_key = world.issuer.signing_key

    def do_seal() -> bytes:
        return seal(plaintext, recipient_id="nas-a", recipient_public_key=public)

    sealed = do_seal()
    entry = sign_entry(plaintext, sealed, agent_id="nas-a", signing_key=signing_key)
    index_bytes = build_index([entry])
    other = sign_entry(
        plaintext_of(world.pki.issue(key_type=key_type), site="other.test", version=2),
        sealed,
        agent_id="nas-a",
        signing_key=signing_key,
    )

    def do_open_full() -> None:
        verify_and_open(
            index_bytes,
            sealed,
            site=SITE,
            agent_id="nas-a",
            agent_private_key=agent.box_key,
            issuer_public_key=signing_key.public_key(),
            installed_version=1,
            hostnames=HOSTNAMES,
            now=NOW,
        )

    def do_open_sealed() -> None:
        open_sealed(sealed, recipient_id="nas-a", private_key=agent.box_key, site=SITE, version=2)

    def do_sign() -> None:
        sign_entry(plaintext, sealed, agent_id="nas-a", signing_key=signing_key)

    return {
        "plaintext": len(encode_plaintext(plaintext)),
        "sealed": len(sealed),
        "seal": _median_ms(do_seal, rounds),
        "sign": _median_ms(do_sign, rounds),
        "open_sealed": _median_ms(do_open_sealed, rounds),
        "open_full": _median_ms(do_open_full, rounds),
        "index_one": len(index_bytes),
        "index_each_more": len(build_index([entry, other])) - len(index_bytes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="timed runs per figure (median)")
    rounds = parser.parse_args().rounds
    world = make_world()
    print(
        f"Python {platform.python_version()}, cryptography {cryptography.__version__}, "
        f"{platform.machine()}, median of {rounds} runs"
    )
    header = (
        f"{'bundle':<10} {'seal ms':>8} {'sign ms':>8} {'open ms':>8} {'checks ms':>10}"
        f" {'plain B':>8} {'sealed B':>9} {'overhead B':>11} {'index B':>8} {'+entry B':>9}"
    )
    print(header)
    for label, key_type in (("P-256", "ec"), ("RSA-4096", "rsa4096")):
        r = _bench(world, key_type, rounds)
        print(
            f"{label:<10} {r['seal']:>8.3f} {r['sign']:>8.3f} {r['open_sealed']:>8.3f}"
            f" {r['open_full']:>10.3f} {r['plaintext']:>8} {r['sealed']:>9}"
            f" {r['sealed'] - r['plaintext']:>11} {r['index_one']:>8} {r['index_each_more']:>9}"
        )
    print(
        "open ms = HPKE open + decode only; checks ms = verify_and_open, everything the agent does"
    )


if __name__ == "__main__":
    main()
