"""What the functions' tests share: triggers built by the worker's own publisher, the fake API
(kube_api.py) behind a kubeconfig, and one scenario per catalog function.

A scenario is the world before (objects in the API), the alert, the writes the function must send
(method, path, content type, in order) and a check of the world after.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_sre.functions import kube as kube_module
from agent_sre.functions import registry
from agent_sre.functions.ledger import Ledger, MemoryLedger
from agent_sre.functions.runner import Runner
from agent_sre.functions.trigger import Trigger, read_trigger
from agent_sre.schemas.alert import Alert
from agent_sre.schemas.catalog import load_catalog
from agent_sre.schemas.decision import Decision
from agent_sre.settings import Settings
from agent_sre.worker.publisher import build_trigger
from tests.kube_api import FakeKube, Request

CATALOG = load_catalog()


def alert_for(labels: dict[str, str], alertname: str = "TestAlert") -> Alert:
    return Alert(labels={"alertname": alertname, **labels}, annotations={"summary": "something is wrong"},
                 startsAt="2026-12-07T07:00:00Z")


def trigger_for(function: str, labels: dict[str, str], parameters: dict[str, str] | None = None,
                alertname: str = "TestAlert") -> Trigger:
    """The trigger the worker would publish (its own build_trigger), read back as a function reads it.
    `parameters` overrides what the catalog resolves: a forged or tampered trigger."""
    alert = alert_for(labels, alertname)
    resolved = CATALOG.resolve(function, alert) if parameters is None else parameters
    decision = Decision(lambda_function=function, parameters=resolved, confidence=0.9, method="static",
                        reasoning="the runbook says so")
    message = build_trigger(alert, decision, trace={"traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"})
    return read_trigger(message.body, message.headers, content_type=message.content_type, message_id=message.message_id)


def settings_for(**overrides: Any) -> Settings:
    return Settings(**{"functions_max_replicas": 5, "node_cleanup_paths": ["/var/log"], **overrides})


async def runner_for(fake: FakeKube, tmp_path: Path, *, dry_run: bool = False, ledger: Ledger | None = None,
                     **overrides: Any) -> Runner:
    kube = await kube_module.connect(dry_run=dry_run, kubeconfig=fake.kubeconfig(tmp_path / "kubeconfig"))
    fake.clients.append(kube)
    settings = settings_for(functions_dry_run=dry_run, **overrides)
    return Runner(settings, CATALOG, kube, ledger or MemoryLedger(3600), registry.ALL)


def _owned(kind: str = "ReplicaSet", name: str = "api-7f9c") -> list[dict[str, Any]]:
    return [{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": "rs-uid", "controller": True}]


def crashing_pod(name: str = "api-7f9", namespace: str = "shop", owned: bool = True, service: str = "api") -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": {"service": service}}
    if owned:
        metadata["ownerReferences"] = _owned()
    return {"kind": "Pod", "metadata": metadata, "spec": {"containers": [{"name": "api", "image": "api:1"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
                       "containerStatuses": [{"name": "api", "ready": False, "restartCount": 7, "image": "api:1",
                                              "imageID": "", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}


# What a Kustomization or HelmRelease names as its source by default (the objects: flux_source).
_SOURCE_OF = {"Kustomization": {"path": "./apps", "prune": True,
                                "sourceRef": {"kind": "GitRepository", "name": "flux-system"}},
              "HelmRelease": {"chart": {"spec": {"chart": "podinfo", "version": "6.x",
                                                 "sourceRef": {"kind": "HelmRepository", "name": "podinfo"}}}}}


def flux_object(kind: str, name: str = "apps", namespace: str = "flux-system", ready: str = "False",
                **spec: Any) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name, "namespace": namespace, "generation": 3},
            "spec": {"interval": "10m", **(spec or _SOURCE_OF.get(kind, {}))},
            "status": {"observedGeneration": 3, "lastHandledReconcileAt": "2026-12-06T23:00:00.000000Z",
                       "conditions": [{"type": "Ready", "status": ready, "reason": "ReconciliationFailed"}]}}


# Flux sources (source.toolkit.fluxcd.io/v1) as `flux create source …` writes them.
FLUX_SOURCES: dict[tuple[str, str], dict[str, Any]] = {
    ("GitRepository", "flux-system"): {"interval": "1m0s", "ref": {"branch": "main"}, "secretRef": {"name": "flux-system"},
                                       "url": "ssh://git@github.com/homelab/fleet"},
    ("OCIRepository", "podinfo"): {"interval": "5m", "url": "oci://ghcr.io/stefanprodan/manifests/podinfo",
                                   "ref": {"tag": "latest"}},
    ("Bucket", "fleet"): {"interval": "5m", "provider": "generic", "bucketName": "fleet",
                          "endpoint": "minio.minio.svc:9000", "insecure": True},
    ("HelmRepository", "podinfo"): {"interval": "1h", "url": "https://stefanprodan.github.io/podinfo"},
    ("HelmChart", "flux-system-apps"): {"chart": "podinfo", "version": "6.x", "interval": "1h",
                                        "reconcileStrategy": "ChartVersion",
                                        "sourceRef": {"kind": "HelmRepository", "name": "podinfo"}},
}


def flux_source(kind: str, name: str, namespace: str = "flux-system", **spec: Any) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name, "namespace": namespace, "generation": 1},
            "spec": {**FLUX_SOURCES[(kind, name)], **spec},
            "status": {"observedGeneration": 1, "lastHandledReconcileAt": "2026-12-06T23:00:00.000000Z",
                       "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded",
                                       "message": "stored artifact for revision 'main@sha1:abc'"}]}}


def deployment(name: str = "api", namespace: str = "shop", replicas: int = 2, paused: bool = False) -> dict[str, Any]:
    return {"kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "paused": paused, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": name, "image": f"{name}:1"}]}}}}


def hpa(target: str = "web", namespace: str = "shop", max_replicas: int = 3) -> dict[str, Any]:
    return {"kind": "HorizontalPodAutoscaler", "metadata": {"name": f"{target}-hpa", "namespace": namespace},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                     "minReplicas": 1, "maxReplicas": max_replicas}}


def failed_job(name: str = "backup-123", namespace: str = "shop", state: str = "Failed") -> dict[str, Any]:
    uid = "old-job-uid"
    generated = {"batch.kubernetes.io/controller-uid": uid, "controller-uid": uid, "job-name": name,
                 "batch.kubernetes.io/job-name": name}
    return {"kind": "Job", "metadata": {"name": name, "namespace": namespace, "uid": uid,
                                        "labels": {"app": "backup", **generated}},
            "spec": {"backoffLimit": 2, "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}},
                     "template": {"metadata": {"labels": {"app": "backup", **generated}},
                                  "spec": {"restartPolicy": "Never",
                                           "containers": [{"name": "backup", "image": "backup:1"}]}}},
            "status": {"failed": 3, "conditions": [{"type": state, "status": "True", "reason": "BackoffLimitExceeded"}]}}


def certificate(name: str = "web-tls", namespace: str = "shop", issuing: bool = False) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "False", "reason": "Expired"}]
    if issuing:
        conditions.append({"type": "Issuing", "status": "True", "reason": "Expired"})
    return {"kind": "Certificate", "metadata": {"name": name, "namespace": namespace, "generation": 2},
            "spec": {"secretName": name, "dnsNames": ["shop.example"], "issuerRef": {"name": "le"}},
            "status": {"conditions": conditions}}


def pvc(name: str = "data-db-0", namespace: str = "shop", storage_class: str = "longhorn") -> dict[str, Any]:
    return {"kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": namespace},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": storage_class,
                     "resources": {"requests": {"storage": "10Gi"}}, "volumeName": "pv-1"},
            "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"]}}


def storage_class(expandable: bool = True) -> dict[str, Any]:
    """Longhorn's (allowVolumeExpansion: true), or k3s's local-path one (the field absent: false)."""
    if expandable:
        return {"kind": "StorageClass", "metadata": {"name": "longhorn", "annotations": {
                    "storageclass.kubernetes.io/is-default-class": "true"}},
                "provisioner": "driver.longhorn.io", "allowVolumeExpansion": True, "reclaimPolicy": "Delete",
                "volumeBindingMode": "Immediate",
                "parameters": {"numberOfReplicas": "3", "staleReplicaTimeout": "2880", "fsType": "ext4"}}
    return {"kind": "StorageClass", "metadata": {"name": "local-path"}, "provisioner": "rancher.io/local-path",
            "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"}


def event(about: dict[str, Any], reason: str = "BackOff") -> dict[str, Any]:
    meta = about["metadata"]
    return {"kind": "Event", "metadata": {"name": f"{meta['name']}.1", "namespace": meta["namespace"]},
            "involvedObject": {"kind": about["kind"], "name": meta["name"], "namespace": meta["namespace"]},
            "reason": reason, "message": "Back-off restarting failed container", "type": "Warning", "count": 4,
            "lastTimestamp": "2026-12-07T07:00:00Z"}


Check = Callable[[FakeKube, list[Request]], None]


def flux_controller(kind: str, ready: str = "True", message: str = "Applied revision: main@sha1:abc") -> Callable[[FakeKube], None]:
    """A Flux controller's part, for the fake API: it handles each requestedAt it is patched with,
    setting lastHandledReconcileAt and Ready (as the controller would, a moment later)."""

    def install(fake: FakeKube) -> None:
        def handle(request: Request) -> None:
            if request.method != "PATCH" or request.query.get("dryRun") or not isinstance(request.body, dict):
                return
            stamp = ((request.body.get("metadata") or {}).get("annotations") or {}).get("reconcile.fluxcd.io/requestedAt")
            parts = request.path.split("/")  # /apis/GROUP/VERSION/namespaces/NS/PLURAL/NAME
            obj = fake.get(kind, parts[-1], parts[5]) if stamp and len(parts) == 8 else None
            if obj is None or f"/{obj['apiVersion']}/" not in request.path:
                return
            status = obj.setdefault("status", {})
            status["lastHandledReconcileAt"] = stamp
            status["observedGeneration"] = obj["metadata"]["generation"]
            status["conditions"] = [{"type": "Ready", "status": ready, "reason": "ReconciliationSucceeded"
                                     if ready == "True" else "ReconciliationFailed", "message": message}]

        fake.hooks.append(handle)

    return install


@dataclass
class Scenario:
    function: str
    labels: dict[str, str]
    objects: list[dict[str, Any]]
    writes: list[tuple[str, str, str]]  # (method, path, content type), in order
    check: Check = field(default=lambda fake, writes: None)
    needs_kube: bool = True
    controllers: tuple[Callable[[FakeKube], None], ...] = ()  # what acts in the cluster meanwhile
    # With an opt-in setting (a Settings field) on, the writes instead.
    opted_writes: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)

    def writes_with(self, settings: dict[str, Any]) -> list[tuple[str, str, str]]:
        opted = [self.opted_writes[name] for name, on in settings.items() if on and name in self.opted_writes]
        return opted[0] if opted else self.writes

    def seed(self, fake: FakeKube) -> None:
        for obj in self.objects:
            fake.add(copy.deepcopy(obj))
        for install in self.controllers:
            install(fake)
