"""Which source projects the real-alert knowledge comes from, and the folds that hold whole ones out.

A model is judged on alerts from projects it never learned from: `agent-sre trm train --hold-out
FOLD` trains without a fold's sources, and benchmarks/bench_real.py tests on exactly those.
"""

from __future__ import annotations

from .real import RealAlert

KUBE_PROMETHEUS_STACK = {
    "kubernetes-mixin", "node-exporter-mixin", "prometheus-mixin", "alertmanager-mixin", "etcd-mixin",
    "kube-state-metrics", "prometheus-operator", "kube-prometheus",
}
STANDARD = KUBE_PROMETHEUS_STACK | {"flux-monitoring", "flux-notification", "cert-manager"}
COLLECTIONS = STANDARD | {"awesome-prometheus-alerts"}


def _in_fold(fold: str, source: str) -> bool:
    return source in STANDARD if fold == "standard" else source not in COLLECTIONS


FOLDS = {"standard", "other"}


def held_out(alerts: list[RealAlert], fold: str) -> tuple[list[RealAlert], list[RealAlert]]:
    """(the lines to learn from, the lines of the fold's held-out sources)."""
    if fold not in FOLDS:
        raise ValueError(f"unknown fold {fold!r}; use one of {sorted(FOLDS)}")
    test = [a for a in alerts if _in_fold(fold, a.source)]
    held = {a.alert for a in test}
    # A name that a held-out project shares with a training one (KubePodCrashLooping in a homelab's
    # copy of the mixin) would leak the answer: it is held out wherever it appears.
    return [a for a in alerts if a.alert not in held], test
