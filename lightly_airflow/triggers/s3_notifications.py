"""``S3NotificationsTrigger``: Airflow's ``SqsSensorTrigger`` that fires only for notifications of new files.

The example DAG's watcher with ``LIGHTLY_NEW_FILES_QUEUE`` reads a queue that receives the datasource bucket's
S3 event notifications. Airflow's trigger fired for any message, so S3's ``s3:TestEvent``, a removal, an object
outside the datasource's prefix (the ``.lightly/frames/`` the runs write beside the images, when the bucket
notifies for the whole bucket) or a ``.txt`` each started a run that skipped; and its own filters leave the
messages they reject in the queue, where they come back after the visibility timeout, forever. This trigger
reads as Airflow's does, deletes every message it read (with ``delete_message_on_reception``, as Airflow's
does with the ones it keeps) and fires with the messages that announce a file the list task would list
(:func:`~lightly_airflow.datasource.notifications.new_file_keys`); the others are counted in its log. A batch
of only such messages is read past at once (up to :data:`SKIP_POLLS` receives), not after ``waiter_delay``.
What a run processes is still decided by its list task.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.triggers.sqs import SqsSensorTrigger

from lightly_airflow.datasource.notifications import new_file_keys

CLASSPATH = "lightly_airflow.triggers.s3_notifications.S3NotificationsTrigger"

#: receives in a row that may return only messages announcing nothing to process before a poke gives up
SKIP_POLLS = 50


class S3NotificationsTrigger(SqsSensorTrigger):
    """Fires with the SQS messages that announce new files under ``datasource_uri`` (an ``s3://`` URI).

    :param datasource_uri: the datasource the runs list (``s3://bucket/prefix``).
    Every other argument is :class:`~airflow.providers.amazon.aws.triggers.sqs.SqsSensorTrigger`'s; its message
    filters (``message_filtering``, …) are not taken: the datasource decides.

    The event's payload is Airflow's: ``status`` ``"success"``, ``message_batch`` (the kept messages).
    """

    def __init__(self, *, datasource_uri: str, **kwargs: Any) -> None:
        for name in ("message_filtering", "message_filtering_match_values", "message_filtering_config"):
            if kwargs.get(name) is not None:
                raise ValueError(f"S3NotificationsTrigger filters by its datasource_uri; {name} is not taken.")
        if not str(datasource_uri).startswith("s3://"):
            raise ValueError(f"S3NotificationsTrigger reads S3 event notifications; datasource_uri "
                             f"{datasource_uri!r} is not an s3:// URI.")
        super().__init__(**kwargs)
        self.datasource_uri = str(datasource_uri)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        for name in ("message_filtering", "message_filtering_match_values", "message_filtering_config"):
            kwargs.pop(name)
        return CLASSPATH, {"datasource_uri": self.datasource_uri, **kwargs}

    async def poke(self, client: Any) -> list[Any]:
        batch: list[Any] = []
        batches = skipped_polls = 0
        while batches < self.num_batches:
            response = await self.poll_sqs(client=client)
            messages = list(response.get("Messages", []) if isinstance(response, dict) else [])
            if not messages:
                break
            keep = [m for m in messages if new_file_keys(m.get("Body"), self.datasource_uri)]
            if self.delete_message_on_reception:  # (every message read: a kept-back one would return forever)
                entries = [{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]} for m in messages]
                response = await client.delete_message_batch(QueueUrl=self.sqs_queue, Entries=entries)
                if response.get("Failed"):
                    self.log.warning("Could not delete %d of %d SQS messages from %s: %s", len(response["Failed"]),
                                     len(entries), self.sqs_queue, response["Failed"][:3])
            if len(keep) < len(messages):
                self.log.info("%d of %d SQS messages announce no file the runs list under %s (S3's test event, a "
                              "removal, another prefix or bucket, a .lightly/ or hidden folder, another "
                              "extension): no run for them.", len(messages) - len(keep), len(messages),
                              self.datasource_uri)
            batch.extend(keep)
            if keep:
                batches += 1
            else:
                skipped_polls += 1
                if skipped_polls >= SKIP_POLLS:
                    break
        return batch
