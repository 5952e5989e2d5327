"""Who may use the web UI (``/ui/``), against a real ``podlife up``.

Nothing under ``/ui/`` is served without credentials (a page gets the 401 login page, data a
401 ``Status``); the admin's bearer token and the kubeconfig's client certificate get in; so
does a browser session made from a ``podlife ui`` login code or a posted token. The session
cookie is HttpOnly, Secure, SameSite=Strict and scoped to ``/ui/``; it is no credential for
the API, cannot mint login codes, and ends with logout or with the credentials it came from.
A session's reads are authorized as its user: a service account that may read one namespace
sees that namespace's pods and nothing of another's, nor the nodes.
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
import yaml

from .cluster_harness import PodlifeProcess, RawAnswer, require_tool, running_podlife, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodlifeProcess]:
    with running_podlife(tmp_path_factory.mktemp("ui-auth") / "data", "--nodes", "0", "--sim-nodes", "2",
                         kubectl=require_tool("kubectl")) as proc:
        yield proc


def _kubeconfig_tls(proc: PodlifeProcess, tmp: Path, with_certificate: bool) -> ssl.SSLContext:
    cfg = yaml.safe_load(proc.kubeconfig.read_text())
    ca = base64.b64decode(cfg["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    ctx = ssl.create_default_context(cadata=ca)
    if with_certificate:
        user = cfg["users"][0]["user"]
        cert, key = tmp / "admin.crt", tmp / "admin.key"
        cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
        key.write_bytes(base64.b64decode(user["client-key-data"]))
        ctx.load_cert_chain(cert, key)
    return ctx


def fetch(proc: PodlifeProcess, method: str, path: str, *, tls: ssl.SSLContext, headers: dict[str, str] | None = None,
          data: bytes | None = None) -> RawAnswer:
    """One request with exactly these headers (no token unless given), redirects not followed."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=tls), NoRedirect)
    req = urllib.request.Request(proc.server + path, data=data, method=method, headers=headers or {})
    try:
        with opener.open(req, timeout=30) as resp:
            return RawAnswer(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as err:
        return RawAnswer(err.code, err.headers, err.read())


def session_cookie(answer: RawAnswer) -> str:
    """The session id an answer sets, after checking the cookie's attributes."""
    header = next(h for h in answer.headers.get_all("Set-Cookie") or [] if h.startswith("podlife-ui-session="))
    lowered = [part.strip().lower() for part in header.split(";")]
    assert "httponly" in lowered and "secure" in lowered and "samesite=strict" in lowered and "path=/ui/" in lowered
    morsel = SimpleCookie(header)["podlife-ui-session"]
    return morsel.value


def login_url(proc: PodlifeProcess) -> str:
    out = subprocess.run([sys.executable, "-m", "podlife.cli", "ui", "--print-url", "--kubeconfig", str(proc.kubeconfig)],
                         capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    assert out.startswith(proc.server + "/ui/login?code="), out
    return out


def first_sse_event(proc: PodlifeProcess, tls: ssl.SSLContext, headers: dict[str, str]) -> tuple[str, dict]:
    """The first event of ``/ui/api/stream`` (the snapshot), read off the open stream."""
    req = urllib.request.Request(proc.server + "/ui/api/stream", headers=headers)
    with urllib.request.urlopen(req, context=tls, timeout=30) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        event, data = "", ""
        for raw in resp:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif not line and data:
                return event, json.loads(data)
    raise AssertionError("the stream ended before its first event")


def test_nothing_is_served_without_credentials(cluster: PodlifeProcess, tmp_path: Path) -> None:
    tls = _kubeconfig_tls(cluster, tmp_path, with_certificate=False)
    page = fetch(cluster, "GET", "/ui/", tls=tls)
    assert page.status == 401
    assert page.headers["Content-Type"].startswith("text/html")
    assert b'<form method="post" action="/ui/login">' in page.body
    for path in ("/ui/static/app.js", "/ui/pods/default/x", "/ui/api/whoami", "/ui/api/stream", "/ui/api/pods/default/x"):
        assert fetch(cluster, "GET", path, tls=tls).status == 401, path
    assert json.loads(fetch(cluster, "GET", "/ui/api/stream", tls=tls).body)["reason"] == "Unauthorized"
    assert fetch(cluster, "GET", "/ui/", tls=tls, headers={"Authorization": "Bearer wrong"}).status == 401
    assert fetch(cluster, "POST", "/ui/api/login-codes", tls=tls).status == 401
    assert fetch(cluster, "GET", "/ui/static/login.css", tls=tls).status == 200  # the login page's own style


def test_admin_token_and_client_certificate_get_in(cluster: PodlifeProcess, tmp_path: Path) -> None:
    plain = _kubeconfig_tls(cluster, tmp_path, with_certificate=False)
    token = fetch(cluster, "GET", "/ui/", tls=plain, headers={"Authorization": f"Bearer {cluster.token}"})
    assert token.status == 200 and b'src="/ui/static/app.js"' in token.body
    assert "script-src 'self'" in token.headers["Content-Security-Policy"]
    with_cert = _kubeconfig_tls(cluster, tmp_path, with_certificate=True)
    assert fetch(cluster, "GET", "/ui/", tls=with_cert).status == 200
    who = json.loads(fetch(cluster, "GET", "/ui/api/whoami", tls=with_cert).body)
    assert who["user"]["username"] == "podlife-admin"
    assert fetch(cluster, "GET", "/ui/static/gantt.js", tls=with_cert).headers["Content-Type"].startswith("text/javascript")
    event, snapshot = first_sse_event(cluster, plain, {"Authorization": f"Bearer {cluster.token}"})
    assert event == "snapshot" and {n["name"] for n in snapshot["nodes"]} >= {"sim-node-0", "sim-node-1"}


def test_login_code_makes_a_session_for_ui_paths_only(cluster: PodlifeProcess, tmp_path: Path) -> None:
    tls = _kubeconfig_tls(cluster, tmp_path, with_certificate=False)
    path = urllib.parse.urlsplit(login_url(cluster))
    code_path = f"{path.path}?{path.query}"
    answer = fetch(cluster, "GET", code_path, tls=tls)
    assert answer.status == 200
    cookie = {"Cookie": f"podlife-ui-session={session_cookie(answer)}"}
    assert fetch(cluster, "GET", code_path, tls=tls).status == 401  # a code works once

    assert fetch(cluster, "GET", "/ui/", tls=tls, headers=cookie).status == 200
    assert json.loads(fetch(cluster, "GET", "/ui/api/whoami", tls=tls, headers=cookie).body)["user"]["username"] == \
        "podlife-admin"
    # the cookie is no credential for the API (so no cross-site request can use it there)
    assert fetch(cluster, "GET", "/api/v1/namespaces", tls=tls, headers=cookie).status == 401
    assert fetch(cluster, "GET", "/version", tls=tls, headers=cookie).status == 200  # public anyway
    # nor can a session mint login codes
    assert fetch(cluster, "POST", "/ui/api/login-codes", tls=tls, headers=cookie).status == 403

    # logging out needs this origin, then ends the session
    evil = {**cookie, "Origin": "https://evil.example"}
    assert fetch(cluster, "POST", "/ui/logout", tls=tls, headers=evil).status == 403
    assert fetch(cluster, "GET", "/ui/", tls=tls, headers=cookie).status == 200
    out = fetch(cluster, "POST", "/ui/logout", tls=tls, headers={**cookie, "Origin": cluster.server})
    assert out.status == 200
    assert fetch(cluster, "GET", "/ui/", tls=tls, headers=cookie).status == 401


def test_a_session_reads_as_its_user(cluster: PodlifeProcess, tmp_path: Path) -> None:
    tls = _kubeconfig_tls(cluster, tmp_path, with_certificate=False)
    k = cluster.kubectl
    for ns in ("ui-a", "ui-b"):
        k("create", "namespace", ns)
        k("run", "p", "-n", ns, "--image=busybox")
    k("create", "serviceaccount", "viewer", "-n", "ui-a")
    k("create", "role", "ui-viewer", "-n", "ui-a", "--verb=get,list,watch",
      "--resource=pods,pods/log,events,podtraces.trace.podlife.io,ports.network.podlife.io")
    k("create", "rolebinding", "ui-viewer", "-n", "ui-a", "--role=ui-viewer", "--serviceaccount=ui-a:viewer")
    token = k("create", "token", "viewer", "-n", "ui-a").stdout.strip()

    form = {"Content-Type": "application/x-www-form-urlencoded", "Origin": cluster.server}
    bad = fetch(cluster, "POST", "/ui/login", tls=tls, headers=form, data=b"token=not-a-token")
    assert bad.status == 401 and b"not valid" in bad.body
    evil = fetch(cluster, "POST", "/ui/login", tls=tls, headers={**form, "Origin": "https://evil.example"},
                 data=urllib.parse.urlencode({"token": token}).encode())
    assert evil.status == 403
    answer = fetch(cluster, "POST", "/ui/login", tls=tls, headers=form, data=urllib.parse.urlencode({"token": token}).encode())
    assert answer.status == 200
    cookie = {"Cookie": f"podlife-ui-session={session_cookie(answer)}"}

    def page(ns: str) -> RawAnswer:
        return fetch(cluster, "GET", f"/ui/api/pods/{ns}/p", tls=tls, headers=cookie)

    mine = wait_for(lambda: (lambda a: a if a.status == 200 and json.loads(a.body)["trace"] else None)(page("ui-a")),
                    what="the pod's page in ui-a with its trace")
    body = json.loads(mine.body)
    assert body["pod"]["metadata"]["name"] == "p" and body["forbidden"] == [] and body["canLogs"]
    other = page("ui-b")
    assert other.status == 403 and json.loads(other.body)["reason"] == "Forbidden"

    event, snapshot = first_sse_event(cluster, tls, cookie)
    assert event == "snapshot"
    namespaces = {row[1] for row in snapshot["rows"]}
    assert "ui-a" in namespaces and namespaces <= {"ui-a"}, namespaces
    assert snapshot["nodes"] == []  # it may not list nodes

    # the session is its credentials: deleting the service account ends it
    k("delete", "serviceaccount", "viewer", "-n", "ui-a")
    wait_for(lambda: fetch(cluster, "GET", "/ui/", tls=tls, headers=cookie).status == 401,
             what="the session to end with its service account")
