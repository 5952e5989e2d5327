"""Events a component records: repeats fold into one Event whose count grows, even while its create is in flight."""

from __future__ import annotations

from podlife.client.base import EVENTS
from podlife.client.events import EventRecorder

from .in_process import InProcessApi

CLAIM = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
         "metadata": {"name": "data", "namespace": "default", "uid": "uid-1", "resourceVersion": "1"}}


async def events_of(api: InProcessApi) -> list[dict]:
    return (await api.client.list(EVENTS, namespace="default"))["items"]


async def test_repeats_recorded_at_once_make_one_event_with_their_count(local_api: InProcessApi) -> None:
    recorder = EventRecorder(local_api.client, "persistentvolume-controller")
    for _ in range(3):  # no await in between: the first create has not returned when the repeats come
        recorder.event(CLAIM, "Normal", "ExternalProvisioning", "waiting for a volume")
    recorder.event(CLAIM, "Normal", "Provisioning", "provisioning")
    await recorder.flush()
    by_reason = {e["reason"]: e for e in await events_of(local_api)}
    assert sorted(by_reason) == ["ExternalProvisioning", "Provisioning"]
    assert by_reason["ExternalProvisioning"]["count"] == 3
    assert by_reason["Provisioning"]["count"] == 1
    assert by_reason["ExternalProvisioning"]["involvedObject"]["uid"] == "uid-1"


async def test_a_repeat_after_the_first_write_counts_on(local_api: InProcessApi) -> None:
    recorder = EventRecorder(local_api.client, "persistentvolume-controller")
    recorder.event(CLAIM, "Warning", "FailedBinding", "no persistent volumes available")
    await recorder.flush()
    recorder.event(CLAIM, "Warning", "FailedBinding", "no persistent volumes available")
    await recorder.flush()
    [event] = await events_of(local_api)
    assert event["count"] == 2 and event["type"] == "Warning"
