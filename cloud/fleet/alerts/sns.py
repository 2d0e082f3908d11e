"""Alerts to an SNS topic: one message per notice, so subscriptions can filter on its attributes.

    Subject            "[certdrop] WARNING expiring: example" (ASCII, under 100 characters)
    Message            the webhook's JSON with this one notice in "alerts"
    MessageAttributes  kind, status, severity, and site or agent (String)

The client comes from boto3's usual chain (the function's role, the operator's profile);
AWS_ENDPOINT_URL is honoured. The region is the topic's own, from its ARN.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cloud.errors import AlertDeliveryFailed
from cloud.fleet.alerts import Notice, payload

log = logging.getLogger(__name__)

MAX_SUBJECT = 99  # SNS: "less than 100 characters"


def subject(notice: Notice) -> str:
    alert = notice.alert
    level = "RESOLVED" if notice.status == "resolved" else alert.severity.upper()
    text = f"[certdrop] {level} {alert.kind.replace('_', ' ')}: {alert.subject}"
    # Printable ASCII only: SNS refuses line breaks, control and non-ASCII characters.
    text = "".join(c if " " <= c <= "~" else "?" for c in text)
    return text if len(text) <= MAX_SUBJECT else text[: MAX_SUBJECT - 3] + "..."


class SnsChannel:
    name = "sns"

    def __init__(self, topic_arn: str, client: Any = None):
        self.topic_arn = topic_arn
        self.target = topic_arn
        self._client = client

    def send(self, notices: Sequence[Notice], sent_at: datetime) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self._client or self._make_client()
        for notice in notices:
            try:
                client.publish(
                    TopicArn=self.topic_arn,
                    Subject=subject(notice),
                    Message=json.dumps(payload([notice], sent_at), sort_keys=True),
                    MessageAttributes=_attributes(notice),
                )
            except (ClientError, BotoCoreError) as exc:
                raise AlertDeliveryFailed(self.name, self.target, str(exc)) from exc
        log.info("%d alert(s) published to %s", len(notices), self.target)

    def _make_client(self) -> Any:
        import boto3

        region = self.topic_arn.split(":")[3]
        self._client = boto3.client("sns", region_name=region)
        return self._client


def _attributes(notice: Notice) -> dict[str, dict[str, str]]:
    alert = notice.alert
    values = {
        "kind": alert.kind,
        "status": notice.status,
        "severity": alert.severity,
        "site": alert.site,
        "agent": alert.agent,
    }
    return {
        name: {"DataType": "String", "StringValue": value}
        for name, value in values.items()
        if value
    }
