"""``SYNO.API.Encryption``: the key a plain-HTTP login encrypts its credentials with (§3.2).

[N4S4] (synology-api 0.9.4 ``auth.py`` ``encrypt_params``, its default over plain HTTP) reads
``getinfo`` — ``public_key`` (hex RSA modulus, exponent 0x10001), ``cipherkey``,
``ciphertoken``, ``server_time`` — then sends its login fields as one form field named by
``cipherkey``: ``{"rsa": b64(RSA-PKCS#1 v1.5(passphrase)), "aes": b64(AES(urlencoded fields,
plus ciphertoken=server_time))}``, the AES part in OpenSSL's ``Salted__`` format (AES-256-CBC,
key and IV from MD5 ``EVP_BytesToKey``). The field names are the ones real DSM answers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
import urllib.parse
from typing import Any

from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

CIPHER_KEY = "__cIpHeRtExT"
CIPHER_TOKEN = "__cIpHeRtOkEn"
# N4S4 encrypts a 501-byte passphrase with PKCS#1 v1.5, which needs a modulus of 4096 bits.
_KEY_BITS = 4096
_SALTED = b"Salted__"


class Unreadable(ValueError):
    """The encrypted field does not decrypt to login fields."""


class LoginEncryption:
    """One emulated DSM's RSA key, made at the first ``getinfo`` (4096-bit keys take a while)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: rsa.RSAPrivateKey | None = None

    def _private_key(self) -> rsa.RSAPrivateKey:
        with self._lock:
            if self._key is None:
                self._key = rsa.generate_private_key(public_exponent=0x10001, key_size=_KEY_BITS)
            return self._key

    def info(self, server_time: int) -> dict[str, Any]:
        modulus = self._private_key().public_key().public_numbers().n
        return {
            "cipherkey": CIPHER_KEY,
            "ciphertoken": CIPHER_TOKEN,
            "public_key": format(modulus, "x"),
            "server_time": server_time,
        }

    def decrypt(self, field: str) -> dict[str, str]:
        """The login fields inside the ``CIPHER_KEY`` field, without the cipher token.

        Emulator choice, the lenient reading: the token's server time is not checked.
        """
        try:
            parts = json.loads(field)
            sealed = base64.b64decode(parts["rsa"], validate=True)
            blob = base64.b64decode(parts["aes"], validate=True)
            passphrase = self._private_key().decrypt(sealed, padding.PKCS1v15())
            text = _openssl_aes_decrypt(passphrase, blob).decode("utf-8")
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise Unreadable(str(exc)) from None
        fields = dict(urllib.parse.parse_qsl(text, keep_blank_values=True))
        fields.pop(CIPHER_TOKEN, None)
        return fields


def _openssl_aes_decrypt(passphrase: bytes, blob: bytes) -> bytes:
    if not blob.startswith(_SALTED) or len(blob) < 32 or len(blob) % 16:
        raise ValueError("not an OpenSSL Salted__ AES blob")
    salt, body = blob[8:16], blob[16:]
    derived = last = b""
    while len(derived) < 48:
        last = hashlib.md5(last + passphrase + salt).digest()
        derived += last
    decryptor = Cipher(algorithms.AES(derived[:32]), modes.CBC(derived[32:48])).decryptor()
    padded = decryptor.update(body) + decryptor.finalize()
    unpadder = sym_padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()
