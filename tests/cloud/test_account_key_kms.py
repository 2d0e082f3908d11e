"""The ACME account key in AWS KMS, against Pebble 2.10.1 and moto's KMS (which signs with
ECC_NIST_P256 keys): registration with External Account Binding, issuance, key rollover from a
file key to KMS and back (RFC 8555 keyChange), a dns-persist-01 site issuing after a rollover,
interrupted rollovers, and `certdrop doctor`'s account key check.

moto's server runs in this process, and keeps each KMS key as a private key object, as KMS does
inside its HSMs: the keys are created before the EC private key constructors are refused.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import josepy as jose
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cloud.acme.account_key import FILE, AccountKeyRef, parse_ref
from cloud.acme.certificate_keys import KeyType
from cloud.acme.client import AcmeClient
from cloud.acme.key_change import roll_over
from cloud.cli.exit_codes import EXIT_CONFIG, EXIT_DOCTOR, EXIT_OK, exit_code
from cloud.cli.main import main
from cloud.config import Config, load
from cloud.dns01.persist.record import format_value
from cloud.doctor import account_key as account_key_check
from cloud.doctor.report import Context
from cloud.errors import AccountKeyError, AccountKeyMismatch, AcmeError
from cloud.pipeline import parts
from cloud.pipeline.dry_run import staging_ca
from lab.issuer_config import bind_config
from lab.moto import MotoServer, fake_aws_env
from lab.pebble import Pebble
from tests.cloud.issuing import assert_issued, order_certificate
from tests.cloud.test_persist_issuance import ISSUER, Persist

NAMES = ("example.test", "*.example.test")
RSA_SITE = 'domain = "example.test"\nkey_type = "rsa-2048"'


class Kms:
    """moto's KMS: keys to make, and what KMS itself says their public half is."""

    def __init__(self, moto: MotoServer):
        self.moto = moto
        self.client = moto.client("kms")

    def new_key(self, spec: str = "ECC_NIST_P256") -> str:
        metadata = self.client.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]
        return metadata["Arn"]

    def public_jwk(self, arn: str) -> dict[str, str]:
        der = self.client.get_public_key(KeyId=arn)["PublicKey"]
        return jose.JWKEC(key=serialization.load_der_public_key(der)).to_json()


@pytest.fixture(scope="module")
def kms() -> Iterator[Kms]:
    with fake_aws_env(), MotoServer() as moto, pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", moto.endpoint_url)
        yield Kms(moto)


_EC_PRIVATE_KEY_MAKERS = {
    ec.generate_private_key: "ec.generate_private_key",
    ec.derive_private_key: "ec.derive_private_key",
    ec.EllipticCurvePrivateNumbers: "ec.EllipticCurvePrivateNumbers",
}
_PRIVATE_KEY_LOADERS = {
    serialization.load_pem_private_key: "load_pem_private_key",
    serialization.load_der_private_key: "load_der_private_key",
    serialization.load_ssh_private_key: "load_ssh_private_key",
}


@pytest.fixture
def no_ec_private_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """From here on, every way this process has of coming to hold an EC private key fails the
    test: generating or deriving one and making one from its numbers raise, and a loaded private
    key that is EC is refused. Replaced wherever a module holds them, under any name."""
    made: list[str] = []

    def refusing(name: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            made.append(name)
            raise AssertionError(f"an EC private key was made: {name}")

        return refused

    def checking(name: str, load: Callable[..., Any]) -> Callable[..., Any]:
        def loaded(*args: Any, **kwargs: Any) -> Any:
            key = load(*args, **kwargs)
            if isinstance(key, ec.EllipticCurvePrivateKey):
                made.append(name)
                raise AssertionError(f"an EC private key was loaded: {name}")
            return key

        return loaded

    by_identity = {id(f): refusing(name) for f, name in _EC_PRIVATE_KEY_MAKERS.items()}
    by_identity |= {id(f): checking(name, f) for f, name in _PRIVATE_KEY_LOADERS.items()}
    for module in list(sys.modules.values()):
        for attribute, value in list(getattr(module, "__dict__", {}).items()):
            replacement = by_identity.get(id(value))
            if replacement is not None:
                monkeypatch.setattr(module, attribute, replacement)
    yield made
    assert made == [], f"EC private keys were made: {made}"


def _account_at_pebble(config: Config, *, staging: bool = False) -> tuple[str, dict[str, str]]:
    """The account's URL and the JWK Pebble holds for it (POST-as-GET on the account)."""
    ca = staging_ca(config) if staging else config.ca
    acme = AcmeClient(ca, parts.keystore(config), staging=staging)
    acme.connect(any_key=True)
    jwk = acme.fetch_account()["key"]
    return acme.account_uri, {name: jwk[name] for name in ("kty", "crv", "x", "y")}


def _record(config: Config) -> dict[str, Any]:
    acme = AcmeClient(config.ca, parts.keystore(config))
    stored = parts.keystore(config).load(acme.record_name)
    assert stored is not None
    return json.loads(stored)


def _file_jwk(record: dict[str, Any]) -> dict[str, str]:
    key = serialization.load_pem_private_key(record["key"].encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return jose.JWKEC(key=key.public_key()).to_json()


def _rollover(config: Config, to: str, capsys: pytest.CaptureFixture[str]) -> Config:
    """`certdrop account rollover --to` in process; the configuration as it then is."""
    code = main(["-c", str(config.source), "account", "rollover", "--to", to])
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    assert "stay valid" in out
    return load(config.source)


# --- registration and issuance --------------------------------------------------------------


def test_an_account_registered_with_eab_in_kms_issues_without_an_ec_private_key_in_the_process(
    tmp_path, pebble_eab, bind_auth, kms, monkeypatch, request
):
    arn = kms.new_key()  # before the guard: moto keeps the key as a private key object
    monkeypatch.setenv("TEST_EAB_HMAC", pebble_eab.eab_hmac_key)
    config = bind_config(
        tmp_path, pebble_eab, bind_auth, site=RSA_SITE,
        ca_extra=f'eab_kid = "{pebble_eab.eab_kid}"\neab_hmac_key = "env:TEST_EAB_HMAC"\n'
        f'account_key = "aws-kms:{arn}"',
    )  # fmt: skip
    request.getfixturevalue("no_ec_private_key")

    cert = order_certificate(config, "example")

    assert_issued(cert, pebble_eab, NAMES, KeyType.RSA_2048)
    _, jwk = _account_at_pebble(config)
    assert jwk == kms.public_jwk(arn)
    record = _record(config)
    assert record["kms_key"] == arn
    assert "key" not in record and "next" not in record


def test_a_kms_key_of_another_spec_is_refused_before_the_ca_is_asked(
    tmp_path, pebble, bind_auth, kms
):
    arn = kms.new_key("ECC_NIST_P384")
    config = bind_config(tmp_path, pebble, bind_auth, ca_extra=f'account_key = "aws-kms:{arn}"')
    acme = AcmeClient(config.ca, parts.keystore(config))

    with pytest.raises(AccountKeyError) as caught:
        acme.connect()

    assert caught.value.code == "account_key.unusable"
    assert "ECC_NIST_P384, not ECC_NIST_P256" in str(caught.value)
    assert acme._net is None  # not even the directory was fetched
    assert parts.keystore(config).load(acme.record_name) is None


def test_an_account_whose_key_is_not_the_configured_one_is_refused_naming_the_rollover(
    tmp_path, pebble, bind_auth, kms
):
    config = bind_config(tmp_path, pebble, bind_auth)
    AcmeClient(config.ca, parts.keystore(config)).connect()  # registered with a file key
    arn = kms.new_key()
    elsewhere = replace(config.ca, account_key=AccountKeyRef(arn))

    with pytest.raises(AccountKeyMismatch) as caught:
        AcmeClient(elsewhere, parts.keystore(config)).connect()

    assert caught.value.code == "account_key.mismatch"
    assert caught.value.account_has == "file"
    assert f"certdrop account rollover --to aws-kms:{arn}" in str(caught.value)
    assert exit_code(caught.value) == EXIT_CONFIG


# --- rollover ----------------------------------------------------------------------------------


def test_a_file_key_account_rolls_over_to_kms_and_back_keeping_its_url(
    tmp_path, pebble, bind_auth, kms, capsys
):
    config = bind_config(tmp_path, pebble, bind_auth)
    order_certificate(config, "example")
    uri, first = _account_at_pebble(config)
    arn = kms.new_key()

    config = _rollover(config, f"aws-kms:{arn}", capsys)

    assert config.ca.account_key == AccountKeyRef(arn)
    assert f'account_key = "aws-kms:{arn}"' in Path(config.source).read_text()
    assert _account_at_pebble(config) == (uri, kms.public_jwk(arn))
    assert _record(config) == {"directory": pebble.directory_url, "uri": uri, "kms_key": arn}
    assert_issued(order_certificate(config, "example"), pebble, NAMES, KeyType.EC_P256)

    config = _rollover(config, "file", capsys)

    assert config.ca.account_key == FILE
    assert "account_key" not in Path(config.source).read_text()
    record = _record(config)
    assert _account_at_pebble(config) == (uri, _file_jwk(record))
    assert _file_jwk(record) != first  # a new key, not the one before KMS
    assert_issued(order_certificate(config, "example"), pebble, NAMES, KeyType.EC_P256)


def test_a_rollover_also_moves_the_dry_runs_account_at_the_staging_ca(
    tmp_path, pebble, bind_auth, bind_resolver, kms, capsys
):
    with Pebble(tmp_path / "staging-pebble", bind_resolver.address) as staging:
        both = tmp_path / "both-cas.pem"
        both.write_text(pebble.ca_bundle.read_text() + staging.ca_bundle.read_text())
        config = bind_config(
            tmp_path, pebble, bind_auth, ca_extra=f'staging_directory = "{staging.directory_url}"'
        )
        path = Path(config.source)
        path.write_text(path.read_text().replace(str(pebble.ca_bundle), str(both)))
        config = load(path)
        accounts = [_account_at_pebble(config), _account_at_pebble(config, staging=True)]
        arn = kms.new_key()

        config = _rollover(config, f"aws-kms:{arn}", capsys)

        moved = [_account_at_pebble(config), _account_at_pebble(config, staging=True)]
        assert moved == [(uri, kms.public_jwk(arn)) for uri, _ in accounts]


def test_a_dns_persist_01_site_still_issues_after_its_account_moves_into_kms(
    tmp_path, pebble, bind_auth, kms, capsys
):
    persist = Persist(tmp_path, pebble, bind_auth)
    try:
        account = persist.account()
        persist.place(format_value(ISSUER, account, wildcard=True))
        serial = persist.serial()
        arn = kms.new_key()

        config = _rollover(persist.config, f"aws-kms:{arn}", capsys)
        cert = order_certificate(config, "example")

        assert_issued(cert, pebble, persist.names, KeyType.EC_P256)
        assert _account_at_pebble(config) == (account, kms.public_jwk(arn))
        assert persist.serial() == serial  # the owner's record was never touched
    finally:
        persist.remove()


def test_a_rollover_killed_after_the_ca_took_the_new_key_is_finished_by_the_next_connect(
    tmp_path, pebble, bind_auth, kms, monkeypatch
):
    config = bind_config(tmp_path, pebble, bind_auth)
    acme = AcmeClient(config.ca, parts.keystore(config))
    acme.connect()
    uri = acme.account_uri
    arn = kms.new_key()
    saves = []

    def save_then_die(self, record):
        saves.append(record)
        if len(saves) == 2:  # 3. the record holding the new key only
            raise KeyboardInterrupt
        original(self, record)

    original = AcmeClient.save
    monkeypatch.setattr(AcmeClient, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        roll_over(acme, AccountKeyRef(arn))
    monkeypatch.setattr(AcmeClient, "save", original)
    assert _record(config)["next"] == {"kms_key": arn}

    moved = replace(config, ca=replace(config.ca, account_key=AccountKeyRef(arn)))
    after = AcmeClient(moved.ca, parts.keystore(moved))
    after.connect()

    assert after.account_uri == uri
    assert after.record.key.ref == AccountKeyRef(arn) and after.record.next is None
    assert _record(moved) == {"directory": pebble.directory_url, "uri": uri, "kms_key": arn}
    assert _account_at_pebble(moved) == (uri, kms.public_jwk(arn))


def test_a_rollover_killed_before_the_ca_heard_of_it_keeps_the_old_key(
    tmp_path, pebble, bind_auth, kms, monkeypatch
):
    config = bind_config(tmp_path, pebble, bind_auth)
    acme = AcmeClient(config.ca, parts.keystore(config))
    acme.connect()
    before = _record(config)
    original = AcmeClient.post

    def die_at_key_change(self, what, url, message):
        if what == "key change":
            raise KeyboardInterrupt
        return original(self, what, url, message)

    monkeypatch.setattr(AcmeClient, "post", die_at_key_change)
    with pytest.raises(KeyboardInterrupt):
        roll_over(acme, AccountKeyRef(kms.new_key()))
    monkeypatch.setattr(AcmeClient, "post", original)

    after = AcmeClient(config.ca, parts.keystore(config))
    after.connect()

    assert after.record.next is None and after.record.key.ref == FILE
    assert _record(config) == before
    assert _account_at_pebble(config)[1] == _file_jwk(before)


def test_a_rollover_the_ca_refuses_leaves_the_account_as_it_was(tmp_path, pebble, bind_auth, kms):
    arn = kms.new_key()
    (tmp_path / "other").mkdir()
    other = bind_config(
        tmp_path / "other", pebble, bind_auth, ca_extra=f'account_key = "aws-kms:{arn}"'
    )
    AcmeClient(other.ca, parts.keystore(other)).connect()  # another account holds the KMS key
    config = bind_config(tmp_path, pebble, bind_auth)
    acme = AcmeClient(config.ca, parts.keystore(config))
    acme.connect()
    before = _record(config)

    with pytest.raises(AcmeError) as caught:
        roll_over(acme, AccountKeyRef(arn))

    assert caught.value.problem == "keyChangeNotApplied"  # Pebble answers 200, keeps the key
    assert _record(config) == before
    assert _account_at_pebble(config)[1] == _file_jwk(before)


def test_rolling_over_to_a_key_the_account_already_has_is_refused(tmp_path, pebble, bind_auth, kms):
    arn = kms.new_key()
    config = bind_config(tmp_path, pebble, bind_auth, ca_extra=f'account_key = "aws-kms:{arn}"')
    acme = AcmeClient(config.ca, parts.keystore(config))
    acme.connect()

    with pytest.raises(AccountKeyError) as caught:
        roll_over(acme, parse_ref(f"aws-kms:{arn}"))

    assert "already signs with this key" in str(caught.value)


def test_rollover_of_an_account_never_registered_says_the_first_run_registers_it(
    tmp_path, pebble, bind_auth, kms, capsys
):
    config = bind_config(tmp_path, pebble, bind_auth)
    arn = kms.new_key()

    code = main(["-c", str(config.source), "account", "rollover", "--to", f"aws-kms:{arn}"])

    assert code != EXIT_OK
    assert "the first run registers the account with it" in capsys.readouterr().err


# --- certdrop doctor ---------------------------------------------------------------------------


def _doctor(config: Config):
    def no_ca() -> AcmeClient:
        raise AssertionError("the account key check asks the CA nothing")

    def no_store():
        raise AssertionError("the account key check reads no object store")

    return account_key_check.check(Context(config, datetime.now(UTC), no_ca, no_store))


def test_doctor_finds_the_kms_key_signing_and_the_account_using_it(
    tmp_path, pebble, bind_auth, kms
):
    arn = kms.new_key()
    config = bind_config(tmp_path, pebble, bind_auth, ca_extra=f'account_key = "aws-kms:{arn}"')
    AcmeClient(config.ca, parts.keystore(config)).connect()

    report = _doctor(config)

    assert report.ok, report.render()
    texts = {f.subject: f.text for f in report.findings}
    assert texts["kms:GetPublicKey"] == "ECC_NIST_P256, SIGN_VERIFY, ECDSA_SHA_256"
    assert texts["kms:Sign"] == "a test signature verifies with the key's public half"
    assert "signs with this key" in texts[pebble.directory_url]


def test_doctor_fails_a_kms_key_of_another_spec_and_one_that_does_not_exist(
    tmp_path, pebble, bind_auth, kms
):
    p384 = kms.new_key("ECC_NIST_P384")
    missing = p384.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    for arn, expected in ((p384, "ECC_NIST_P384, not ECC_NIST_P256"), (missing, "NotFound")):
        config = bind_config(tmp_path, pebble, bind_auth, ca_extra=f'account_key = "aws-kms:{arn}"')

        report = _doctor(config)

        assert not report.ok
        (failed,) = [f for f in report.findings if not f.ok]
        assert failed.subject == "kms:GetPublicKey" and expected in failed.text


def test_doctor_fails_a_key_it_may_read_but_not_sign_with(
    tmp_path, pebble, bind_auth, kms, monkeypatch
):
    arn = kms.new_key()
    config = bind_config(tmp_path, pebble, bind_auth, ca_extra=f'account_key = "aws-kms:{arn}"')
    iam = kms.moto.client("iam")
    iam.create_user(UserName="operator-without-sign")
    # moto checks KMS actions but not which key: the resource is "*" here, the key ARN on AWS.
    policy = {"Effect": "Allow", "Action": "kms:GetPublicKey", "Resource": "*"}
    document = json.dumps({"Version": "2012-10-17", "Statement": [policy]})
    iam.put_user_policy(UserName="operator-without-sign", PolicyName="p", PolicyDocument=document)
    access = iam.create_access_key(UserName="operator-without-sign")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", access["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it holds the credentials it first read
    requests.post(f"{kms.moto.endpoint_url}/moto-api/reset-auth", data=b"0", timeout=10)
    try:
        report = _doctor(config)
    finally:
        requests.post(f"{kms.moto.endpoint_url}/moto-api/reset-auth", data=b"inf", timeout=10)

    failed = {f.subject: f.text for f in report.findings if not f.ok}
    assert list(failed) == ["kms:Sign"], failed
    assert "no permission for kms:Sign on the key" in failed["kms:Sign"]


def test_doctor_fails_an_account_that_signs_with_another_key_than_configured(
    tmp_path, pebble, bind_auth, kms, capsys
):
    config = bind_config(tmp_path, pebble, bind_auth)
    AcmeClient(config.ca, parts.keystore(config)).connect()
    arn = kms.new_key()
    path = Path(config.source)
    path.write_text(path.read_text().replace("[ca]\n", f'[ca]\naccount_key = "aws-kms:{arn}"\n'))

    code = main(["-c", str(config.source), "doctor"])

    out = capsys.readouterr().out
    assert code == EXIT_DOCTOR
    assert f"signs with file, not this key: run `certdrop account rollover --to aws-kms:{arn}`" in (
        out
    )
    assert "doctor: 1 of 3 check(s) failed" in out


def test_in_aws_mode_a_rollover_rewrites_only_its_accounts_entry_in_the_acme_secret(
    tmp_path, pebble, bind_auth, kms
):
    from cloud.aws.environment import SecretsManagerKeyStore
    from cloud.config import KeySecrets

    manager = kms.moto.client("secretsmanager")
    acme_secret = manager.create_secret(Name=f"acme-{tmp_path.name}")["ARN"]
    other = {"acme-account-0123456789abcdef": '{"uri": "https://elsewhere/acct/1"}'}
    manager.put_secret_value(SecretId=acme_secret, SecretString=json.dumps(other))
    keys = SecretsManagerKeyStore(KeySecrets(acme_secret, "unused", "unused"), client=manager)
    config = bind_config(tmp_path, pebble, bind_auth)
    acme = AcmeClient(config.ca, keys)
    acme.connect()
    uri, arn = acme.account_uri, kms.new_key()

    roll_over(acme, AccountKeyRef(arn))

    accounts = json.loads(manager.get_secret_value(SecretId=acme_secret)["SecretString"])
    assert accounts.pop("acme-account-0123456789abcdef") == other["acme-account-0123456789abcdef"]
    assert json.loads(accounts.pop(acme.record_name)) == {
        "directory": pebble.directory_url,
        "uri": uri,
        "kms_key": arn,
    }
    assert accounts == {}
