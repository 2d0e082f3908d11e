"""The Lambda entry points: thin adapters from events to the core, nothing decided here.

tick       EventBridge Scheduler → which sites are due → one SQS message each → alerts
issue      SQS (batch) → run each site (or sign the agents' indexes again) → issuance alerts →
           partial batch failure for what must be retried
dashboard  Lambda function URL (payload 2.0, IAM auth) → the fleet dashboard's Flask app
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cloud import log as log_setup
from cloud.aws import environment, sdk
from cloud.config import AlertsConfig, Config
from cloud.custody import key_requests
from cloud.errors import CertdropError
from cloud.fleet.alerts.evaluate import channels_for, notify_outcomes
from cloud.fleet.status import FleetStatus, collect
from cloud.keys.issuer import load_issuer
from cloud.pipeline.site_run import Outcome, Runner
from cloud.pipeline.tick import run_tick, site_of
from cloud.publish.publisher import Publisher
from cloud.store import Store

log = logging.getLogger(__name__)


_logging_done = False


def _logging() -> None:
    """JSON lines for CloudWatch, set up on the first invocation of a container; and the
    runtime's SDK checked (`cloud.aws.sdk`) before anything else runs."""
    global _logging_done
    if not _logging_done:
        log_setup.setup(json_lines=True)
        sdk.require_botocore()
        _logging_done = True


def tick(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _logging()
    settings = environment.AwsSettings.from_env()
    store = environment.open_bucket(settings)
    config = environment.load_config(store, settings.config_key)
    result = run_tick(config, store, environment.SqsQueue(settings.queue_url), datetime.now(UTC))
    if settings.metric_namespace:
        environment.Metrics(settings.metric_namespace).days_to_expiry(result.days_to_expiry)
    if result.alerts_error is not None:
        # After the queue and the metric: the failed tick raises the TickErrors alarm, which
        # reaches the operator through the stack's topic even when the alert channel is down.
        raise result.alerts_error
    return {"due": [d.site for d in result.due], "alerts": len(result.alerts)}


def issue(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Runs each message's site. A run that failed is recorded with its backoff and rescheduled
    by the tick, so it is not a batch failure; only what could not be run at all is retried by
    SQS (and lands in the dead-letter queue when it keeps failing): a message that raised, and
    a site whose lock another run holds (a timed-out invocation's, say) or could not be taken,
    of which nothing ran and nothing was recorded."""
    _logging()
    settings = environment.AwsSettings.from_env()
    environment.load_dns_credentials(settings, os.environ)
    store = environment.open_bucket(settings)
    config = environment.load_config(store, settings.config_key)
    keys = environment.SecretsManagerKeyStore(settings.key_secrets)
    runner_publisher = Publisher(store, load_issuer(keys))
    runner = Runner(config, store, keys, runner_publisher)
    failures, outcomes = [], []
    for record in event.get("Records", []):
        try:
            site = site_of(record["body"])
            if site is None:
                key_requests.sync(runner_publisher, config, datetime.now(UTC))
                runner_publisher.resign_indexes()
                continue
            outcome = runner.run_site(site)
            log.info("%s: %s", outcome.result, outcome.reason, extra={"site": outcome.site})
            outcomes.append(outcome)
            if outcome.not_run:
                failures.append({"itemIdentifier": record["messageId"]})
        except Exception:
            log.exception("message %s could not be run", record.get("messageId"))
            failures.append({"itemIdentifier": record["messageId"]})
    if config.alerts is not None:
        _issuance_alerts(config, config.alerts, store, outcomes)
    return {"batchItemFailures": failures}


def _issuance_alerts(
    config: Config, alerts: AlertsConfig, store: Store, outcomes: list[Outcome]
) -> None:
    """Right after the runs. Alerts that could not be sent are not a batch failure (the runs
    are done and recorded); the next tick sends them."""
    try:
        notify_outcomes(config, store, datetime.now(UTC), channels_for(alerts), outcomes)
    except CertdropError as exc:
        log.error("alerts not sent: %s", exc)


def dashboard(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _logging()
    return _dashboard_adapter()(event, context)


@functools.cache
def _dashboard_adapter() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Built on the first request of a container; Flask is imported only by this function."""
    import apig_wsgi

    from cloud.fleet.dashboard import make_app
    from cloud.fleet.dashboard.hosts import function_url, only_hosts

    app = only_hosts(make_app(_fleet_from_bucket), function_url)
    return apig_wsgi.make_lambda_handler(app, binary_support=True)


def _fleet_from_bucket() -> FleetStatus:
    settings = environment.AwsSettings.from_env()
    store = environment.open_bucket(settings)
    return collect(environment.load_config(store, settings.config_key), store, datetime.now(UTC))
