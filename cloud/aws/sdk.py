"""The AWS SDK the Lambda functions run with: the runtime's own boto3 and botocore.

The Lambda artifact (infra/build_package.py) leaves boto3, botocore and their dependencies out:
the python3.12 runtime provides them, and they were 60 % of the artifact. What certdrop needs of
them arrived in botocore 1.36.0 (January 2025): S3's conditional writes (`IfNoneMatch`, `IfMatch`
on PutObject and DeleteObject) and the `request_checksum_calculation` setting. The runtime's
version depends on the region and the runtime release, so each function checks it once per
container, at its first invocation, and refuses to run with an older one, saying how to build
an artifact that carries its own SDK (`--with-sdk`). Nothing is written before the check.
"""

from __future__ import annotations

from cloud.errors import ConfigError, ConfigProblem

MIN_BOTOCORE = (1, 36, 0)


def require_botocore(version: str | None = None) -> None:
    """ConfigError when botocore (the one importable, or `version`) is older than
    MIN_BOTOCORE."""
    if version is None:
        import botocore

        version = botocore.__version__
    found = _numbers(version)
    if found >= MIN_BOTOCORE:
        return
    needed = ".".join(map(str, MIN_BOTOCORE))
    raise ConfigError(
        [
            ConfigProblem(
                "Lambda runtime",
                f"botocore {version} is older than {needed}, which certdrop needs (S3 conditional"
                " writes, checksum settings)",
                "build the artifact with its own SDK (python infra/build_package.py --with-sdk)"
                " and deploy that, or update the function to the runtime's latest version",
            )
        ]
    )


def _numbers(version: str) -> tuple[int, ...]:
    numbers = []
    for part in version.split(".")[:3]:
        digits = "".join(c for c in part if c.isdigit())
        numbers.append(int(digits) if digits else 0)
    return tuple(numbers)
