"""Pod spec validation as Kubernetes' ``ValidatePodSpec`` words it, through the in-process API.

Every case is a pod a user could write; the API must refuse it with a 422 naming the
field, exactly as Kubernetes does, and store nothing. Valid pods with every handler
and volume form are stored.
"""

from __future__ import annotations

from typing import Any

import pytest

from podlife.api.local_client import LocalClient
from podlife.client.base import PODS
from podlife.machinery.errors import ApiError

from .in_process import InProcessApi

Obj = dict[str, Any]


@pytest.fixture
def client(local_api: InProcessApi) -> LocalClient:
    return local_api.client


def pod(name: str, **spec: Any) -> Obj:
    spec.setdefault("containers", [{"name": "c", "image": "busybox"}])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def container(**fields: Any) -> list[Obj]:
    return [{"name": "c", "image": "busybox", **fields}]


INVALID = [
    ("probe-without-port", dict(containers=container(readinessProbe={"httpGet": {}})),
     "spec.containers[0].readinessProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive"),
    ("probe-without-handler", dict(containers=container(livenessProbe={"periodSeconds": 3})),
     "spec.containers[0].livenessProbe: Required value: must specify a handler type"),
    ("probe-two-handlers", dict(containers=container(livenessProbe={"exec": {"command": ["true"]},
                                                                    "tcpSocket": {"port": 80}})),
     "spec.containers[0].livenessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type"),
    ("probe-named-port", dict(containers=container(startupProbe={"tcpSocket": {"port": "8080"}})),
     'spec.containers[0].startupProbe.tcpSocket.port: Invalid value: "8080": must contain at least one letter (a-z)'),
    ("liveness-success-2", dict(containers=container(livenessProbe={"exec": {"command": ["true"]},
                                                                    "successThreshold": 2})),
     "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"),
    ("exec-without-command", dict(containers=container(readinessProbe={"exec": {}})),
     "spec.containers[0].readinessProbe.exec.command: Required value"),
    ("hook-without-handler", dict(containers=container(lifecycle={"preStop": {}})),
     "spec.containers[0].lifecycle.preStop: Required value: must specify a handler type"),
    ("mount-path-null", dict(containers=container(volumeMounts=[{"name": "v", "mountPath": None}]),
                             volumes=[{"name": "v", "emptyDir": {}}]),
     "spec.containers[0].volumeMounts[0].mountPath: Required value"),
    ("mount-unknown-volume", dict(containers=container(volumeMounts=[{"name": "nope", "mountPath": "/x"}])),
     'spec.containers[0].volumeMounts[0].name: Not found: "nope"'),
    ("duplicate-volume", dict(volumes=[{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]),
     'spec.volumes[1].name: Duplicate value: "v"'),
    ("two-volume-sources", dict(volumes=[{"name": "v", "emptyDir": {}, "hostPath": {"path": "/tmp"}}]),
     "spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type"),
    ("claim-without-name", dict(volumes=[{"name": "v", "persistentVolumeClaim": {}}]),
     "spec.volumes[0].persistentVolumeClaim.claimName: Required value"),
    ("requests-above-limits", dict(containers=container(resources={"limits": {"cpu": "1"}, "requests": {"cpu": "2"}})),
     'spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1'),
    ("env-two-sources", dict(containers=container(env=[{"name": "A", "valueFrom": {
        "fieldRef": {"fieldPath": "metadata.name"}, "secretKeyRef": {"name": "s", "key": "k"}}}])),
     'spec.containers[0].env[0].valueFrom: Invalid value: "": may not have more than one field specified at a time'),
    ("env-secret-without-key", dict(containers=container(env=[{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s"}}}])),
     "spec.containers[0].env[0].valueFrom.secretKeyRef.key: Required value"),
    ("duplicate-container", dict(containers=[{"name": "c", "image": "a"}, {"name": "c", "image": "b"}]),
     'spec.containers[1].name: Duplicate value: "c"'),
    ("duplicate-port-name", dict(containers=container(ports=[{"containerPort": 80, "name": "web"},
                                                             {"containerPort": 81, "name": "web"}])),
     'spec.containers[0].ports[1].name: Duplicate value: "web"'),
]


@pytest.mark.parametrize("name,spec,message", INVALID, ids=[c[0] for c in INVALID])
async def test_invalid_pods_are_refused_and_not_stored(client: LocalClient, name: str, spec: Obj, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        await client.create(PODS, pod(name, **spec), "default")
    err = caught.value
    assert err.code == 422 and err.reason == "Invalid"
    assert message in str(err), str(err)
    with pytest.raises(ApiError) as missing:
        await client.get(PODS, name, "default")
    assert missing.value.code == 404


async def test_valid_handlers_volumes_and_resources_are_stored(client: LocalClient) -> None:
    spec = dict(
        containers=container(
            ports=[{"containerPort": 8080, "name": "http"}],
            readinessProbe={"httpGet": {"port": "http"}},
            livenessProbe={"tcpSocket": {"port": 8080}},
            startupProbe={"exec": {"command": ["true"]}},
            lifecycle={"postStart": {"sleep": {"seconds": 1}}, "preStop": {"httpGet": {"port": 8080, "path": "/q"}}},
            volumeMounts=[{"name": "data", "mountPath": "/data"}, {"name": "cfg", "mountPath": "/etc/cfg"}],
            resources={"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "512Mi"}},
            env=[{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        ),
        volumes=[{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c"}}, {"name": "bare"}],
    )
    created = await client.create(PODS, pod("ok", **spec), "default")
    assert created["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/"  # defaulted first
    assert created["spec"]["volumes"][2]["emptyDir"] == {}  # a volume without a source is an emptyDir
