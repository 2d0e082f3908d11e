"""An independent HPKE implementation (pycryptodome's Crypto.Protocol.HPKE) opens what we seal
and seals what we open: the sealed object is standard RFC 9180, not a home-made composition.

pycryptodome 3.24.1, the last release for Python 3.8, cannot import its HPKE module there (it
evaluates `tuple[bytes, bytes]` at runtime), so on 3.8 these tests skip; the golden vectors still
prove that 3.8 opens what 3.11 sealed.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from lab.sample_bundles import HEADER_V1, SITE, make_world
from nas_agent.bundle import hpke_info, open_sealed, seal
from nas_agent.bundle.plaintext import decode_plaintext, encode_plaintext
from nas_agent.keys import raw_public_bytes

try:
    from Crypto.Protocol import DH, HPKE
except TypeError:  # pycryptodome 3.24.1 on Python 3.8, see above
    HPKE = None

pytestmark = pytest.mark.skipif(
    HPKE is None, reason="this pycryptodome cannot import Crypto.Protocol.HPKE on this Python"
)


def _raw_private(key: x25519.X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def world():
    return make_world()


def test_pycryptodome_opens_an_object_we_sealed(world):
    plaintext = world.plaintext(version=4)
    agent_key = world.agents["nas-b"].box_key
    sealed = seal(plaintext, recipient_id="nas-b", recipient_public_key=agent_key.public_key())
    assert sealed[:5] == HEADER_V1
    enc, ciphertext = sealed[5:37], sealed[37:]
    receiver = HPKE.new(
        receiver_key=DH.import_x25519_private_key(_raw_private(agent_key)),
        aead_id=HPKE.AEAD.CHACHA20_POLY1305,
        enc=enc,
        info=hpke_info("nas-b", SITE, 4),
    )
    opened = receiver.unseal(ciphertext)
    assert decode_plaintext(opened) == plaintext


def test_pycryptodome_refuses_our_object_under_another_info(world):
    plaintext = world.plaintext(version=4)
    agent_key = world.agents["nas-b"].box_key
    sealed = seal(plaintext, recipient_id="nas-b", recipient_public_key=agent_key.public_key())
    receiver = HPKE.new(
        receiver_key=DH.import_x25519_private_key(_raw_private(agent_key)),
        aead_id=HPKE.AEAD.CHACHA20_POLY1305,
        enc=sealed[5:37],
        info=hpke_info("nas-a", SITE, 4),
    )
    with pytest.raises(ValueError):
        receiver.unseal(sealed[37:])


def test_we_open_an_object_pycryptodome_sealed(world):
    plaintext = world.plaintext(version=6)
    agent_key = world.agents["nas-c"].box_key
    sender = HPKE.new(
        receiver_key=DH.import_x25519_public_key(raw_public_bytes(agent_key.public_key())),
        aead_id=HPKE.AEAD.CHACHA20_POLY1305,
        info=hpke_info("nas-c", SITE, 6),
    )
    ciphertext = sender.seal(encode_plaintext(plaintext))
    sealed = HEADER_V1 + sender.enc + ciphertext
    opened = open_sealed(sealed, recipient_id="nas-c", private_key=agent_key, site=SITE, version=6)
    assert opened == plaintext
