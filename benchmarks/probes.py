"""Alerts written by hand, not by the generator: the seeds' examples and the multi-condition case
(PodCPUHigh: scale when traffic grows, restart when it does not) in plain phrasings, plus alerts
of kinds the runbook never mentions, whose only safe answers are `escalate` or no decision."""

from __future__ import annotations

from agent_sre.schemas.alert import Alert

_CPU = {"alertname": "PodCPUHigh", "pod": "shop-api-7d9f8b6c4-x2x7q", "namespace": "production"}
_CONTAINER = {"alertname": "ContainerCpuUsageHigh", "pod": "search-0", "namespace": "web", "container": "search"}

# (alert, the right function; None = escalate or no decision are both right)
PROBES: list[tuple[Alert, str | None]] = [
    (Alert(labels=_CPU, annotations={"summary": "CPU usage is high, CPU at 91% and traffic is rising"}), "scale-pod"),
    (Alert(labels=_CPU, annotations={"summary": "CPU at 85%, request rate growing 1000 req/s"}), "scale-pod"),
    (Alert(labels=_CPU, annotations={"request_rate_change": "+150%"}), "scale-pod"),
    (Alert(labels=_CONTAINER, annotations={"summary": "requests per second doubled in the last hour"}), "scale-pod"),
    (Alert(labels=_CPU, annotations={"summary": "CPU at 92% and traffic is flat"}), "pod-restart"),
    (Alert(labels=_CPU, annotations={"request_rate_change": "+1%"}), "pod-restart"),
    (Alert(labels=_CONTAINER, annotations={"summary": "traffic steady at 200 req/s"}), "pod-restart"),
    (Alert(labels=_CPU, annotations={"summary": "CPU pegged while traffic is dropping"}), "pod-restart"),
    (Alert(labels={"alertname": "FluxReconciliationFailure", "name": "homepage", "namespace": "flux-system",
                   "kind": "Kustomization"}), "flux-reconcile-kustomization"),
    (Alert(labels={"alertname": "PodCrashLoopBackOff", "pod": "homepage-6d4cf56db6-x2x7q", "namespace": "web"}),
     "pod-restart"),
    (Alert(labels={"alertname": "TotallyUnknownThing"}), None),
    (Alert(labels={"alertname": "NginxIngressHigh5xxRate", "ingress": "shop", "namespace": "web"}), None),
    (Alert(labels={"alertname": "LonghornVolumeFaulted", "volume": "pvc-123", "namespace": "longhorn-system"}), None),
]


def right(expected: str | None, chosen: str | None) -> bool:
    return chosen in (None, "escalate") if expected is None else chosen == expected
