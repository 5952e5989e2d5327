"""CustomResourceDefinitions in process: MemoryStore + build_api + LocalClient.

Covers the CRD's own validation, registration (catalog, discovery, OpenAPI, status),
pruning, defaulting and schema validation of custom resources, strict field
validation, the status and scale subresources, several versions sharing storage,
name conflicts, restarts and deletion through the cleanup finalizer.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from podlife.api import discovery, openapi
from podlife.machinery import errors
from podlife.api.crds import CRDController, controller_of, scale_of
from podlife.api.rest import ApiContext
from podlife.client.base import Resource
from podlife.api.local_client import LocalClient
from podlife.registry.crds import strategy as rules
from podlife.registry.crds.types import get_path, resource_types, set_path
from podlife.registry.schemas.decoder import validate_object
from podlife.store.memory import MemoryStore

from .cluster_harness import async_wait_for
from .in_process import InProcessApi, in_process_api

CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["spec"],
    "properties": {
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["cronSpec"],
            "properties": {
                "cronSpec": {"type": "string", "pattern": r"^(\S+\s+){4}\S+$", "minLength": 10, "maxLength": 40},
                "image": {"type": "string", "default": "busybox"},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                "color": {"type": "string", "enum": ["red", "blue"]},
                "ratio": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
                "ports": {"type": "array", "maxItems": 2, "minItems": 1,
                          "items": {"type": "object", "properties": {"port": {"type": "integer"},
                                                                     "name": {"type": "string", "default": "p"}}}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                          "properties": {"known": {"type": "integer"}}},
                "size": {"x-kubernetes-int-or-string": True},
                "nested": {"type": "object", "default": {},
                           "properties": {"level": {"type": "string", "default": "info"}}},
            },
        },
        "status": {"type": "object", "properties": {"replicas": {"type": "integer"},
                                                    "selector": {"type": "string"},
                                                    "phase": {"type": "string"}}},
    },
}


def crd(group: str, *, plural: str = "crontabs", kind: str = "CronTab", scope: str = "Namespaced",
        versions: list[dict[str, Any]] | None = None, short: tuple[str, ...] = ("ct",)) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {"group": group, "scope": scope,
                 "names": {"plural": plural, "kind": kind, "shortNames": list(short)},
                 "versions": versions or [version("v1")]},
    }


def version(name: str, *, storage: bool = True, served: bool = True, schema: dict[str, Any] | None = None,
            status: bool = True, scale: bool = True, columns: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    subresources: dict[str, Any] = {}
    if status:
        subresources["status"] = {}
    if scale:
        subresources["scale"] = {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
                                 "labelSelectorPath": ".status.selector"}
    out: dict[str, Any] = {"name": name, "served": served, "storage": storage,
                           "schema": {"openAPIV3Schema": copy.deepcopy(schema or SCHEMA)}, "subresources": subresources}
    if columns is not None:
        out["additionalPrinterColumns"] = columns
    return out


def cron(group: str, name: str, api_version: str = "v1", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{group}/{api_version}", "kind": "CronTab",
            "metadata": {"name": name, "namespace": "default"}, "spec": {"cronSpec": "* * * * */5", **spec}}


@dataclass
class Api:
    ctx: ApiContext
    client: LocalClient
    controller: CRDController

    async def install(self, manifest: dict[str, Any]) -> dict[str, Any]:
        await self.client.create(CRDS, manifest)
        await self.controller.settle()
        return await self.client.get(CRDS, manifest["metadata"]["name"])

    def resource(self, group: str, version_: str = "v1", plural: str = "crontabs") -> Resource:
        return Resource(group, version_, plural, "CronTab")

    async def create_cr(self, group: str, obj: dict[str, Any], *, mode: str | None = None,
                        version_: str = "v1") -> tuple[Any, list[str]]:
        """Create through the REST layer with a fieldValidation mode, as the HTTP handler does."""
        rest = self.ctx.rest_by(group, version_, "crontabs")
        assert rest is not None
        return await rest.create(obj, "default", field_validation=mode)


@pytest.fixture
async def api(local_api: InProcessApi) -> Api:
    controller = controller_of(local_api.ctx)
    assert controller is not None
    return Api(local_api.ctx, local_api.client, controller)


def causes(exc: errors.ApiError) -> list[tuple[str, str, str]]:
    return [(c["field"], c["reason"], c["message"]) for c in (exc.details or {}).get("causes", [])]


# ---- the CRD kind ------------------------------------------------------------------------------


def test_crd_is_served_cluster_scoped_with_short_names() -> None:
    from podlife.registry.catalog import Catalog

    rt = Catalog().lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    assert rt is not None and not rt.namespaced
    assert rt.short_names == ("crd", "crds") and "status" in rt.subresources


@pytest.mark.parametrize(("change", "field", "message"), [
    (lambda c: c["metadata"].update(name="wrong.a.example.com"), "metadata.name",
     'Invalid value: "wrong.a.example.com": must be spec.names.plural+"."+spec.group'),
    (lambda c: c["spec"].update(scope="Global"), "spec.scope",
     'Unsupported value: "Global": supported values: "Cluster", "Namespaced"'),
    (lambda c: c["spec"].update(versions=[]), "spec.versions",
     "Invalid value: []: must have exactly one version marked as storage version"),
    (lambda c: c["spec"]["versions"].append(version("v2")), "spec.versions",
     'Invalid value: ["v1","v2"]: must have exactly one version marked as storage version'),
    (lambda c: c["spec"]["versions"].append(version("v1", storage=False)), "spec.versions",
     'Invalid value: ["v1","v1"]: must contain unique version names'),
    (lambda c: c["spec"]["versions"][0].pop("schema"), "spec.versions[0].schema.openAPIV3Schema",
     "Required value: schemas are required"),
    (lambda c: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"].update(x={}),
     "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[x].type",
     "Required value: must not be empty for specified object fields"),
    (lambda c: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"].update(type="string"),
     "spec.versions[0].schema.openAPIV3Schema.type", 'Invalid value: "string": must be object at the root'),
    (lambda c: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["ports"]
     .pop("items"), "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[ports].items",
     "Required value: must be specified"),
    (lambda c: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["replicas"]
     .update(default="one"), "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[replicas].default",
     'Invalid value: "string": spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[replicas].default'
     ' in body must be of type integer: "string"'),
    (lambda c: c["spec"].update(group="nodot"), "spec.group",
     'Invalid value: "nodot": should be a domain with at least one dot'),
    (lambda c: c["spec"]["names"].pop("plural"), "spec.names.plural", "Required value"),
    (lambda c: c["spec"]["names"].update(plural="Cron_Tabs"), "spec.names.plural", 'Invalid value: "Cron_Tabs"'),
    (lambda c: c["spec"]["versions"][0].update(additionalPrinterColumns=[{"name": "X", "type": "int",
                                                                          "jsonPath": ".spec.x"}]),
     "spec.versions[0].additionalPrinterColumns[0].type",
     'Unsupported value: "int": supported values: "boolean", "date", "integer", "number", "string"'),
    (lambda c: c["spec"]["versions"][0]["subresources"]["scale"].update(specReplicasPath=".status.replicas"),
     "spec.versions[0].subresources.scale.specReplicasPath",
     'Invalid value: ".status.replicas": should be a json path under .spec'),
    (lambda c: c["spec"].update(preserveUnknownFields=True), "spec.preserveUnknownFields",
     "Invalid value: true: must be false"),
])
async def test_invalid_crds_get_422_with_causes(api: Api, change: Any, field: str, message: str) -> None:
    manifest = crd("a.example.com")
    change(manifest)
    with pytest.raises(errors.ApiError) as exc:
        await api.client.create(CRDS, manifest)
    assert exc.value.code == 422 and exc.value.reason == "Invalid"
    name = manifest["metadata"]["name"]
    assert exc.value.message.startswith(f'CustomResourceDefinition.apiextensions.k8s.io "{name}" is invalid: ')
    found = {f: m for f, _, m in causes(exc.value)}
    assert field in found, causes(exc.value)
    assert found[field].startswith(message), found[field]


async def test_protected_groups_need_the_approval_annotation(api: Api) -> None:
    manifest = crd("things.k8s.io")
    with pytest.raises(errors.ApiError) as exc:
        await api.client.create(CRDS, manifest)
    assert causes(exc.value)[0][0] == "metadata.annotations[api-approved.kubernetes.io]"
    manifest["metadata"]["annotations"] = {"api-approved.kubernetes.io": "https://github.com/kubernetes/kubernetes/pull/1"}
    await api.install(manifest)


async def test_crd_defaults_status_and_immutable_fields(api: Api) -> None:
    got = await api.install(crd("b.example.com"))
    names = got["spec"]["names"]
    assert names["singular"] == "crontab" and names["listKind"] == "CronTabList"
    assert got["spec"]["conversion"] == {"strategy": "None"}
    assert got["metadata"]["generation"] == 1
    status = got["status"]
    assert status["storedVersions"] == ["v1"]
    assert status["acceptedNames"] == {"plural": "crontabs", "singular": "crontab", "kind": "CronTab",
                                       "listKind": "CronTabList", "shortNames": ["ct"]}
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["NamesAccepted"]["status"] == "True" and conditions["NamesAccepted"]["reason"] == "NoConflicts"
    assert conditions["Established"]["status"] == "True"
    assert conditions["Established"]["reason"] == "InitialNamesAccepted"

    for path, value in (("group", "c.example.com"), ("scope", "Cluster")):
        changed = copy.deepcopy(got)
        changed["spec"][path] = value
        with pytest.raises(errors.ApiError) as exc:
            await api.client.update(CRDS, changed)
        immutable = (f"spec.{path}", "FieldValueInvalid", f'Invalid value: "{value}": field is immutable')
        assert immutable in causes(exc.value)

    # a spec change bumps the generation; a version in storedVersions cannot just disappear
    changed = copy.deepcopy(got)
    changed["spec"]["versions"] = [version("v1", storage=False), version("v2")]
    updated = await api.client.update(CRDS, changed)
    assert updated["metadata"]["generation"] == 2 and updated["status"]["storedVersions"] == ["v1", "v2"]
    updated["spec"]["versions"] = [version("v2")]
    with pytest.raises(errors.ApiError) as exc:
        await api.client.update(CRDS, updated)
    assert ("status.storedVersions[0]", "FieldValueInvalid",
            'Invalid value: "v1": must appear in spec.versions') in causes(exc.value)


# ---- registration ------------------------------------------------------------------------------


async def test_established_crd_is_discoverable_and_in_openapi(api: Api) -> None:
    group = "disc.example.com"
    before = discovery.cache_headers(orjson.dumps(discovery.aggregated(api.ctx.catalog, legacy=False)))
    columns = [{"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"}]
    await api.install(crd(group, versions=[version("v1", columns=columns)]))

    rt = api.ctx.catalog.lookup(group, "v1", "crontabs")
    assert rt is not None and rt.namespaced and rt.short_names == ("ct",)
    assert rt.subresources == ("status", "scale") and rt.printer_columns == tuple(columns)
    legacy = discovery.api_resource_list(api.ctx.catalog, group, "v1")
    assert legacy is not None
    assert {r["name"] for r in legacy["resources"]} == {"crontabs", "crontabs/status", "crontabs/scale"}
    aggregated = discovery.aggregated(api.ctx.catalog, legacy=False)
    assert any(item["metadata"]["name"] == group for item in aggregated["items"])
    after = discovery.cache_headers(orjson.dumps(aggregated))
    assert after["ETag"] != before["ETag"] and after["Vary"] == "Accept"

    doc = orjson.loads(openapi.openapi_v3_document(group, "v1", api.ctx.catalog.in_group_version(group, "v1")))
    definition = doc["components"]["schemas"]["com.example.disc.v1.CronTab"]
    assert definition["properties"]["spec"]["properties"]["cronSpec"]["pattern"]
    assert definition["properties"]["metadata"]["allOf"][0]["$ref"].endswith("ObjectMeta")
    assert f"/apis/{group}/v1/namespaces/{{namespace}}/crontabs/{{name}}/scale" in doc["paths"]
    item = doc["paths"][f"/apis/{group}/v1/namespaces/{{namespace}}/crontabs/{{name}}"]
    patch_types = item["patch"]["requestBody"]["content"]
    assert "application/strategic-merge-patch+json" not in patch_types
    assert api.ctx.catalog.schemas.schema(group, "v1", "CronTab") is not None


async def test_names_in_use_are_not_accepted(api: Api) -> None:
    group = "names.example.com"
    await api.install(crd(group))
    clash = crd(group, plural="crontabz", kind="CronTabZ", short=("ct",))
    got = await api.install(clash)
    conditions = {c["type"]: c for c in got["status"]["conditions"]}
    assert conditions["NamesAccepted"]["status"] == "False"
    assert conditions["NamesAccepted"]["reason"] == "ShortNamesConflict"
    assert conditions["NamesAccepted"]["message"] == '"ct" is already in use'
    assert conditions["Established"]["status"] == "False" and conditions["Established"]["reason"] == "NotAccepted"
    assert api.ctx.catalog.lookup(group, "v1", "crontabz") is None

    # once the holder of the name is gone, the waiting CRD is accepted and served
    await api.client.delete(CRDS, f"crontabs.{group}")

    async def established() -> bool:
        await api.controller.settle()
        return rules.is_condition_true(await api.client.get(CRDS, clash["metadata"]["name"]), "Established")

    await async_wait_for(established, what="the waiting CRD to be established")
    assert api.ctx.catalog.lookup(group, "v1", "crontabz") is not None

    builtin = await api.install(crd("network.podlife.io", plural="ports", kind="Portal", short=()))
    reasons = {c["type"]: c["reason"] for c in builtin["status"]["conditions"]}
    assert reasons["NamesAccepted"] == "PluralConflict"
    assert api.ctx.catalog.lookup("network.podlife.io", "v1", "ports").kind == "Port"  # type: ignore[union-attr]


# ---- custom resources: pruning, defaulting, validation ------------------------------------------


async def test_pruning_and_defaulting(api: Api) -> None:
    group = "prune.example.com"
    await api.install(crd(group))
    obj = cron(group, "a", junk=1, replicas=None, ports=[{"port": 80, "bogus": True}],
               extra={"known": 1, "anything": {"goes": True}}, labels={"a": "b"}, size="50%")
    obj["unknownTop"] = {"x": 1}
    obj["status"] = {"replicas": 5}
    created = await api.client.create(api.resource(group), obj)
    spec = created["spec"]
    assert "junk" not in spec and "unknownTop" not in created
    assert spec["ports"] == [{"port": 80, "name": "p"}]
    assert spec["extra"] == {"known": 1, "anything": {"goes": True}}
    assert spec["replicas"] == 1 and spec["image"] == "busybox"  # null pruned, then defaulted
    assert spec["nested"] == {"level": "info"}  # a defaulted object gets its own defaults
    assert spec["size"] == "50%" and spec["labels"] == {"a": "b"}
    assert "status" not in created  # the status subresource owns status
    assert created["metadata"]["generation"] == 1


@pytest.mark.parametrize(("spec", "expected"), [
    ({"replicas": "three"}, ("spec.replicas", "FieldValueTypeInvalid",
                             'Invalid value: "string": spec.replicas in body must be of type integer: "string"')),
    ({"replicas": 0}, ("spec.replicas", "FieldValueInvalid",
                       "Invalid value: 0: spec.replicas in body should be greater than or equal to 1")),
    ({"replicas": 11}, ("spec.replicas", "FieldValueInvalid",
                        "Invalid value: 11: spec.replicas in body should be less than or equal to 10")),
    ({"ratio": 0}, ("spec.ratio", "FieldValueInvalid",
                    "Invalid value: 0: spec.ratio in body should be greater than 0")),
    ({"color": "pink"}, ("spec.color", "FieldValueNotSupported",
                         'Unsupported value: "pink": supported values: "red", "blue"')),
    ({"cronSpec": "not a cron"}, ("spec.cronSpec", "FieldValueInvalid",
                                  'Invalid value: "not a cron": spec.cronSpec in body should match '
                                  "'^(\\S+\\s+){4}\\S+$'")),
    ({"cronSpec": "* * * * *"}, ("spec.cronSpec", "FieldValueInvalid",
                                 'Invalid value: "* * * * *": spec.cronSpec in body should be at least 10 chars long')),
    ({"cronSpec": "* * * * " + "x" * 40}, ("spec.cronSpec", "FieldValueTooLong",
                                           "Too long: may not be longer than 40")),
    ({"ports": []}, ("spec.ports", "FieldValueInvalid",
                     "Invalid value: 0: spec.ports in body should have at least 1 items")),
    ({"ports": [{}, {}, {}]}, ("spec.ports", "FieldValueTooMany", "Too many: 3: must have at most 2 items")),
    ({"ports": [{"port": "http"}]}, ("spec.ports[0].port", "FieldValueTypeInvalid",
                                     'Invalid value: "string": spec.ports[0].port in body must be of type integer: '
                                     '"string"')),
    ({"labels": {"a": 1}}, ("spec.labels.a", "FieldValueTypeInvalid",
                            'Invalid value: "integer": spec.labels.a in body must be of type string: "integer"')),
    ({"size": 1.5}, ("spec.size", "FieldValueTypeInvalid",
                     'Invalid value: "number": spec.size in body must be of type integer,string: "number"')),
])
async def test_schema_validation_errors_like_kubernetes(api: Api, spec: dict[str, Any],
                                                        expected: tuple[str, str, str]) -> None:
    group = "valid.example.com"
    await api.install(crd(group))
    with pytest.raises(errors.ApiError) as exc:
        await api.client.create(api.resource(group), cron(group, "bad", **spec))
    assert exc.value.code == 422 and exc.value.reason == "Invalid"
    assert causes(exc.value) == [expected]
    field, _, message = expected
    assert exc.value.message == f'CronTab.{group} "bad" is invalid: {field}: {message}'
    assert (exc.value.details or {})["group"] == group


async def test_required_fields(api: Api) -> None:
    group = "req.example.com"
    await api.install(crd(group))
    obj = cron(group, "r")
    del obj["spec"]["cronSpec"]
    with pytest.raises(errors.ApiError) as exc:
        await api.client.create(api.resource(group), obj)
    assert causes(exc.value) == [("spec.cronSpec", "FieldValueRequired", "Required value")]
    del obj["spec"]
    with pytest.raises(errors.ApiError) as exc:
        await api.client.create(api.resource(group), obj)
    assert causes(exc.value) == [("spec", "FieldValueRequired", "Required value")]


async def test_strict_field_validation(api: Api) -> None:
    group = "strict.example.com"
    await api.install(crd(group))
    obj = cron(group, "s", imagee="x")
    with pytest.raises(errors.ApiError) as exc:
        await api.create_cr(group, copy.deepcopy(obj), mode="Strict")
    assert exc.value.code == 400
    assert exc.value.message == ('CronTab in version "v1" cannot be handled as a CronTab: strict decoding error: '
                                 'unknown field "spec.imagee"')
    _, warnings = await api.create_cr(group, copy.deepcopy(obj), mode="Warn")
    assert warnings == ['unknown field "spec.imagee"']
    created = await api.client.get(api.resource(group), "s", "default")
    assert "imagee" not in created["spec"]
    # metadata is a full ObjectMeta even though the schema says just "type: object"
    labelled = cron(group, "l")
    labelled["metadata"]["labels"] = {"app": "x"}
    await api.create_cr(group, labelled, mode="Strict")
    # a wrong type is a schema error (422), not a decoding error, in every mode
    with pytest.raises(errors.ApiError) as exc:
        await api.create_cr(group, cron(group, "t", replicas="x"), mode="Strict")
    assert exc.value.code == 422


async def test_cluster_scoped_kinds_and_selectable_fields(api: Api) -> None:
    group = "scope.example.com"
    v1 = version("v1")
    v1["selectableFields"] = [{"jsonPath": ".spec.color"}]
    await api.install(crd(group, plural="palettes", kind="Palette", scope="Cluster", versions=[v1], short=()))
    palettes = Resource(group, "v1", "palettes", "Palette", namespaced=False)
    for name, color in (("warm", "red"), ("cold", "blue")):
        body = {"apiVersion": f"{group}/v1", "kind": "Palette",
                "metadata": {"name": name, "namespace": "ignored"}, "spec": {"cronSpec": "* * * * */5", "color": color}}
        created = await api.client.create(palettes, body)
        assert "namespace" not in created["metadata"]
    red = await api.client.list(palettes, field_selector="spec.color=red")
    assert [p["metadata"]["name"] for p in red["items"]] == ["warm"]
    with pytest.raises(errors.ApiError) as exc:
        await api.client.list(palettes, field_selector="spec.image=x")
    assert exc.value.code == 400


# ---- subresources ----------------------------------------------------------------------------------


async def test_status_subresource_and_generation(api: Api) -> None:
    group = "status.example.com"
    await api.install(crd(group))
    res = api.resource(group)
    await api.client.create(res, cron(group, "s"))
    patched = await api.client.patch(res, "s", {"status": {"replicas": 3}}, "default")
    assert "status" not in patched and patched["metadata"]["generation"] == 1
    patched = await api.client.patch(res, "s", {"status": {"replicas": 3, "junk": 1}, "spec": {"image": "nginx"}},
                                     "default", subresource="status")
    assert patched["status"] == {"replicas": 3} and patched["spec"]["image"] == "busybox"
    assert patched["metadata"]["generation"] == 1
    patched = await api.client.patch(res, "s", {"metadata": {"labels": {"a": "b"}}}, "default")
    assert patched["metadata"]["generation"] == 1 and patched["status"] == {"replicas": 3}
    patched = await api.client.patch(res, "s", {"spec": {"image": "nginx"}}, "default")
    assert patched["metadata"]["generation"] == 2 and patched["status"] == {"replicas": 3}
    with pytest.raises(errors.ApiError) as exc:
        await api.client.patch(res, "s", {"status": {"replicas": "x"}}, "default", subresource="status")
    assert exc.value.code == 422


async def test_without_status_subresource_status_is_plain_data(api: Api) -> None:
    group = "nostatus.example.com"
    await api.install(crd(group, versions=[version("v1", status=False, scale=False)]))
    res = api.resource(group)
    obj = cron(group, "n")
    obj["status"] = {"phase": "New"}
    created = await api.client.create(res, obj)
    assert created["status"] == {"phase": "New"}
    patched = await api.client.patch(res, "n", {"status": {"phase": "Old"}}, "default")
    assert patched["status"] == {"phase": "Old"} and patched["metadata"]["generation"] == 2


def test_scale_reads_the_crd_paths() -> None:
    rt = resource_types(crd("scale.example.com"))[0]
    obj = {"metadata": {"name": "x", "namespace": "default", "uid": "u", "resourceVersion": "7"},
           "spec": {"replicas": 4}, "status": {"replicas": 2, "selector": "app=x"}}
    assert scale_of(obj, rt) == {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": "x", "namespace": "default", "uid": "u", "resourceVersion": "7"},
        "spec": {"replicas": 4}, "status": {"replicas": 2, "selector": "app=x"}}
    target: dict[str, Any] = {}
    set_path(target, ".spec.nested.replicas", 3)
    assert target == {"spec": {"nested": {"replicas": 3}}}
    assert get_path(target, ".spec.nested.replicas") == 3


# ---- several versions ---------------------------------------------------------------------------


async def test_versions_share_storage_and_rewrite_api_version(api: Api) -> None:
    group = "multi.example.com"
    open_schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    versions = [version("v1", storage=True), version("v2", storage=False, schema=open_schema),
                version("v1beta1", storage=False, served=False)]
    await api.install(crd(group, versions=versions))
    assert [t.version for t in api.ctx.catalog.in_group_version(group, "v2")] == ["v2"]
    assert api.ctx.rest_by(group, "v1beta1", "crontabs") is None
    group_doc = discovery.api_group(api.ctx.catalog, group)
    assert group_doc is not None and group_doc["preferredVersion"]["version"] == "v2"

    v1, v2 = api.resource(group, "v1"), api.resource(group, "v2")
    watch = api.client.watch(v2, "default")
    await api.client.create(v1, cron(group, "m"))
    event = await asyncio.wait_for(watch.__anext__(), 5)
    assert event.type == "ADDED" and event.object["apiVersion"] == f"{group}/v2"
    await watch.aclose()

    as_v2 = await api.client.get(v2, "m", "default")
    assert as_v2["apiVersion"] == f"{group}/v2" and as_v2["spec"]["cronSpec"] == "* * * * */5"
    as_v2["spec"]["free"] = {"form": True}  # v2's schema keeps unknown fields
    updated = await api.client.update(v2, as_v2)
    assert updated["apiVersion"] == f"{group}/v2"
    as_v1 = await api.client.get(v1, "m", "default")
    assert as_v1["apiVersion"] == f"{group}/v1" and as_v1["spec"]["free"] == {"form": True}
    assert as_v1["metadata"]["resourceVersion"] == updated["metadata"]["resourceVersion"]
    listed = await api.client.list(v1, "default")
    assert listed["kind"] == "CronTabList" and [i["apiVersion"] for i in listed["items"]] == [f"{group}/v1"]
    deleted = await api.client.delete(v2, "m", "default")
    assert deleted["apiVersion"] == f"{group}/v2"
    assert (await api.client.list(v1, "default"))["items"] == []


async def test_served_versions_follow_crd_updates(api: Api) -> None:
    group = "upd.example.com"
    got = await api.install(crd(group))
    await api.client.create(api.resource(group), cron(group, "u"))
    got["spec"]["versions"].append(version("v2", storage=False))
    await api.client.update(CRDS, got)
    await api.controller.settle()
    assert (await api.client.get(api.resource(group, "v2"), "u", "default"))["apiVersion"] == f"{group}/v2"
    got = await api.client.get(CRDS, got["metadata"]["name"])
    got["spec"]["versions"][1]["served"] = False
    await api.client.update(CRDS, got)
    await api.controller.settle()
    assert api.ctx.rest_by(group, "v2", "crontabs") is None
    assert api.ctx.catalog.schemas.schema(group, "v2", "CronTab") is None


# ---- restart and deletion ------------------------------------------------------------------------


async def test_crd_schemas_belong_to_their_api_server(api: Api) -> None:
    """Two API servers in one process: a CRD created in one is unknown to the other."""
    group = "own.example.com"
    await api.install(crd(group))
    typo = cron(group, "t")
    typo["spec"]["cronSpecc"] = "x"
    mine = api.ctx.catalog.schemas
    assert mine.schema(group, "v1", "CronTab") is not None
    assert [i.field for i in validate_object(typo, group, "v1", "CronTab", schemas=mine)] == ["spec.cronSpecc"]
    crontabs = [openapi.ResourceInfo("crontabs", "CronTab", True)]  # no schema of its own: the catalog's is used
    served = openapi.build_document(group, "v1", crontabs, mine)["components"]["schemas"]
    assert "cronSpec" in served["com.example.own.v1.CronTab"]["properties"]["spec"]["properties"]

    async with in_process_api() as other:
        theirs = other.ctx.catalog.schemas
        assert theirs is not mine
        assert theirs.schema(group, "v1", "CronTab") is None and theirs.compiled(group, "v1", "CronTab") is None
        assert validate_object(typo, group, "v1", "CronTab", schemas=theirs) == []  # not validated there
        assert other.ctx.rest_by(group, "v1", "crontabs") is None
        assert not list(other.ctx.catalog.in_group_version(group, "v1"))
        unknown = openapi.build_document(group, "v1", crontabs, theirs)["components"]["schemas"]
        assert unknown["com.example.own.v1.CronTab"]["x-kubernetes-preserve-unknown-fields"] is True
        with pytest.raises(errors.ApiError) as exc:
            await other.client.create(api.resource(group), cron(group, "t"))
        assert exc.value.code == 404

    # and the first still knows it after the other one is gone
    assert [i.field for i in validate_object(typo, group, "v1", "CronTab", schemas=mine)] == ["spec.cronSpecc"]


async def test_restart_serves_stored_crds_at_once() -> None:
    store = MemoryStore()
    await store.start()
    crontabs = Resource("restart.example.com", "v1", "crontabs", "CronTab")
    try:
        async with in_process_api(store) as first:  # its CRD controller closes at the end of the block
            first_controller = controller_of(first.ctx)
            assert first_controller is not None
            await first.client.create(CRDS, crd("restart.example.com"))
            await first_controller.settle()
            await first.client.create(crontabs, cron("restart.example.com", "r"))
            held = cron("restart.example.com", "held")
            held["metadata"]["finalizers"] = ["example.com/hold"]
            await first.client.create(crontabs, held)

        async with in_process_api(store) as again:
            assert controller_of(again.ctx) is not None
            got = await again.client.get(crontabs, "r", "default")
            assert got["spec"]["cronSpec"] == "* * * * */5"
            # a CRD deleted before a restart still cleans up its resources after it
            await again.client.delete(CRDS, "crontabs.restart.example.com")

        async with in_process_api(store) as third:
            controller = controller_of(third.ctx)
            assert controller is not None
            await controller.settle()
            remaining = (await third.client.list(crontabs))["items"]
            assert [o["metadata"]["name"] for o in remaining] == ["held"]
            await third.client.patch(crontabs, "held", {"metadata": {"finalizers": None}}, "default")

            async def stopped_serving() -> bool:
                await controller.settle()
                return third.ctx.rest_by("restart.example.com", "v1", "crontabs") is None

            await async_wait_for(stopped_serving, what="the deleted CRD's kind to stop being served")
            assert third.ctx.rest_by("restart.example.com", "v1", "crontabs") is None
    finally:
        await store.close()


async def test_deleting_a_crd_deletes_its_resources_then_stops_serving(api: Api) -> None:
    group = "del.example.com"
    name = f"crontabs.{group}"
    await api.install(crd(group))
    res = api.resource(group)
    await api.client.create(res, cron(group, "a"))
    held = cron(group, "b")
    held["metadata"]["finalizers"] = ["example.com/hold"]
    await api.client.create(res, held)
    watch = api.client.watch(res)
    assert (await asyncio.wait_for(watch.__anext__(), 5)).type == "ADDED"

    await api.client.delete(CRDS, name)
    await api.controller.settle()
    terminating = await api.client.get(CRDS, name)
    assert rules.CLEANUP_FINALIZER in terminating["metadata"]["finalizers"]
    assert rules.condition(terminating, "Terminating")["reason"] == "InstanceDeletionInProgress"  # type: ignore[index]
    remaining = (await api.client.list(res))["items"]
    assert [o["metadata"]["name"] for o in remaining] == ["b"] and remaining[0]["metadata"]["deletionTimestamp"]
    with pytest.raises(errors.ApiError) as exc:
        await api.client.create(res, cron(group, "c"))
    assert exc.value.code == 405
    assert exc.value.message == "create not allowed while custom resource definition is terminating"

    await api.client.patch(res, "b", {"metadata": {"finalizers": None}}, "default")

    async def stopped_serving() -> bool:
        await api.controller.settle()
        return api.ctx.rest_by(group, "v1", "crontabs") is None

    await async_wait_for(stopped_serving, what="the deleted CRD's kind to stop being served")
    with pytest.raises(errors.ApiError) as exc:
        await api.client.get(CRDS, name)
    assert exc.value.code == 404
    with pytest.raises(errors.ApiError) as exc:
        await api.client.list(res)
    assert exc.value.code == 404
    assert api.ctx.catalog.lookup(group, "v1", "crontabs") is None
    assert api.ctx.catalog.schemas.schema(group, "v1", "CronTab") is None
    types = []
    async for event in watch:  # the open watch saw the deletions and then ended
        types.append(event.type)
    assert "DELETED" in types


async def test_crd_never_established_is_deleted_at_once(api: Api) -> None:
    group = "never.example.com"
    await api.install(crd(group))
    clash = await api.install(crd(group, plural="other", kind="Other", short=("ct",)))
    assert not rules.is_condition_true(clash, "Established")
    await api.client.delete(CRDS, clash["metadata"]["name"])
    await api.controller.settle()
    with pytest.raises(errors.ApiError) as exc:
        await api.client.get(CRDS, clash["metadata"]["name"])
    assert exc.value.code == 404
