"""DynamoDB Streams on a local stack: what Lambda's event source mapping does in AWS, in a loop.

In AWS the stream handlers of app.py (``token_alerts``, ``account_alerts``) get their records
from Lambda; locally ``make run``'s front starts ``python -m devtools.streams``, which reads
DynamoDB Local's streams (DescribeStream -> GetShardIterator -> GetRecords) and hands each batch
to the same service, ``chalicelib.services.alerts.handle_records``. Tests call
``StreamPoller.poll()`` — one deterministic step that drains every shard — instead of waiting
on the process.

Like the event source mapping, a shard is read in order, from the oldest record still in the
stream (TRIM_HORIZON); a batch is handled before the next is read. The same process runs the
``retry_alerts`` schedule's job every ``RETRY_SECONDS``, as its Lambda does in AWS.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from chalicelib.core import observe
from chalicelib.core.settings import Settings, get_settings

POLL_SECONDS = 0.5
RETRY_SECONDS = 300.0  # app.py's retry_alerts: Rate(5, unit=Rate.MINUTES)
Handler = Callable[[str, list[tuple[str, Any, Any]]], Any]


def _default_handler(kind: str, records: list[tuple[str, Any, Any]]) -> Any:
    from chalicelib.services import alerts

    return alerts.handle_records(kind, records)  # type: ignore[arg-type]


class StreamPoller:
    """Reads the tokens and accounts streams of one stack; ``poll()`` drains them once."""

    def __init__(self, settings: Settings | None = None, handler: Handler = _default_handler):
        import boto3

        self.settings = settings or get_settings()
        endpoint = self.settings.dynamodb_endpoint
        region = self.settings.region
        self.dynamodb: Any = boto3.client("dynamodb", endpoint_url=endpoint, region_name=region)
        self.streams: Any = boto3.client(
            "dynamodbstreams", endpoint_url=endpoint, region_name=region
        )
        self.handler = handler
        # stream ARN -> shard id -> next iterator (None: the shard is closed and read to its end)
        self.iterators: dict[str, dict[str, str | None]] = {}

    def tables(self) -> dict[str, str]:
        return {
            "token": self.settings.table_name("tokens"),
            "account": self.settings.table_name("accounts"),
        }

    def poll(self) -> int:
        """Hand every record written so far to the handler, in order per shard; how many."""
        handled = 0
        for kind, table in self.tables().items():
            arn = self.dynamodb.describe_table(TableName=table)["Table"].get("LatestStreamArn")
            if arn:
                handled += self._drain(kind, arn)
        return handled

    def _drain(self, kind: str, arn: str) -> int:
        shards = self.iterators.setdefault(arn, {})
        description = self.streams.describe_stream(StreamArn=arn)["StreamDescription"]
        for shard in description.get("Shards", []):
            if shard["ShardId"] not in shards:
                shards[shard["ShardId"]] = self.streams.get_shard_iterator(
                    StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
        handled = 0
        for shard_id, iterator in list(shards.items()):
            while iterator is not None:
                answer = self.streams.get_records(ShardIterator=iterator, Limit=100)
                records = answer.get("Records", [])
                if records:
                    self.handler(kind, [_as_record(r) for r in records])
                    handled += len(records)
                iterator = answer.get("NextShardIterator")
                shards[shard_id] = iterator
                if not records:
                    break  # caught up; the iterator stays for the next poll
        return handled

    def run(self, stop: threading.Event, interval: float = POLL_SECONDS) -> None:
        while not stop.is_set():
            try:
                self.poll()
            except Exception as exc:  # a local loop: log and carry on, as Lambda would retry
                observe.log("stream_poll_failed", level="WARNING", error=exc)
            stop.wait(interval)


def _as_record(raw: dict[str, Any]) -> tuple[str, Any, Any]:
    change = raw.get("dynamodb", {})
    return str(raw.get("eventName", "")), change.get("OldImage"), change.get("NewImage")


def main() -> int:
    """Poll until stopped (SIGTERM or SIGINT): ``devtools.front`` runs this as its child."""
    from chalicelib.store import configure_store

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    configure_store(get_settings())  # the handler's tables: the stack's, on DynamoDB Local
    threading.Thread(target=_retry_stranded, args=(stop,), name="retry", daemon=True).start()
    StreamPoller().run(stop)
    return 0


def _retry_stranded(stop: threading.Event, interval: float = RETRY_SECONDS) -> None:
    """The deliveries a handler claimed and died before sending (``alerts.retry_pending``)."""
    from chalicelib.services import alerts

    while not stop.wait(interval):
        try:
            alerts.retry_pending()
        except Exception as exc:  # a local loop: log and carry on, as the next run would
            observe.log("alert_retry_failed", level="WARNING", error=exc)


if __name__ == "__main__":
    sys.exit(main())
