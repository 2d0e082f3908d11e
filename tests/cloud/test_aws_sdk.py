"""cloud.aws.sdk: the Lambda functions run with the runtime's botocore only if new enough."""

from __future__ import annotations

import pytest

from cloud.aws import sdk
from cloud.errors import ConfigError


@pytest.mark.parametrize("version", ["1.36.0", "1.36.11", "1.40.2", "2.0.0", "1.44.8"])
def test_a_runtime_botocore_from_1_36_is_accepted(version: str) -> None:
    sdk.require_botocore(version)


@pytest.mark.parametrize("version", ["1.35.99", "1.34.145", "1.29.0rc1"])
def test_an_older_runtime_botocore_is_refused_naming_the_build_that_carries_its_own(
    version: str,
) -> None:
    with pytest.raises(ConfigError) as caught:
        sdk.require_botocore(version)
    (problem,) = caught.value.problems
    assert version in problem.cause and "1.36.0" in problem.cause
    assert "--with-sdk" in problem.fix


def test_the_botocore_installed_here_is_new_enough_for_the_cloud_extra() -> None:
    sdk.require_botocore()
