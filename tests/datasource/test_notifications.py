"""Which S3 event notifications announce a file the list task would list (the SQS watcher's filter)."""

from __future__ import annotations

import json
from urllib.parse import quote_plus

import pytest

from lightly_airflow.datasource.notifications import new_file_keys, notified_objects
from lightly_airflow.triggers.s3_notifications import CLASSPATH, S3NotificationsTrigger

DS = "s3://cams/fleet/images"


def s3_body(*records: tuple[str, str, str]) -> str:
    """A body as S3 sends it to SQS: keys URL-encoded, a space as '+'."""
    return json.dumps({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "eu-central-1", "eventName": event,
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
               "object": {"key": quote_plus(key, safe="/"), "size": 1234, "eTag": "0123abcd"}}}
        for event, bucket, key in records]})


def test_created_and_restored_files_under_the_datasource_are_kept_with_their_decoded_keys() -> None:
    body = s3_body(("ObjectCreated:Put", "cams", "fleet/images/day 1/ä+b.JPG"),
                   ("ObjectCreated:CompleteMultipartUpload", "cams", "fleet/images/clip.mp4"),
                   ("ObjectRestore:Completed", "cams", "fleet/images/old/frame.png"),
                   ("ObjectRemoved:Delete", "cams", "fleet/images/gone.png"),
                   ("ObjectRestore:Post", "cams", "fleet/images/restoring.png"),
                   ("ObjectCreated:Put", "other-bucket", "fleet/images/x.png"),
                   ("ObjectCreated:Put", "cams", "fleet/images-old/x.png"),
                   ("ObjectCreated:Put", "cams", "fleet/images/.lightly/frames/clip-001-mp4.png"),
                   ("ObjectCreated:Put", "cams", "fleet/images/.git/objects/x.png"),
                   ("ObjectCreated:Put", "cams", "fleet/images/a/._photo.jpg"),
                   ("ObjectCreated:Put", "cams", "fleet/images/notes.txt"),
                   ("ObjectCreated:Put", "cams", "fleet/images/"))
    assert new_file_keys(body, DS) == ["day 1/ä+b.JPG", "clip.mp4", "old/frame.png"]
    assert [o.key for o in notified_objects(body)][0] == "fleet/images/day 1/ä+b.JPG"
    assert new_file_keys(body, DS, extensions=["txt"]) == ["notes.txt"]
    assert new_file_keys(body, "s3://cams") == [
        "fleet/images/day 1/ä+b.JPG", "fleet/images/clip.mp4", "fleet/images/old/frame.png",
        "fleet/images-old/x.png"]


def test_sns_and_eventbridge_deliveries_are_read_and_anything_else_is_nothing() -> None:
    inner = s3_body(("ObjectCreated:Copy", "cams", "fleet/images/a.png"))
    sns = json.dumps({"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:eu-central-1:1:t",
                      "Subject": "Amazon S3 Notification", "Message": inner})
    assert new_file_keys(sns, DS) == ["a.png"]
    bridge = json.dumps({"version": "0", "detail-type": "Object Created", "source": "aws.s3",
                         "detail": {"bucket": {"name": "cams"}, "object": {"key": "fleet/images/b c.png", "size": 9},
                                    "reason": "PutObject"}})
    assert new_file_keys(bridge, DS) == ["b c.png"]  # (EventBridge does not encode keys)
    deleted = json.dumps({"detail-type": "Object Deleted", "detail": {"bucket": {"name": "cams"},
                                                                      "object": {"key": "fleet/images/b.png"}}})
    test_event = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-12-05T10:00:00.000Z",
                             "Bucket": "cams", "RequestId": "R", "HostId": "H"})
    for body in (deleted, test_event, "not json", "", None, json.dumps([1, 2]), json.dumps({"Records": [1, {}]}),
                 json.dumps({"Type": "Notification", "Message": "oops"})):
        assert new_file_keys(body, DS) == [], body


def test_the_trigger_serializes_exactly_its_arguments_and_refuses_what_it_cannot_do() -> None:
    t = S3NotificationsTrigger(datasource_uri=DS, sqs_queue="https://sqs.eu-central-1.amazonaws.com/1/q",
                               aws_conn_id="aws_data", max_messages=10, num_batches=1, wait_time_seconds=20,
                               waiter_delay=120)
    classpath, kwargs = t.serialize()
    assert classpath == CLASSPATH
    assert kwargs == {"datasource_uri": DS, "sqs_queue": "https://sqs.eu-central-1.amazonaws.com/1/q",
                      "aws_conn_id": "aws_data", "max_messages": 10, "num_batches": 1, "wait_time_seconds": 20,
                      "visibility_timeout": None, "delete_message_on_reception": True, "waiter_delay": 120,
                      "region_name": None, "verify": None, "botocore_config": None, "query": None,
                      "worker_config_uri": None, "worker_config_variable": "LIGHTLY_WORKER_CONFIG"}
    again = S3NotificationsTrigger(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    with pytest.raises(ValueError, match="message_filtering is not taken"):
        S3NotificationsTrigger(datasource_uri=DS, sqs_queue="q", message_filtering="jsonpath")
    with pytest.raises(ValueError, match="is not an s3:// URI"):
        S3NotificationsTrigger(datasource_uri="gs://b/images", sqs_queue="q")
    # S3 however spelt, and the runs' query of the same datasource spelt otherwise (both were refused)
    query = {"datasource_uri": "s3://b/images/"}
    assert S3NotificationsTrigger(datasource_uri="S3://b/images", sqs_queue="q", query=query).datasource_uri == \
        "S3://b/images"
    S3NotificationsTrigger(datasource_uri="s3a://b/images", sqs_queue="q")
    with pytest.raises(ValueError, match="is not datasource_uri"):
        S3NotificationsTrigger(datasource_uri="s3://b/other", sqs_queue="q", query=query)


def test_a_notifications_event_time_and_size_are_read_for_each_kept_key() -> None:
    """What the SQS watcher's expiration check takes as each notified file's creation time and size (S3, through
    SNS, EventBridge); ``None`` where the message does not say it or says it twice differently."""
    import datetime as dt

    from lightly_airflow.datasource.notifications import notified_facts

    def record(key: str, time: str | None, size: object) -> dict[str, object]:
        return {"eventName": "ObjectCreated:Put", "eventTime": time,
                "s3": {"bucket": {"name": "cams"}, "object": {"key": quote_plus(key, safe="/"), "size": size}}}

    body = json.dumps({"Records": [record("fleet/images/a b.png", "2026-12-01T10:00:00.250Z", 1234),
                                   record("fleet/images/c.png", "not a time", "12"),
                                   record("fleet/images/d.png", "2026-12-01T10:00:00Z", 5),
                                   record("fleet/images/d.png", "2026-12-02T10:00:00Z", 6),
                                   record("other/e.png", "2026-12-01T10:00:00Z", 7)]})
    keys = new_file_keys(body, DS)
    assert keys == ["a b.png", "c.png", "d.png", "d.png"]
    created, sizes = notified_facts(body, DS, keys)
    day = dt.datetime(2026, 12, 2, 10, tzinfo=dt.UTC)
    assert created == [dt.datetime(2026, 12, 1, 10, 0, 0, 250000, tzinfo=dt.UTC), None, day, day]
    assert sizes == [1234, 12, None, None]
    sns = json.dumps({"Type": "Notification", "Message": json.dumps({"Records": [record("fleet/images/x.png",
                                                                                        "2026-12-01T10:00:00Z", 9)]})})
    assert notified_facts(sns, DS, ["x.png"]) == ([dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC)], [9])
    bridge = json.dumps({"detail-type": "Object Created", "time": "2026-12-01T10:00:00Z",
                         "detail": {"bucket": {"name": "cams"}, "object": {"key": "fleet/images/b c.png", "size": 3}}})
    assert notified_facts(bridge, DS, ["b c.png"]) == ([dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC)], [3])
    assert notified_facts("not json", DS, ["x.png"]) == ([None], [None])
