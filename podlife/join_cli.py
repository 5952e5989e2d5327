"""``podlife token create|list|delete``: bootstrap tokens for nodes that join, as ``kubeadm token`` makes them.

    podlife token create [--ttl 24h] [--description TEXT] [--groups G,...] [--usages U,...]
                         [--kubeconfig FILE] [--print-join-command]
    podlife token list [--kubeconfig FILE]
    podlife token delete TOKEN_ID|TOKEN [--kubeconfig FILE]

A client of the API, with the admin's kubeconfig (found as kubectl finds it: ``--kubeconfig``,
``$KUBECONFIG``, ``./.podlife/kubeconfig``). ``create`` posts the Secret
``kube-system/bootstrap-token-<id>`` (:func:`podlife.api.bootstrap_tokens.token_secret`) and
prints the token alone, as kubeadm does; it also makes sure kubeadm's RBAC for joining nodes
exists (``kubeadm init`` creates it; podlife has no ``init``): the bindings of
``system:node-bootstrapper`` and of CSR auto-approval to the token's group, of self-renewal
to ``system:nodes``, and the anonymous read of ``kube-public/cluster-info``. With
``--print-join-command`` it prints the join command instead, with kubeadm's CA pin
(``sha256:`` of the cluster CA's SubjectPublicKeyInfo, :func:`ca_cert_hash`).

The node side is ``podlife node`` (:mod:`podlife.node_cli`, :mod:`podlife.node.join`): it
discovers the cluster from ``kube-public/cluster-info`` (published by ``podlife up``, signed per
token by the bootstrap signer), checks the CA pin, and gets its kubelet certificate through a
CertificateSigningRequest; see docs/joining.md.
Errors are one line on stderr and exit code 1, as kubectl's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from .machinery import bootstrap_token as bt
from .client.base import Resource

SECRETS = Resource("", "v1", "secrets", "Secret")
CLUSTER_ROLE_BINDINGS = Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding",
                                 namespaced=False)
ROLES = Resource("rbac.authorization.k8s.io", "v1", "roles", "Role")
ROLE_BINDINGS = Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
RBAC_GROUP = "rbac.authorization.k8s.io"
DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")


class CommandError(Exception):
    """A one-line error for the user (exit code 1)."""


def parse_duration(text: str) -> float:
    """Seconds of a Go duration made of h/m/s parts (``24h``, ``1h30m``, ``0`` = never expires)."""
    if text.strip() == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * {"h": 3600, "m": 60, "s": 1}[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise CommandError(f'invalid argument "{text}" for "--ttl" flag: time: invalid duration "{text}"')
    return total


def ca_cert_hash(ca_pem: bytes) -> str:
    """kubeadm's ``--discovery-token-ca-cert-hash``: sha256 of the CA certificate's DER SubjectPublicKeyInfo."""
    from .node.join import ca_cert_hash as pin

    return pin(ca_pem)


def resolve_kubeconfig(flag: Path | None) -> Path:
    from .trace_cli import resolve_kubeconfig as kubectl_order

    return kubectl_order(flag, os.environ.get("KUBECONFIG"), Path.cwd())


def _binding(kind: str, name: str, role_kind: str, role: str, subject_kind: str, subject: str,
             namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": f"{RBAC_GROUP}/v1", "kind": kind, "metadata": meta,
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": role_kind, "name": role},
            "subjects": [{"apiGroup": RBAC_GROUP, "kind": subject_kind, "name": subject}]}


def kubeadm_join_rbac(groups: tuple[str, ...]) -> list[tuple[Resource, dict[str, Any]]]:
    """What ``kubeadm init``'s bootstrap-token phase creates so tokens of these groups can join a node."""
    group = groups[0] if groups else bt.KUBEADM_DEFAULT_GROUP
    return [
        (CLUSTER_ROLE_BINDINGS, _binding("ClusterRoleBinding", "kubeadm:kubelet-bootstrap", "ClusterRole",
                                         "system:node-bootstrapper", "Group", group)),
        (CLUSTER_ROLE_BINDINGS, _binding("ClusterRoleBinding", "kubeadm:node-autoapprove-bootstrap", "ClusterRole",
                                         "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
                                         "Group", group)),
        (CLUSTER_ROLE_BINDINGS, _binding("ClusterRoleBinding", "kubeadm:node-autoapprove-certificate-rotation",
                                         "ClusterRole",
                                         "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
                                         "Group", "system:nodes")),
        (ROLES, {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "Role",
                 "metadata": {"name": "kubeadm:bootstrap-signer-clusterinfo", "namespace": "kube-public"},
                 "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cluster-info"],
                            "verbs": ["get"]}]}),
        (ROLE_BINDINGS, _binding("RoleBinding", "kubeadm:bootstrap-signer-clusterinfo", "Role",
                                 "kubeadm:bootstrap-signer-clusterinfo", "User", "system:anonymous", "kube-public")),
    ]


async def _ensure(client: Any, res: Resource, obj: dict[str, Any]) -> None:
    from .machinery.errors import ApiError

    try:
        await client.create(res, obj, obj["metadata"].get("namespace"))
    except ApiError as exc:
        if exc.code != 409:  # AlreadyExists: kept as the admin left it
            raise


def _new_token(args: argparse.Namespace, now: float) -> bt.BootstrapToken:
    token = args.token or bt.generate_token()
    parsed = bt.parse_token(token)
    if parsed is None:
        raise CommandError(f'the bootstrap token "{token}" was not of the form "{bt.TOKEN_PATTERN.pattern}"')
    ttl = parse_duration(args.ttl)
    groups = tuple(g.strip() for g in args.groups.split(",") if g.strip())
    for group in groups:
        if not bt.GROUP_PATTERN.match(group):
            raise CommandError(f'--groups: "{group}" must match {bt.GROUP_PATTERN.pattern}')
    usages = tuple(u.strip() for u in args.usages.split(",") if u.strip())
    for usage in usages:
        if usage not in bt.DEFAULT_USAGES:
            raise CommandError(f'--usages: invalid bootstrap token usage "{usage}" (valid: signing, authentication)')
    return bt.BootstrapToken(parsed[0], parsed[1], bt.rfc3339(now + ttl) if ttl else None, usages, groups,
                             args.description or "")


async def _create(args: argparse.Namespace) -> int:
    from .client.http import HTTPClient
    from .client.kubeconfig import load_kubeconfig

    path = resolve_kubeconfig(args.kubeconfig)
    config = load_kubeconfig(path)
    token = _new_token(args, time.time())
    client = HTTPClient.from_kubeconfig(path)
    try:
        for res, obj in kubeadm_join_rbac(token.groups):
            await _ensure(client, res, obj)
        await client.create(SECRETS, bt.token_secret(token), bt.NAMESPACE)
    finally:
        await client.close()
    if args.print_join_command:
        print(f"podlife node --server {config.server} --token {token.token} "
              f"--discovery-token-ca-cert-hash {ca_cert_hash(config.ca)}")
    else:
        print(token.token)
    return 0


def _ttl_column(expiration: str | None, now: float) -> tuple[str, str]:
    if not expiration:
        return "<forever>", "<never>"
    moment = bt.parse_rfc3339(expiration)
    if moment is None:
        return "<invalid>", expiration
    left = moment - now
    if left <= 0:
        return "<invalid>", expiration
    hours, rest = divmod(int(left), 3600)
    return (f"{hours}h" if hours else f"{rest // 60}m"), expiration


async def _list(args: argparse.Namespace) -> int:
    from .client.http import HTTPClient

    client = HTTPClient.from_kubeconfig(resolve_kubeconfig(args.kubeconfig))
    try:
        listing = await client.request("GET", SECRETS.path(bt.NAMESPACE),
                                       params={"fieldSelector": f"type={bt.SECRET_TYPE}"})
    finally:
        await client.close()
    rows = [("TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS")]
    now = time.time()
    for secret in listing.get("items") or []:
        token = bt.token_from_secret(secret)
        if token is None:
            continue
        ttl, expires = _ttl_column(token.expiration, now)
        rows.append((token.token, ttl, expires, ",".join(sorted(token.usages)), token.description or "<none>",
                     ",".join(token.groups)))
    if len(rows) > 1:
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("   ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


async def _delete(args: argparse.Namespace) -> int:
    from .client.http import HTTPClient

    token_id = args.token_id.split(".", 1)[0]
    if not re.fullmatch(r"[a-z0-9]{6}", token_id):
        raise CommandError(f'given token didn\'t match pattern "[a-z0-9]{{6}}" or "{bt.TOKEN_PATTERN.pattern}"')
    client = HTTPClient.from_kubeconfig(resolve_kubeconfig(args.kubeconfig))
    try:
        await client.delete(SECRETS, bt.SECRET_PREFIX + token_id, bt.NAMESPACE)
    finally:
        await client.close()
    print(f'bootstrap token "{token_id}" deleted')
    return 0


def _runner(action: Any) -> Any:
    """``fn(args) -> exit code``: the action run, its errors one line on stderr."""
    def run(args: argparse.Namespace) -> int:
        from .machinery.errors import ApiError

        try:
            return int(asyncio.run(action(args)))
        except CommandError as exc:
            print(f"error: {exc}", file=sys.stderr)
        except ApiError as exc:
            print(f"Error from server ({exc.reason}): {exc.message}", file=sys.stderr)
        except (OSError, KeyError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
        return 1
    return run


def add_parsers(subparsers: Any) -> None:
    """``podlife token ...`` (the node side, ``podlife node``, is :mod:`podlife.node_cli`)."""
    token = subparsers.add_parser("token", help="manage bootstrap tokens for joining nodes (as kubeadm token)",
                                  description="Bootstrap tokens: Secrets kube-system/bootstrap-token-<id> that let a "
                                              "new node authenticate as system:bootstrap:<id> (docs/joining.md).")
    actions = token.add_subparsers(dest="token_command", required=True)
    kubeconfig_help = "admin kubeconfig (default: $KUBECONFIG, else ./.podlife/kubeconfig)"

    create = actions.add_parser("create", help="create a bootstrap token and print it")
    create.add_argument("token", nargs="?", default=None, help="the token to create (default: a random one)")
    create.add_argument("--ttl", default="24h", help="how long until the token expires, e.g. 24h, 1h30m; 0: never "
                                                     "(default 24h)")
    create.add_argument("--description", default="", help="a human-friendly description of the token's use")
    create.add_argument("--groups", default=bt.KUBEADM_DEFAULT_GROUP,
                        help=f"extra groups the token authenticates as (default {bt.KUBEADM_DEFAULT_GROUP})")
    create.add_argument("--usages", default=",".join(bt.DEFAULT_USAGES),
                        help="how the token may be used: signing, authentication (default both)")
    create.add_argument("--print-join-command", action="store_true",
                        help="print the whole `podlife node` join command, with the CA's hash, not only the token")
    create.add_argument("--kubeconfig", type=Path, default=None, help=kubeconfig_help)
    create.set_defaults(run_command=_runner(_create))

    listing = actions.add_parser("list", help="list bootstrap tokens")
    listing.add_argument("--kubeconfig", type=Path, default=None, help=kubeconfig_help)
    listing.set_defaults(run_command=_runner(_list))

    delete = actions.add_parser("delete", help="delete a bootstrap token")
    delete.add_argument("token_id", help="the token, or its id")
    delete.add_argument("--kubeconfig", type=Path, default=None, help=kubeconfig_help)
    delete.set_defaults(run_command=_runner(_delete))
