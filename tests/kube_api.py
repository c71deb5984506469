"""A Kubernetes API server for the functions' tests: the real REST protocol over real HTTP.

No apiserver runs on these machines, so this one speaks its protocol for the resources the
functions touch, and the functions drive it through kubernetes_asyncio, unchanged, from a
kubeconfig file. What it holds to (FUNCTIONS.md §4, §7, §8 and the apiserver's handlers):
- paths: `/api/v1/...` and `/apis/GROUP/VERSION/...`, namespaced and cluster-scoped, the `scale`
  and `status` subresources; lists with equality label and field selectors; usage figures
  (kube_usage.py): a node's kubelet stats summary through `nodes/proxy`, and metrics.k8s.io's pods;
- verbs: GET (get/list), POST (create), PUT (update), PATCH (patch), DELETE (delete);
- errors as `Status` objects: 404 NotFound, 409 AlreadyExists / Conflict (a stale resourceVersion
  on PUT, a failed delete precondition), 422 Invalid (a Job whose selector was copied), 415 for
  patch types it does not take, 401 without the token, 403 Forbidden;
- `dryRun=All` in the query (and in a DELETE's body, which then wins) changes nothing;
- resourceVersion bumped on every write, generation on every spec change;
- RBAC: given the rules of a Role or ClusterRole (kube_rbac.py), anything they do not grant is
  403, with the message the apiserver gives.
A strategic-merge patch is applied as a merge patch: the functions send only maps, where the two
agree. Every request is recorded: method, path, query, body and content type.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from urllib.parse import unquote
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.kube_api_resources import RESOURCES
from tests.kube_discovery import discovery
from tests.kube_rbac import Grant, allowed
from tests.kube_usage import pod_metrics, stats_summary

PLURAL_OF = {kind: plural for plural, (_, _, kind, _, _) in RESOURCES.items()}
MERGE_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json")
TOKEN = "fake-service-account-token"
JOB_LABELS = ("job-name", "batch.kubernetes.io/job-name", "controller-uid", "batch.kubernetes.io/controller-uid")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    content_type: str


@dataclass(frozen=True)
class Target:
    group: str
    plural: str
    namespace: str | None
    name: str | None
    subresource: str | None
    proxied: str = ""  # the kubelet path after `/proxy/`

    @property
    def key(self) -> tuple[str, str, str | None, str | None]:
        return (self.group, self.plural, self.namespace, self.name)

    @property
    def resource(self) -> str:
        return f"{self.plural}/{self.subresource}" if self.subresource else self.plural


class ApiStatus(Exception):
    def __init__(self, code: int, reason: str, message: str, target: Target | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.target = code, reason, message, target

    def response(self) -> web.Response:
        details = {"name": self.target.name, "kind": self.target.plural} if self.target and self.target.name else {}
        if self.target and self.target.group:
            details["group"] = self.target.group
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": self.message,
                  "reason": self.reason, "details": details, "code": self.code}
        return web.Response(status=self.code, body=orjson.dumps(status), content_type="application/json")


@dataclass
class FakeKube:
    """The server; `grants` None allows everything (tests of behaviour), else RBAC applies."""

    grants: list[Grant] | None = None
    user: str = "system:serviceaccount:agent-sre:functions"
    # kubectl sends no bearer token over plain HTTP: its tests turn the check off.
    require_token: bool = True
    objects: dict[tuple[str, str, str | None, str | None], dict[str, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    # Called with each request before it is served: to change the world mid-run (a pod replaced).
    hooks: list[Callable[[Request], None]] = field(default_factory=list)
    forbidden: list[tuple[str, str, str | None]] = field(default_factory=list)  # (verb, resource, namespace) → 403
    clients: list[Any] = field(default_factory=list)  # API clients of the test's, closed with the server
    _versions: itertools.count = field(default_factory=lambda: itertools.count(1000))
    _server: TestServer | None = None

    # -- the test's side ---------------------------------------------------------------------
    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        plural = PLURAL_OF[obj["kind"]]
        group, version = RESOURCES[plural][0], RESOURCES[plural][1]
        obj.setdefault("apiVersion", f"{group}/{version}" if group else version)
        metadata = obj.setdefault("metadata", {})
        metadata.setdefault("uid", str(uuid.uuid4()))
        metadata.setdefault("generation", 1)
        metadata.setdefault("creationTimestamp", "2026-12-01T00:00:00Z")
        metadata["resourceVersion"] = str(next(self._versions))
        self.objects[(group, plural, metadata.get("namespace"), metadata["name"])] = obj
        return obj

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        plural = PLURAL_OF[kind]
        return self.objects.get((RESOURCES[plural][0], plural, namespace, name))

    @property
    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method != "GET"]

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.port}"

    def kubeconfig(self, path: Path, token: str = TOKEN) -> Path:
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "functions", "user": {"token": token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "functions", "namespace": "default"}}],
        }))
        return path

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        if self._server is not None:
            await self._server.close()

    # -- the server's side -------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = orjson.loads(raw) if raw else None
        content_type = request.headers.get("Content-Type", "").split(";")[0]
        recorded = Request(request.method, request.path, dict(request.query), body, content_type)
        self.requests.append(recorded)
        for hook in self.hooks:
            hook(recorded)
        if request.method == "GET" and (document := discovery(request.path)) is not None:
            return web.Response(body=orjson.dumps(document), content_type="application/json")
        try:
            if self.require_token and request.headers.get("Authorization") != f"Bearer {TOKEN}":
                raise ApiStatus(401, "Unauthorized", "Unauthorized")
            target = _target(request.path)
            verb = _verb(request.method, target)
            self._authorize(verb, target)
            answer = self._serve(verb, target, dict(request.query), body, content_type)
        except ApiStatus as exc:
            return exc.response()
        return web.Response(status=201 if verb == "create" else 200, body=orjson.dumps(answer),
                            content_type="application/json")

    def _authorize(self, verb: str, target: Target) -> None:
        if self.grants is None or allowed(self.grants, verb, target.group, target.resource, target.namespace, target.name):
            return
        self.forbidden.append((verb, target.resource, target.namespace))
        where = f' in the namespace "{target.namespace}"' if target.namespace else ""
        subject = f'{target.resource} "{target.name}"' if target.name else target.resource
        raise ApiStatus(403, "Forbidden", f'{subject} is forbidden: User "{self.user}" cannot {verb} resource '
                        f'"{target.resource}" in API group "{target.group}"{where}', target)

    def _serve(self, verb: str, target: Target, query: dict[str, str], body: Any, content_type: str) -> Any:
        dry = _dry_run(verb, query, body)
        if target.group == "metrics.k8s.io":
            return pod_metrics(self.objects, target.namespace or "", lambda pod: _selected(pod, query.get("labelSelector"), None))
        if target.subresource == "proxy" and target.key in self.objects:
            if target.proxied != "stats/summary":
                raise ApiStatus(404, "NotFound", f"the kubelet serves no /{target.proxied} here", target)
            return stats_summary(self.objects, target.name or "")
        if verb == "list":
            return self._list(target, query)
        if verb == "create":
            return self._create(target, body, dry)
        current = self.objects.get(target.key)
        if current is None:
            raise ApiStatus(404, "NotFound", f'{target.plural}.{target.group or "core"} "{target.name}" not found'
                            .replace(".core", ""), target)
        if verb == "get":
            return _scale_of(current) if target.subresource == "scale" else current
        if verb == "delete":
            _check_preconditions(current, body, target)
            if not dry:
                del self.objects[target.key]
            return current
        updated = self._changed(verb, target, current, body, content_type)
        if not dry:
            self._store(target, current, updated)
        return _scale_of(updated) if target.subresource == "scale" else updated

    def _changed(self, verb: str, target: Target, current: dict[str, Any], body: Any, content_type: str) -> dict[str, Any]:
        if verb == "patch" and content_type not in MERGE_TYPES:
            raise ApiStatus(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                            f"accepted media types include: {', '.join(MERGE_TYPES)}", target)
        if target.subresource == "scale":
            scale = _scale_of(current)
            new_scale = merge_patch(scale, body) if verb == "patch" else body
            if verb == "update":
                _check_version(scale, new_scale, target)
            updated = copy.deepcopy(current)
            updated.setdefault("spec", {})["replicas"] = new_scale["spec"]["replicas"]
            return updated
        if verb == "update":
            _check_version(current, body, target)
            updated = copy.deepcopy(body)
        else:
            updated = merge_patch(current, body)
        kept = "spec" if target.subresource == "status" else "status"  # a subresource writes its part only
        updated.pop(kept, None)
        if kept in current:
            updated[kept] = copy.deepcopy(current[kept])
        if target.subresource == "status":
            updated["metadata"] = copy.deepcopy(current["metadata"])
        return updated

    def _store(self, target: Target, current: dict[str, Any], updated: dict[str, Any]) -> None:
        metadata = updated.setdefault("metadata", {})
        for immutable in ("uid", "name", "namespace", "creationTimestamp"):
            if immutable in current["metadata"]:
                metadata[immutable] = current["metadata"][immutable]
        metadata["generation"] = current["metadata"].get("generation", 1) + (updated.get("spec") != current.get("spec"))
        metadata["resourceVersion"] = str(next(self._versions))
        self.objects[target.key] = updated
        updated.update({k: v for k, v in current.items() if k in ("apiVersion", "kind")})

    def _list(self, target: Target, query: dict[str, str]) -> dict[str, Any]:
        group, version, kind = RESOURCES[target.plural][:3]
        items = [obj for (g, plural, namespace, _), obj in self.objects.items()
                 if g == group and plural == target.plural and target.namespace in (None, namespace)
                 and _selected(obj, query.get("labelSelector"), query.get("fieldSelector"))]
        return {"kind": f"{kind}List", "apiVersion": f"{group}/{version}" if group else version,
                "metadata": {"resourceVersion": str(next(self._versions))}, "items": items}

    def _create(self, target: Target, body: Any, dry: bool) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        metadata = obj.setdefault("metadata", {})
        name = metadata.get("name")
        key = (target.group, target.plural, target.namespace, name)
        if key in self.objects:
            raise ApiStatus(409, "AlreadyExists", f'{target.plural}.{target.group} "{name}" already exists',
                            Target(target.group, target.plural, target.namespace, name, None))
        metadata.update({"namespace": target.namespace, "uid": str(uuid.uuid4()), "generation": 1,
                         "creationTimestamp": "2026-12-07T00:00:00Z"})
        if target.plural == "jobs":
            _generate_selector(obj, target)
        metadata["resourceVersion"] = str(next(self._versions))
        if not dry:
            self.objects[key] = obj
        return obj


def _target(path: str) -> Target:
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        raise ApiStatus(404, "NotFound", f"the server could not find the requested resource ({path})")
    namespace = None
    if len(rest) >= 2 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if group == "metrics.k8s.io" and rest == ["pods"] and namespace:  # metrics-server: its pods' list
        return Target(group, "pods", namespace, None, None)
    proxied = unquote("/".join(rest[3:])) if len(rest) > 3 and rest[2] == "proxy" else ""
    if not rest or rest[0] not in RESOURCES or RESOURCES[rest[0]][0] != group or (len(rest) > 3 and not proxied):
        raise ApiStatus(404, "NotFound", f"the server could not find the requested resource ({path})")
    plural = rest[0]
    if RESOURCES[plural][3] != (namespace is not None) and len(rest) > 1:
        raise ApiStatus(404, "NotFound", f"the server could not find the requested resource ({path})")
    subresource = rest[2] if len(rest) >= 3 else None
    if subresource is not None and subresource not in RESOURCES[plural][4]:
        raise ApiStatus(404, "NotFound", f"the server could not find the requested resource ({path})")
    return Target(group, plural, namespace, rest[1] if len(rest) > 1 else None, subresource, proxied)


def _verb(method: str, target: Target) -> str:
    if method == "GET":
        return "get" if target.name else "list"
    verbs = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    if method not in verbs or (method != "POST") != bool(target.name):
        raise ApiStatus(405, "MethodNotAllowed", f"{method} is not supported here")
    return verbs[method]


def _dry_run(verb: str, query: dict[str, str], body: Any) -> bool:
    # A DELETE with a body: the apiserver reads DeleteOptions from the body only (FUNCTIONS.md §7).
    values = (body.get("dryRun") or []) if verb == "delete" and body else ([query["dryRun"]] if "dryRun" in query else [])
    if any(value != "All" for value in values):
        raise ApiStatus(400, "BadRequest", f"dryRun: Unsupported value: {values}")
    return bool(values)


def _check_preconditions(current: dict[str, Any], body: Any, target: Target) -> None:
    preconditions = (body or {}).get("preconditions") or {}
    metadata = current["metadata"]
    if "uid" in preconditions and preconditions["uid"] != metadata["uid"]:
        raise ApiStatus(409, "Conflict", f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                        f"UID in object meta: {metadata['uid']}", target)
    if "resourceVersion" in preconditions and preconditions["resourceVersion"] != metadata["resourceVersion"]:
        raise ApiStatus(409, "Conflict", "Precondition failed: ResourceVersion in precondition: "
                        f"{preconditions['resourceVersion']}, ResourceVersion in object meta: {metadata['resourceVersion']}",
                        target)


def _check_version(current: dict[str, Any], body: Any, target: Target) -> None:
    sent = ((body or {}).get("metadata") or {}).get("resourceVersion")
    if sent and sent != current["metadata"]["resourceVersion"]:
        raise ApiStatus(409, "Conflict", f'Operation cannot be fulfilled on {target.plural}.{target.group} '
                        f'"{target.name}": the object has been modified; please apply your changes to the latest '
                        "version and try again", target)


def _scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj["metadata"]
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: metadata[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")},
            "spec": {"replicas": obj.get("spec", {}).get("replicas", 1)},
            "status": {"replicas": obj.get("status", {}).get("replicas", 0), "selector": ""}}


def _generate_selector(job: dict[str, Any], target: Target) -> None:
    """The apiserver's generateSelector, and the validation that refuses a copied one."""
    spec = job.setdefault("spec", {})
    if spec.get("manualSelector"):
        return
    uid = job["metadata"]["uid"]
    labels = spec.setdefault("template", {}).setdefault("metadata", {}).setdefault("labels", {}) or {}
    stale = [k for k in JOB_LABELS if k.endswith("controller-uid") and k in labels and labels[k] != uid]
    if spec.get("selector") or stale:
        raise ApiStatus(422, "Invalid", f'Job.batch "{job["metadata"].get("name")}" is invalid: spec.selector: '
                        "Invalid value: `selector` not auto-generated", target)
    name = job["metadata"]["name"]
    labels.update({"controller-uid": uid, "batch.kubernetes.io/controller-uid": uid, "job-name": name,
                   "batch.kubernetes.io/job-name": name})
    spec["template"]["metadata"]["labels"] = labels
    spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}


def _selected(obj: dict[str, Any], labels: str | None, fields: str | None) -> bool:
    own = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, (labels or "").split(",")):
        key, _, value = term.partition("=")
        if own.get(key) != value:
            return False
    for term in filter(None, (fields or "").split(",")):
        path, _, value = term.partition("=")
        found: Any = obj
        for part in path.split("."):
            found = found.get(part) if isinstance(found, dict) else None
        if found != value:
            return False
    return True


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
