"""Which source projects the real-alert knowledge comes from, and the folds that hold whole ones out.

`GROUPS` split every source into four groups (the kube-prometheus-stack/Flux/cert-manager
standard, awesome-prometheus-alerts, homelabs, operators); each is held out in turn by the
leave-one-group-out benchmark, so every source is scored by models that never learned from it.

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


OPERATORS = {"rook-ceph", "longhorn", "strimzi", "cloudnative-pg", "victoriametrics", "metallb", "ingress-nginx"}
# The folds of the leave-one-group-out evaluation: every source in exactly one of them.
GROUPS = {
    "standard": lambda source: source in STANDARD,
    "awesome": lambda source: source == "awesome-prometheus-alerts",
    "homelabs": lambda source: source.startswith(("homelab/", "home-ops/", "payload/")),
    "operators": lambda source: source in OPERATORS,
}
# `other`: every project outside the big collections (issue 9's second fold).
FOLD_MEMBERS = {**GROUPS, "other": lambda source: source not in COLLECTIONS}
FOLDS = set(FOLD_MEMBERS)


def fold_of(source: str) -> str:
    """The group of the leave-one-group-out evaluation that holds `source`."""
    for fold, member in GROUPS.items():
        if member(source):
            return fold
    raise ValueError(f"source {source!r} is in no group of agent_sre/knowledge/sources.py: add it to one")


def held_out(alerts: list[RealAlert], fold: str) -> tuple[list[RealAlert], list[RealAlert]]:
    """(the lines to learn from, the lines of the fold's held-out sources)."""
    if fold not in FOLDS:
        raise ValueError(f"unknown fold {fold!r}; use one of {sorted(FOLDS)}")
    test = [a for a in alerts if FOLD_MEMBERS[fold](a.source)]
    held = {a.alert for a in test}
    # A name that a held-out project shares with a training one (KubePodCrashLooping in a homelab's
    # copy of the mixin) would leak the answer: it is held out wherever it appears.
    return [a for a in alerts if a.alert not in held], test
