"""The Kubernetes API, as the functions use it: kubernetes_asyncio, its errors translated.

Why kubernetes_asyncio (36.x), compared in December 2026:
- **lightkube** (1.0): typed and light, but its `delete` puts every option in the query
  (`gracePeriodSeconds`, `propagationPolicy`, `dryRun`) and has no way to send a DeleteOptions
  body, so a pod cannot be deleted with a `preconditions.uid` (FUNCTIONS.md §4) without using its
  private request builder.
- **kr8s** (0.20): async first, but object-oriented over httpx with the same gap (no delete
  preconditions) and no typed API surface for subresources such as `scale` and `status`.
- **kubernetes_asyncio**: the official OpenAPI client generated for asyncio, released with each
  Kubernetes minor, typed stubs (`py.typed`, `.pyi`), on aiohttp (already ours). Every call we
  need is a plain method: a DeleteOptions body with preconditions and `dryRun`, `_content_type`
  to choose merge or strategic-merge patch, `field_manager`, `dry_run`, the `scale` and `status`
  subresources, custom resources, in-cluster config and kubeconfig.

Objects are handled as plain dicts in the API's own camelCase (`as_dict`), as they are on the wire.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException

from ..errors import ConfigError, KubeApiError, Skipped

log = logging.getLogger(__name__)

T = TypeVar("T")
FIELD_MANAGER = "agent-sre"  # kubectl sends its own name (kubectl-rollout, …); so do we
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
_SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


@dataclass
class Kube:
    """The API groups the functions call, one client, and the global dry-run switch.

    `dry_run` is the query value for writes (`All` or None); `dry_run_body` the DeleteOptions
    field, since the apiserver reads a DELETE's query only when its body is empty (FUNCTIONS.md §7).
    """

    api: client.ApiClient
    dry: bool = False
    core: client.CoreV1Api = field(init=False)
    apps: client.AppsV1Api = field(init=False)
    batch: client.BatchV1Api = field(init=False)
    autoscaling: client.AutoscalingV2Api = field(init=False)
    custom: client.CustomObjectsApi = field(init=False)
    storage: client.StorageV1Api = field(init=False)

    def __post_init__(self) -> None:
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.autoscaling = client.AutoscalingV2Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.storage = client.StorageV1Api(self.api)

    @property
    def dry_run(self) -> str | None:
        return "All" if self.dry else None

    @property
    def dry_run_body(self) -> list[str] | None:
        return ["All"] if self.dry else None

    async def call(self, request: Awaitable[T]) -> dict[str, Any]:
        """Await one API call; its object as a dict, or KubeApiError with the Status it answered."""
        try:
            answer = await request
        except ApiException as exc:
            raise _translated(exc) from exc
        return self.as_dict(answer)

    async def existing(self, request: Awaitable[T], gone: str) -> dict[str, Any]:
        """Read the object the function acts on; `Skipped(gone)` when it is not there (any more)."""
        try:
            return await self.call(request)
        except KubeApiError as exc:
            if exc.status == 404:
                raise Skipped(gone) from exc
            raise

    async def proxied(self, request: Awaitable[Any]) -> Any:
        """Await a proxy call made with `_preload_content=False` (the client would turn its JSON
        into a Python repr); the parsed body, or KubeApiError with the Status it answered."""
        try:
            response = await request
        except ApiException as exc:
            raise _translated(exc) from exc
        try:
            body = await response.read()
        finally:
            response.release()
        if not 200 <= response.status <= 299:
            error = ApiException(status=response.status, reason=response.reason)
            error.body = body.decode(errors="replace")
            raise _translated(error)
        try:
            return json.loads(body)
        except ValueError as exc:
            raise KubeApiError(response.status, "BadResponse", f"the proxied answer is no JSON: {exc}") from exc

    def as_dict(self, obj: Any) -> dict[str, Any]:
        plain = self.api.sanitize_for_serialization(obj)
        return plain if isinstance(plain, dict) else {}

    async def close(self) -> None:
        await self.api.close()


def _translated(exc: ApiException) -> KubeApiError:
    reason, message = exc.reason or "", str(exc.body or exc.reason or "")
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        status = json.loads(exc.body)
        reason, message = status.get("reason") or reason, status.get("message") or message
    return KubeApiError(int(exc.status or 0), reason, f"{exc.status} {reason}: {message}")


async def connect(dry_run: bool = False, kubeconfig: Path | None = None) -> Kube:
    """In a pod, its service account (in-cluster config); else `kubeconfig`, else KUBECONFIG (its
    first file), else ~/.kube/config, as kubectl finds them."""
    configuration = client.Configuration()
    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST") and _SERVICE_ACCOUNT.exists():
            config.load_incluster_config(client_configuration=configuration)
        else:
            path = kubeconfig or _kubeconfig_from_environment()
            await config.load_kube_config(config_file=str(path), client_configuration=configuration)
    except (ConfigException, OSError) as exc:
        raise ConfigError(f"no Kubernetes API to talk to (in-cluster config or KUBECONFIG): {exc}") from exc
    return Kube(client.ApiClient(configuration), dry=dry_run)


def _kubeconfig_from_environment() -> Path:
    for entry in os.environ.get("KUBECONFIG", "").split(os.pathsep):
        if entry and Path(entry).exists():
            return Path(entry)
    return Path.home() / ".kube" / "config"


def controller_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The first owner reference with `controller: true` (apimachinery GetControllerOfNoCopy)."""
    for owner in obj.get("metadata", {}).get("ownerReferences") or []:
        if owner.get("controller"):
            return owner
    return None


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for entry in obj.get("status", {}).get("conditions") or []:
        if entry.get("type") == kind:
            return entry
    return None
