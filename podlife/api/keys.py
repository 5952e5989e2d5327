"""Typed keys for what the API server keeps on its aiohttp application and requests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import ssl

import aiohttp
from aiohttp import web

from .identity import TokenIssuer, UserInfo

#: handlers of subresources served outside the generic REST verbs (log, exec, scale, token...)
SUBRESOURCE_HANDLERS: web.AppKey[dict[str, Callable[..., Awaitable[Any]]]] = web.AppKey("subresource_handlers", dict)
#: the bearer token the API server presents to kubelets
KUBELET_TOKEN: web.AppKey[str] = web.AppKey("kubelet_token", str)
#: TLS for dialling kubelets (verify them against the CA, show our client certificate);
#: absent: kubelets are dialled over plain HTTP (tests that run a bare kubelet endpoint)
KUBELET_TLS: web.AppKey[ssl.SSLContext] = web.AppKey("kubelet_tls", ssl.SSLContext)
#: one HTTP session for every kubelet connection (logs, exec, port-forward)
KUBELET_SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("kubelet_session", aiohttp.ClientSession)
#: signs and checks service-account tokens
TOKEN_ISSUER: web.AppKey[TokenIssuer] = web.AppKey("token_issuer", TokenIssuer)
#: who made the request (set by the authentication middleware)
USER: web.RequestKey[UserInfo] = web.RequestKey("user", UserInfo)
