"""The tick at fleet scale: 10,000 sites with none due and with 1% due, on moto's S3 and SQS.

Runs the tick's own code path (configuration read from the bucket, one listing of the schedule,
one SQS message per due site) and prints its wall time and the S3 requests it made, by type.

    .venv/bin/python bench/tick_scale.py [--sites 10000]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloud.acme.certificate_keys import KeyType
from cloud.aws import environment
from cloud.config import SiteConfig
from cloud.pipeline.schedule import marker_key
from cloud.pipeline.tick import run_tick
from cloud.store.s3 import S3Store
from lab.moto import MotoServer, fake_aws_env
from lab.sample_fleet import config_text

BUCKET = "certdrop-bench"


def site(i: int) -> SiteConfig:
    domain = f"s{i:05d}.example.test"
    return SiteConfig(f"s{i:05d}", domain, (domain, f"*.{domain}"), KeyType.EC_P256, "dns")


def schedule(store: S3Store, count: int, due_every: int | None, now: datetime) -> None:
    def put(i: int) -> None:
        due = due_every is not None and i % due_every == 0
        check = now - timedelta(hours=1) if due else now + timedelta(days=30)
        store.put(marker_key(site(i), check, now + timedelta(days=60)), b"")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(count)))


def tick_once(moto: MotoServer, queue_url: str, label: str) -> None:
    store = S3Store(BUCKET, endpoint_url=moto.endpoint_url)
    sent: list[int] = []
    queue = environment.SqsQueue(queue_url, client=moto.client("sqs"))
    original = queue.client.send_message_batch

    def counting(**kwargs):
        sent.append(len(kwargs["Entries"]))
        return original(**kwargs)

    queue.client.send_message_batch = counting
    start = time.perf_counter()
    config = environment.load_config(store, "config/certdrop.toml")
    result = run_tick(config, store, queue, datetime.now(UTC))
    wall = time.perf_counter() - start
    requests = ", ".join(f"{op} {n}" for op, n in sorted(store.request_counts.items()))
    print(
        f"  {label:<24} wall {wall:6.2f} s   due {len(result.due):>4}   S3: {requests}   "
        f"SQS SendMessageBatch {len(sent)} ({sum(sent)} messages)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=10_000)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("cloud").setLevel(logging.WARNING)
    print(f"tick over {args.sites} sites (moto S3 + SQS on loopback)")
    with fake_aws_env(), MotoServer() as moto:
        s3 = moto.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(
            Bucket=BUCKET,
            Key="config/certdrop.toml",
            Body=config_text(f"s{i:05d}" for i in range(args.sites)),
        )
        queue_url = moto.client("sqs").create_queue(QueueName="bench")["QueueUrl"]
        writer = S3Store(BUCKET, endpoint_url=moto.endpoint_url)
        now = datetime.now(UTC)
        schedule(writer, args.sites, None, now)
        tick_once(moto, queue_url, "none due")
        for info in list(writer.list("state/schedule/")):
            writer.delete(info.key)
        schedule(writer, args.sites, 100, now)
        tick_once(moto, queue_url, "1% due")


if __name__ == "__main__":
    main()
