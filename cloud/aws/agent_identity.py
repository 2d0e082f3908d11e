"""An invited agent's own AWS identity: an IAM user whose only policy reads its prefix and writes
its status report, its enrollment and its CSR statements (agent custody, `csr/<site>.json`)
(`certdrop agent invite` in AWS mode), deleted by `certdrop agent remove`.

The policy is `agent_policy`, the same document as infra/agent-policy.json (a test keeps them
equal) with the store's prefix in the resources. The access key goes into the invitation line
and from there into the NAS's `source-credentials` file (0600); it is never printed elsewhere.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from cloud.config import StorageConfig
from cloud.custody.agent_side import CSR_FOLDER
from cloud.errors import StoreError

POLICY_NAME = "certdrop-agent"
_TAG = {"Key": "certdrop", "Value": "agent"}


def user_name(agent_id: str) -> str:
    return f"certdrop-agent-{agent_id}"


def agent_policy(bucket: str, prefix: str, agent_id: str) -> dict[str, Any]:
    """Read `<prefix>agents/<agent>/`, write its status.json, enrollment.json and csr/*; nothing
    else."""
    own = f"{prefix}agents/{agent_id}/"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadOwnBundles",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/{own}*",
            },
            {
                "Sid": "ListOwnPrefix",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": f"{own}*"}},
            },
            {
                "Sid": "WriteOwnStatusEnrollmentAndCsrs",
                "Effect": "Allow",
                "Action": "s3:PutObject",
                "Resource": [
                    f"arn:aws:s3:::{bucket}/{own}status.json",
                    f"arn:aws:s3:::{bucket}/{own}enrollment.json",
                    f"arn:aws:s3:::{bucket}/{own}{CSR_FOLDER}*",
                ],
            },
        ],
    }


def create_agent_identity(agent_id: str, storage: StorageConfig) -> dict[str, str]:
    """Creates (or, when it exists, gives a new access key to) the agent's IAM user; returns the
    invitation's credential fields. Raises StoreError when IAM refuses."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = _bucket_and_prefix(storage.store_url)
    iam = _iam(storage)
    user = user_name(agent_id)
    try:
        try:
            iam.create_user(UserName=user, Tags=[_TAG])
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "EntityAlreadyExists":
                raise
            _delete_access_keys(iam, user)  # a new invitation: the old line stops working
        iam.put_user_policy(
            UserName=user,
            PolicyName=POLICY_NAME,
            PolicyDocument=json.dumps(agent_policy(bucket, prefix, agent_id)),
        )
        key = iam.create_access_key(UserName=user)["AccessKey"]
    except (ClientError, BotoCoreError) as exc:
        raise StoreError(f"iam:user/{user}", f"IAM: {exc}") from exc
    return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}


def delete_agent_identity(agent_id: str, storage: StorageConfig) -> bool:
    """Deletes the agent's IAM user, its keys and policy; False when there was none."""
    from botocore.exceptions import BotoCoreError, ClientError

    iam = _iam(storage)
    user = user_name(agent_id)
    try:
        _delete_access_keys(iam, user)
        iam.delete_user_policy(UserName=user, PolicyName=POLICY_NAME)
        iam.delete_user(UserName=user)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "NoSuchEntity":
            return False
        raise StoreError(f"iam:user/{user}", f"IAM: {exc}") from exc
    except BotoCoreError as exc:
        raise StoreError(f"iam:user/{user}", f"IAM: {exc}") from exc
    return True


def _bucket_and_prefix(url: str) -> tuple[str, str]:
    """("bucket", "prefix/") of s3://bucket/prefix, as S3Store reads it."""
    parts = urlsplit(url)
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


def _delete_access_keys(iam: Any, user: str) -> None:
    for key in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]:
        iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])


def _iam(storage: StorageConfig) -> Any:
    import boto3

    # IAM is global; a test's moto endpoint comes from AWS_ENDPOINT_URL like every client's.
    return boto3.client("iam", region_name=storage.region)
