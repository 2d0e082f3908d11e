"""moto's AWS server (S3, SQS, Route53, ...) in a thread on a free loopback port.

    with fake_aws_env(), MotoServer() as moto:
        bucket = moto.create_bucket()
        client = moto.client("s3")      # or any boto3 client given moto.endpoint_url

`fake_aws_env()` gives the process throw-away credentials and a region, and hides the user's AWS
config files, so boto3 never looks further (no profile, no instance metadata).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lab.ports import LOOPBACK

REGION = "us-east-1"
_FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
_HIDDEN_ENV = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")
_bucket_numbers = itertools.count(1)


@contextmanager
def fake_aws_env() -> Iterator[None]:
    """Sets fake AWS credentials and region in os.environ; restores the old values on exit."""
    names = list(_FAKE_ENV) + list(_HIDDEN_ENV)
    saved = {name: os.environ.get(name) for name in names}
    for name in _HIDDEN_ENV:
        os.environ.pop(name, None)
    os.environ.update(_FAKE_ENV)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class MotoServer:
    """moto's server on 127.0.0.1 and a port the kernel picks; stopped on exit."""

    def __init__(self) -> None:
        self._server: Any = None
        self.host = LOOPBACK
        self.port = 0

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        from moto.server import ThreadedMotoServer  # moto is a Python >= 3.11 test dependency

        server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
        server.start()
        self._server = server
        self.host, self.port = server.get_host_and_port()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def client(self, service: str = "s3", **kwargs: Any) -> Any:
        """A boto3 client of this server, with the fake credentials passed explicitly."""
        import boto3

        options: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region_name": REGION,
            "aws_access_key_id": _FAKE_ENV["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": _FAKE_ENV["AWS_SECRET_ACCESS_KEY"],
        }
        options.update(kwargs)
        return boto3.session.Session().client(service, **options)

    def create_bucket(self, name: str | None = None) -> str:
        """Creates a bucket (a fresh name unless given) and returns its name."""
        bucket = name or f"test-bucket-{os.getpid()}-{next(_bucket_numbers)}"
        self.client("s3").create_bucket(Bucket=bucket)
        return bucket

    def reset(self) -> None:
        """Forgets every resource of every service (moto's reset API)."""
        import requests

        response = requests.post(f"{self.endpoint_url}/moto-api/reset", timeout=10)
        response.raise_for_status()
