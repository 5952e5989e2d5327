"""Admission webhooks (:mod:`podlife.api.webhooks`) against a real HTTPS webhook server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from podlife.api.pki import PKI
from podlife.client.base import Resource
from podlife.machinery.errors import ApiError

CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
VALIDATING = Resource("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations",
                      "ValidatingWebhookConfiguration", namespaced=False)
MUTATING = Resource("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations",
                    "MutatingWebhookConfiguration", namespaced=False)
CM_RULE = {"operations": ["CREATE", "UPDATE", "DELETE"], "apiGroups": [""], "apiVersions": ["v1"],
           "resources": ["configmaps"]}


class Hooks:
    """A webhook server: ``/<behaviour>`` answers; every review it got is in ``seen``."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.url = ""
        self.ca = ""

    async def handle(self, request: web.Request) -> web.Response:
        review = await request.json()
        self.seen.append({"path": request.path, "query": dict(request.query), **review["request"]})
        behaviour = request.match_info["behaviour"]
        response: dict[str, Any] = {"uid": review["request"]["uid"], "allowed": True}
        if behaviour == "deny":
            response = {**response, "allowed": False, "status": {"code": 403, "reason": "Forbidden",
                                                                 "message": "no thanks"}}
        elif behaviour == "deny-bare":
            response = {**response, "allowed": False}
        elif behaviour == "warn":
            response["warnings"] = ["careful"]
        elif behaviour == "label":
            patch = [{"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}}]
            response.update(patchType="JSONPatch", patch=base64.b64encode(orjson.dumps(patch)).decode())
        elif behaviour == "slow":
            await asyncio.sleep(3)
        return web.json_response({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                  "response": response})


@pytest.fixture
async def hooks(tmp_path: Path) -> AsyncIterator[Hooks]:
    pki = PKI(tmp_path / "pki")
    pki.ensure(["127.0.0.1"])
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    state = Hooks()
    app = web.Application()
    app.router.add_post("/{behaviour}", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        state.url = f"https://127.0.0.1:{port}"
        state.ca = base64.b64encode(pki.ca_cert.read_bytes()).decode()
        yield state
    finally:
        await runner.cleanup()


def hook(name: str, url: str, ca: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "clientConfig": {"url": url, "caBundle": ca}, "rules": [CM_RULE],
            "admissionReviewVersions": ["v1"], "sideEffects": "None", **extra}


async def configure(api: Any, res: Resource, name: str, *webhooks: dict[str, Any]) -> None:
    await api.client.create(res, {"apiVersion": "admissionregistration.k8s.io/v1", "kind": res.kind,
                                  "metadata": {"name": name}, "webhooks": list(webhooks)})


def cm(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels or {}},
            "data": {"k": "v"}}


def rest(api: Any) -> Any:
    return api.ctx.rest_by("", "v1", "configmaps")


async def test_a_validating_webhook_denies_with_kubernetes_wording_and_its_code(local_api: Any, hooks: Hooks) -> None:
    await configure(local_api, VALIDATING, "v", hook("deny.example.com", hooks.url + "/deny", hooks.ca))
    with pytest.raises(ApiError) as caught:
        await local_api.client.create(CONFIGMAPS, cm("a"), "default")
    assert caught.value.code == 403
    assert caught.value.message == 'admission webhook "deny.example.com" denied the request: no thanks'
    with pytest.raises(ApiError):
        rest(local_api).get("default", "a")


async def test_a_bare_denial_is_400_without_explanation(local_api: Any, hooks: Hooks) -> None:
    await configure(local_api, VALIDATING, "v", hook("bare.example.com", hooks.url + "/deny-bare", hooks.ca))
    with pytest.raises(ApiError) as caught:
        await local_api.client.create(CONFIGMAPS, cm("a"), "default")
    assert caught.value.code == 400
    assert caught.value.message == 'admission webhook "bare.example.com" denied the request without explanation'


async def test_an_allowing_webhook_sees_the_request_and_its_warnings_are_returned(local_api: Any, hooks: Hooks) -> None:
    await configure(local_api, VALIDATING, "v", hook("warn.example.com", hooks.url + "/warn", hooks.ca))
    _, warnings = await rest(local_api).create(cm("a"), "default")
    assert warnings == ["careful"]
    request = hooks.seen[-1]
    assert request["operation"] == "CREATE" and request["query"] == {"timeout": "10s"}  # the v1 default
    assert request["kind"] == {"group": "", "version": "v1", "kind": "ConfigMap"}
    assert request["resource"] == {"group": "", "version": "v1", "resource": "configmaps"}
    assert request["requestResource"] == request["resource"]
    assert (request["name"], request["namespace"], request["dryRun"]) == ("a", "default", False)
    assert request["userInfo"] == {"username": "system:apiserver", "uid": request["userInfo"]["uid"],
                                   "groups": ["system:masters", "system:authenticated"]}
    assert request["object"]["data"] == {"k": "v"} and request["oldObject"] is None
    assert request["options"]["kind"] == "CreateOptions"

    updated = rest(local_api).get("default", "a")
    body = updated.copy()
    body["data"] = {"k": "w"}
    _, warnings = await rest(local_api).update("default", "a", body)
    assert warnings == ["careful"]
    request = hooks.seen[-1]
    assert request["operation"] == "UPDATE"
    assert request["oldObject"]["data"] == {"k": "v"} and request["object"]["data"] == {"k": "w"}

    _, warnings = await rest(local_api).patch("default", "a", "merge", {"data": {"k": "x"}})
    assert warnings == ["careful"] and hooks.seen[-1]["object"]["data"] == {"k": "x"}

    await local_api.client.delete(CONFIGMAPS, "a", "default")
    request = hooks.seen[-1]
    assert request["operation"] == "DELETE" and request["object"] is None
    assert request["oldObject"]["data"] == {"k": "x"} and request["options"]["kind"] == "DeleteOptions"


async def test_a_validating_webhook_can_refuse_a_delete_and_an_update(local_api: Any, hooks: Hooks) -> None:
    await local_api.client.create(CONFIGMAPS, cm("keep", {"locked": "true"}), "default")
    await configure(local_api, VALIDATING, "v", hook("lock.example.com", hooks.url + "/deny", hooks.ca,
                                                     objectSelector={"matchLabels": {"locked": "true"}}))
    with pytest.raises(ApiError) as caught:
        await local_api.client.delete(CONFIGMAPS, "keep", "default")
    assert caught.value.code == 403
    with pytest.raises(ApiError):
        await local_api.client.patch(CONFIGMAPS, "keep", {"data": {"k": "changed"}}, "default")
    assert rest(local_api).get("default", "keep").obj["data"] == {"k": "v"}
    # the old object's labels match too: removing the label is refused
    with pytest.raises(ApiError):
        await local_api.client.patch(CONFIGMAPS, "keep", {"metadata": {"labels": None}}, "default")
    await local_api.client.create(CONFIGMAPS, cm("free"), "default")  # objectSelector does not match


async def test_a_mutating_webhook_adds_a_label_with_a_json_patch(local_api: Any, hooks: Hooks) -> None:
    await configure(local_api, MUTATING, "m", hook("label.example.com", hooks.url + "/label", hooks.ca))
    await configure(local_api, VALIDATING, "v", hook("see.example.com", hooks.url + "/allow", hooks.ca))
    created = await local_api.client.create(CONFIGMAPS, cm("a"), "default")
    assert created["metadata"]["labels"] == {"mutated": "yes"}
    assert hooks.seen[-1]["path"] == "/allow"  # validating webhooks see the mutated object
    assert hooks.seen[-1]["object"]["metadata"]["labels"] == {"mutated": "yes"}
    patched = await local_api.client.patch(CONFIGMAPS, "a", {"metadata": {"labels": {"mutated": "no"}}}, "default")
    assert patched["metadata"]["labels"] == {"mutated": "yes"}


async def test_reinvocation_if_needed_calls_an_earlier_webhook_again(local_api: Any, hooks: Hooks) -> None:
    await configure(local_api, MUTATING, "a-first", hook("first.example.com", hooks.url + "/allow", hooks.ca,
                                                         reinvocationPolicy="IfNeeded"))
    await configure(local_api, MUTATING, "b-second", hook("second.example.com", hooks.url + "/label", hooks.ca))
    await local_api.client.create(CONFIGMAPS, cm("a"), "default")
    assert [s["path"] for s in hooks.seen] == ["/allow", "/label", "/allow"]
    assert hooks.seen[-1]["object"]["metadata"]["labels"] == {"mutated": "yes"}


async def test_rules_and_namespace_selector_decide_which_requests_are_sent(local_api: Any, hooks: Hooks) -> None:
    await local_api.client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": "guarded", "labels": {"guard": "on"}}})
    await configure(local_api, VALIDATING, "v",
                    hook("ns.example.com", hooks.url + "/deny", hooks.ca,
                         namespaceSelector={"matchLabels": {"guard": "on"}}),
                    hook("secrets.example.com", hooks.url + "/deny", hooks.ca,
                         rules=[{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                                 "resources": ["secrets"], "scope": "Namespaced"}]),
                    hook("status.example.com", hooks.url + "/deny", hooks.ca,
                         rules=[{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"],
                                 "resources": ["*/status"]}]))
    await local_api.client.create(CONFIGMAPS, cm("a"), "default")  # namespace labels do not match
    with pytest.raises(ApiError) as caught:
        await local_api.client.create(CONFIGMAPS, cm("a"), "guarded")
    assert "ns.example.com" in caught.value.message
    secrets = Resource("", "v1", "secrets", "Secret")
    with pytest.raises(ApiError) as caught:
        await local_api.client.create(secrets, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}},
                                      "default")
    assert "secrets.example.com" in caught.value.message
    # "*/status" matches no plain write, only status updates
    await local_api.client.patch(CONFIGMAPS, "a", {"data": {"k": "2"}}, "default")
    assert len(hooks.seen) == 2  # only the two denials were sent
    # the configurations themselves are never sent to webhooks
    await local_api.client.delete(VALIDATING, "v")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_failure_policy_fail_and_ignore_when_the_server_is_down(local_api: Any, hooks: Hooks) -> None:
    down = f"https://127.0.0.1:{_closed_port()}/allow"
    await configure(local_api, VALIDATING, "v", hook("down.example.com", down, hooks.ca))
    with pytest.raises(ApiError) as caught:
        await local_api.client.create(CONFIGMAPS, cm("a"), "default")
    assert caught.value.code == 500
    assert caught.value.message.startswith('Internal error occurred: failed calling webhook "down.example.com": '
                                           f'failed to call webhook: Post "{down}?timeout=10s": ')
    await local_api.client.delete(VALIDATING, "v")
    await configure(local_api, VALIDATING, "v", hook("down.example.com", down, hooks.ca, failurePolicy="Ignore"))
    await local_api.client.create(CONFIGMAPS, cm("a"), "default")


async def test_a_slow_webhook_times_out(local_api: Any, hooks: Hooks) -> None:
    await configure(local_api, VALIDATING, "v", hook("slow.example.com", hooks.url + "/slow", hooks.ca,
                                                     timeoutSeconds=1))
    with pytest.raises(ApiError) as caught:
        await local_api.client.create(CONFIGMAPS, cm("a"), "default")
    assert caught.value.code == 500
    assert caught.value.message.endswith("?timeout=1s\": context deadline exceeded")


async def test_a_wrong_ca_bundle_is_a_call_failure(local_api: Any, hooks: Hooks, tmp_path: Path) -> None:
    other = PKI(tmp_path / "other")
    other.ensure(["127.0.0.1"])
    ca = base64.b64encode(other.ca_cert.read_bytes()).decode()
    await configure(local_api, VALIDATING, "v", hook("tls.example.com", hooks.url + "/allow", ca))
    with pytest.raises(ApiError) as caught:
        await local_api.client.create(CONFIGMAPS, cm("a"), "default")
    assert caught.value.code == 500 and "tls.example.com" in caught.value.message
    assert hooks.seen == []


async def test_non_loopback_urls_and_service_references_are_refused_never_dialled(local_api: Any, hooks: Hooks,
                                                                                 monkeypatch: Any) -> None:
    import aiohttp

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a non-loopback webhook was dialled")

    monkeypatch.setattr(aiohttp.ClientSession, "post", never)
    await configure(local_api, VALIDATING, "v", hook("far.example.com", "https://192.0.2.1:443/allow", hooks.ca))
    with pytest.raises(ApiError) as caught:
        await local_api.client.create(CONFIGMAPS, cm("a"), "default")
    assert caught.value.code == 500
    assert caught.value.message == ('Internal error occurred: failed calling webhook "far.example.com": refusing to '
                                    'call webhook URL "https://192.0.2.1:443/allow": only loopback addresses may be '
                                    'dialled (podlife sends no packet off this host)')
    await local_api.client.delete(VALIDATING, "v")
    service = hook("svc.example.com", "", hooks.ca)
    service["clientConfig"] = {"service": {"namespace": "default", "name": "hook", "port": 443}}
    await configure(local_api, VALIDATING, "v", service)
    with pytest.raises(ApiError) as caught:
        await local_api.client.create(CONFIGMAPS, cm("a"), "default")
    assert "clientConfig.service is not supported" in caught.value.message


async def test_dry_run_to_a_webhook_with_side_effects_is_refused(local_api: Any, hooks: Hooks) -> None:
    await configure(local_api, VALIDATING, "v", hook("fx.example.com", hooks.url + "/allow", hooks.ca,
                                                     sideEffects="Unknown"))
    with pytest.raises(Exception) as caught:
        await rest(local_api).create(cm("a"), "default", dry_run=True)
    assert getattr(caught.value, "code", None) == 400
    assert str(caught.value) == 'admission webhook "fx.example.com" does not support dry run'
    assert hooks.seen == []
    await local_api.client.delete(VALIDATING, "v")
    await configure(local_api, VALIDATING, "v", hook("ok.example.com", hooks.url + "/allow", hooks.ca,
                                                     sideEffects="NoneOnDryRun"))
    await rest(local_api).create(cm("a"), "default", dry_run=True)
    assert hooks.seen[-1]["dryRun"] is True


async def test_a_denial_reaches_an_https_client_as_a_status(local_api: Any, hooks: Hooks, tmp_path: Path) -> None:
    import aiohttp

    from podlife.api.authn import AuthenticationOptions
    from podlife.api.server import APIServer

    pki = PKI(tmp_path / "api-pki")
    pki.ensure(["127.0.0.1"])
    await configure(local_api, VALIDATING, "v", hook("deny.example.com", hooks.url + "/deny", hooks.ca))
    server = APIServer(local_api.ctx, token="admin-secret", service_account_key=pki.service_account_key(),
                       authentication=AuthenticationOptions())
    url = await server.start("127.0.0.1", 0, pki.server_ssl_context())
    tls = ssl.create_default_context(cafile=str(pki.ca_cert))
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as session:
            async with session.post(f"{url}/api/v1/namespaces/default/configmaps", json=cm("a"),
                                    headers={"Authorization": "Bearer admin-secret"}) as resp:
                status, body = resp.status, json.loads(await resp.text())
    finally:
        await server.stop()
    assert status == 403
    assert body["kind"] == "Status" and body["status"] == "Failure" and body["code"] == 403
    assert body["message"] == 'admission webhook "deny.example.com" denied the request: no thanks'
    assert body["reason"] == "Forbidden"
    assert hooks.seen[-1]["userInfo"]["username"] != "system:apiserver"  # the HTTP caller
