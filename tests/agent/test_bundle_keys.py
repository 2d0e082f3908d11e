"""Enrollment keys, key files, the enrollment token and the issuer and escrow key lines."""

from __future__ import annotations

import os
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from nas_agent.enrollment import (
    AGENT_TOKEN_PREFIX,
    enrollment_of,
    escrow_key_line,
    issuer_key_line,
    parse_enrollment_token,
    parse_escrow_key_line,
    parse_issuer_key_line,
)
from nas_agent.errors import KeyFileError, TokenError
from nas_agent.keys import (
    BOX_KEY_FILE,
    SIGNING_KEY_FILE,
    generate_agent_keys,
    generate_issuer_keys,
    key_id,
    load_agent_keys,
    load_private_key,
    load_private_key_pem,
    private_key_pem,
    raw_public_bytes,
    save_agent_keys,
    save_private_key,
)

B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def test_saved_agent_keys_load_back_as_the_same_keys(tmp_path):
    keys = generate_agent_keys("nas-01")
    save_agent_keys(keys, str(tmp_path))
    loaded = load_agent_keys(str(tmp_path), "nas-01")
    assert raw_public_bytes(loaded.box_key.public_key()) == raw_public_bytes(
        keys.box_key.public_key()
    )
    assert raw_public_bytes(loaded.signing_key.public_key()) == raw_public_bytes(
        keys.signing_key.public_key()
    )


def test_key_files_are_created_readable_by_the_owner_only(tmp_path):
    old_umask = os.umask(0)  # the most permissive umask must not widen the mode
    try:
        save_agent_keys(generate_agent_keys("nas-01"), str(tmp_path))
    finally:
        os.umask(old_umask)
    for name in (BOX_KEY_FILE, SIGNING_KEY_FILE):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600


def test_saving_leaves_no_temporary_file_behind(tmp_path):
    save_agent_keys(generate_agent_keys("nas-01"), str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == sorted([BOX_KEY_FILE, SIGNING_KEY_FILE])


def test_saving_refuses_to_overwrite_an_existing_key(tmp_path):
    path = str(tmp_path / "issuer.key")
    first = ed25519.Ed25519PrivateKey.generate()
    save_private_key(path, first)
    with pytest.raises(KeyFileError) as caught:
        save_private_key(path, ed25519.Ed25519PrivateKey.generate())
    assert caught.value.path == path
    assert load_private_key(path, ed25519.Ed25519PrivateKey).public_key() == first.public_key()
    assert os.listdir(tmp_path) == ["issuer.key"]


def test_saving_agent_keys_writes_nothing_if_one_file_already_exists(tmp_path):
    (tmp_path / SIGNING_KEY_FILE).write_bytes(b"someone else's key")
    with pytest.raises(KeyFileError):
        save_agent_keys(generate_agent_keys("nas-01"), str(tmp_path))
    assert not (tmp_path / BOX_KEY_FILE).exists()


def test_loading_refuses_a_key_file_others_can_read(tmp_path):
    path = str(tmp_path / "agent.key")
    save_private_key(path, x25519.X25519PrivateKey.generate())
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_private_key(path, x25519.X25519PrivateKey)


def test_loading_refuses_a_key_of_the_wrong_type(tmp_path):
    path = str(tmp_path / "agent.key")
    save_private_key(path, ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(KeyFileError, match="expected X25519PrivateKey"):
        load_private_key(path, x25519.X25519PrivateKey)


def test_loading_a_missing_or_garbled_key_file_says_which_file(tmp_path):
    missing = str(tmp_path / "missing.key")
    with pytest.raises(KeyFileError) as caught:
        load_private_key(missing, x25519.X25519PrivateKey)
    assert caught.value.path == missing
    garbled = tmp_path / "garbled.key"
    garbled.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    os.chmod(garbled, 0o600)
    with pytest.raises(KeyFileError) as caught:
        load_private_key(str(garbled), x25519.X25519PrivateKey)
    assert caught.value.path == str(garbled)


def test_key_reprs_show_no_key_material():
    keys = generate_agent_keys("nas-01")
    pem = private_key_pem(keys.box_key).decode("ascii")
    assert "nas-01" in repr(keys)
    assert "BEGIN" not in repr(keys) and pem not in repr(keys)
    assert "X25519PrivateKey" not in repr(keys)


def test_agent_ids_outside_the_pattern_are_refused():
    for bad in ("", "-nas", "NAS", "nas_01", "nas.01", "n" * 64):
        with pytest.raises(ValueError):
            generate_agent_keys(bad)
    assert generate_agent_keys("n" * 63).agent_id == "n" * 63


def test_an_enrollment_token_round_trips():
    keys = generate_agent_keys("nas-01")
    token = enrollment_of(keys).token()
    assert token.startswith(f"{AGENT_TOKEN_PREFIX}:nas-01:")
    assert "\n" not in token and " " not in token
    parsed = parse_enrollment_token(token)
    assert parsed.agent_id == "nas-01"
    assert raw_public_bytes(parsed.box_public_key) == raw_public_bytes(keys.box_key.public_key())
    assert raw_public_bytes(parsed.signing_public_key) == raw_public_bytes(
        keys.signing_key.public_key()
    )


def test_a_token_wrapped_over_lines_with_spaces_still_parses():
    token = enrollment_of(generate_agent_keys("nas-01")).token()
    wrapped = "  " + token[:40] + "\n  " + token[40:80] + "\r\n" + token[80:] + "\n"
    assert parse_enrollment_token(wrapped) == parse_enrollment_token(token)


def test_every_single_character_typo_in_a_token_is_caught():
    token = enrollment_of(generate_agent_keys("nas-01")).token()
    for position, original in enumerate(token):
        replacement = "x" if original != "x" else "y"
        typo = token[:position] + replacement + token[position + 1 :]
        with pytest.raises(TokenError):
            parse_enrollment_token(typo)


def test_every_substitution_in_the_key_part_is_caught():
    token = enrollment_of(generate_agent_keys("nas-01")).token()
    start = token.rindex(":") + 1
    for position in range(start, len(token)):
        for replacement in B64URL[::7]:
            if replacement == token[position]:
                continue
            with pytest.raises(TokenError):
                parse_enrollment_token(token[:position] + replacement + token[position + 1 :])


def test_token_errors_say_what_is_wrong():
    token = enrollment_of(generate_agent_keys("nas-01")).token()
    cases = {
        "certdrop-issuer-v1:" + token.split(":", 1)[1]: "does not start with",
        token[: len(token) - 3]: "bytes, expected",
        token.replace("nas-01", "nas-02"): "checksum",
        token.replace(":nas-01:", ":NAS-01:"): "agent id",
        token.replace(":nas-01:", ":"): "parts",
        token[:-1] + "*": "base64url",
    }
    for bad, expected in cases.items():
        with pytest.raises(TokenError, match=expected) as caught:
            parse_enrollment_token(bad)
        assert caught.value.kind == "enrollment token"


def test_the_issuer_key_line_round_trips_and_catches_typos():
    issuer = generate_issuer_keys()
    public = issuer.signing_key.public_key()
    line = issuer_key_line(public)
    assert line.startswith("certdrop-issuer-v1:")
    assert raw_public_bytes(parse_issuer_key_line(line)) == raw_public_bytes(public)
    typo = line[:25] + ("A" if line[25] != "A" else "B") + line[26:]
    with pytest.raises(TokenError, match="checksum"):
        parse_issuer_key_line(typo)
    with pytest.raises(TokenError, match="does not start with"):
        parse_issuer_key_line(escrow_key_line(issuer.escrow_key.public_key()))


def test_the_escrow_key_line_round_trips():
    public = generate_issuer_keys().escrow_key.public_key()
    assert raw_public_bytes(parse_escrow_key_line(escrow_key_line(public))) == raw_public_bytes(
        public
    )


def test_the_key_id_is_the_first_eight_bytes_of_the_public_keys_sha256():
    private = load_private_key_pem(
        b"-----BEGIN PRIVATE KEY-----\n"
        b"MC4CAQAwBQYDK2VwBCIEIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f\n"
        b"-----END PRIVATE KEY-----\n",
        ed25519.Ed25519PrivateKey,
        source="test",
    )
    # Computed independently: `openssl pkey -pubout` of this key, then `sha256sum` of its 32 bytes.
    assert raw_public_bytes(private.public_key()).hex() == (
        "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
    )
    assert key_id(private.public_key()) == "56475aa75463474c"
