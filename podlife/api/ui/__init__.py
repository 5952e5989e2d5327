"""The web UI: a live timeline of every pod's life, served by the API server under ``/ui/``.

Design (details in ``docs/ui.md``):

- **Where it is served.** On the API server's own port and TLS, by one aiohttp middleware
  (:class:`.routes.WebUI`) that takes every ``/ui`` request before the API's middlewares
  (authentication, priority and fairness, authorization, audit) see it; other paths pass
  through untouched. So the UI adds no port, no certificate and no cost to API requests
  (one string prefix test).
- **Who may use it.** Nobody unauthenticated: a page request without credentials is
  answered 401 with a login page. The credentials are the API's (a bearer token, a client
  certificate the cluster CA signed), checked by the API server's authenticator; a browser
  logs in either by posting a bearer token to the login form or with a one-time code that
  ``podlife ui`` mints with the kubeconfig's credentials (:mod:`.command`). Either way it
  gets an HttpOnly, Secure, SameSite=Strict session cookie scoped to ``/ui/``, which is a
  credential only for ``/ui`` paths (the API's authentication never reads cookies), so it
  cannot be used to forge API requests. :mod:`.sessions` keeps codes and sessions.
- **What a user sees.** What the API would show them: every read is authorized as the
  session's user with the API server's authorizer (RBAC, Node), as the matching API request.
- **Data.** Aggregated on the server (:mod:`.timeline`): compact rows from
  ``ctx.trace.summaries()`` and ``ctx.trace.subscribe``, node status from the nodes' watch
  cache, per-node counts; sent over Server-Sent Events, batched every 300 ms. A pod's page
  reads ``ctx.trace.get`` (stages, records, field diffs), the pod, its Port and Events from
  the watch caches, and its logs through the API's ``pods/log`` path.
- **Front end.** Plain JavaScript modules and CSS in ``static/`` (no framework, no build
  step, nothing fetched from a network): ``app.js`` routes between the timeline
  (``gantt.js``, virtualised: only the rows in view are in the DOM, so 10,000 pods stay
  smooth) and a pod's page (``pod.js``). Elements carry ``data-*`` attributes (``data-pod``,
  ``data-stage``, ``data-node-row``, ``data-diff-path``) for tests and for scripting.
"""

from __future__ import annotations

from .routes import COOKIE, WebUI

__all__ = ["COOKIE", "WebUI"]
