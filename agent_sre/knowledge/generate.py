"""A seeded generator that expands the runbook into labelled alerts.

Each runbook alert pattern becomes many alerts with varied label sets: the labels that carry the
function's parameters (through one of the catalog's sources, so `exported_namespace` next to a
Flux controller's `namespace`, or `instance` with a port instead of `node`), the extra labels such
alerts usually carry, a summary from the runbook's `says` templates, and metric context where the
right answer depends on it. The test split uses only the runbook's held-out alert names and its
own pools of values, so it measures generalisation to unseen alert families and unseen names.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from ..schemas.alert import Alert
from ..schemas.catalog import ESCALATE, Catalog, FunctionSpec
from .runbook import AlertPattern, RunbookEntry

SPLITS = ("train", "val", "test")
_TEXT_KEYS = ("summary", "description")

POOLS = {
    "train": {
        "app": ["homepage", "grafana", "api", "web", "frontend", "payments", "nextcloud", "immich", "vaultwarden",
                "loki", "tempo", "gitea", "paperless", "sonarr", "radarr", "traefik", "authentik", "minio",
                "backend", "worker", "search", "notifier", "infra-controllers", "apps", "podinfo", "checkout"],
        "namespace": ["default", "flux-system", "monitoring", "media", "apps", "home", "web", "auth", "storage",
                      "observability", "ingress", "tools", "production", "staging"],
        "node": ["node-1", "node-2", "worker-03", "k3s-master", "pi4-a", "nuc-01", "storage-01", "gpu-node"],
    },
    "test": {
        "app": ["jellyfin", "mealie", "bookstack", "n8n", "umami", "matrix", "adguard", "photoprism", "calibre",
                "uptime-kuma", "cart", "ledger", "billing-api", "cluster-apps"],
        "namespace": ["selfhosted", "default", "flux-system", "household", "finance", "smart-home", "networking",
                      "prod", "dev"],
        "node": ["node-7", "edge-02", "rock5b", "server-b", "nas-01", "control-2"],
    },
}
_REASONS = ["CrashLoopBackOff", "ImagePullBackOff", "Error", "ContainerCreating", "CreateContainerConfigError"]
_RESTARTABLE = ["CrashLoopBackOff", "Error", "ContainerCreating"]  # what a crash-looping alert carries
_FLUX_KINDS = {
    "flux-reconcile-kustomization": "Kustomization",
    "flux-reconcile-gitrepository": "GitRepository",
    "flux-reconcile-helmrelease": "HelmRelease",
}
# Metric context for the CPU alerts whose answer depends on the request-rate trend. Both answers
# are drawn from the same label sets and summaries, so only the trend can tell them apart.
_CPU_SAYS = ("CPU of {pod} is high", "CPU usage is high", "{pod} is using {cpu}% of its CPU limit",
             "high CPU on {namespace}/{pod}", "container {container} is CPU saturated", "CPU at {cpu}%")
_RISING = ("growing", "rising", "increasing", "up", "spiking", "climbing", "surging")
_FLAT = ("flat", "steady", "stable", "unchanged", "normal", "constant")
_FALLING = ("falling", "dropping", "decreasing", "down")  # CPU high while traffic falls: not a scaling case
_TRENDS = ("request rate {word} {change:+d}% in 15m", "traffic is {word}", "traffic {word} {change:+d}%",
           "requests {word} at {rps} req/s", "request rate {word} ({rps} req/s)", "load is {word}",
           "{rps} req/s and {word}", "incoming requests are {word}", "rps {word} {change:+d}% over 1h")
_RATE_KEYS = ("request_rate_change", "traffic_change", "rps_change", "requests_trend", "traffic_trend")


@dataclass(frozen=True)
class Example:
    alert: Alert
    function: str
    family: str  # the runbook alert name it was expanded from


def generate(
    entries: dict[str, RunbookEntry], catalog: Catalog, split: str, per_pattern: int, seed: int
) -> list[Example]:
    """`per_pattern` alerts for every runbook pattern of the split, reproducible from `seed`."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    rng = random.Random(f"{split}/{seed}")
    pools = POOLS["test" if split == "test" else "train"]
    examples = []
    for function, entry in entries.items():
        patterns = entry.held_out if split == "test" else entry.alerts
        # escalate has many more names than any other function; halve its share to keep balance
        count = max(1, per_pattern // 2) if function == ESCALATE else per_pattern
        for pattern in patterns:
            if pattern.context:
                # twice the share, and pairs: draw i of PodCPUHigh (rising) has the same labels and
                # summary as draw i of PodCPUHigh (flat); only the trend differs
                for i in range(2 * count):
                    base = random.Random(f"{split}/{seed}/{pattern.name}/{i}")
                    alert = _context_alert(base, rng, pools, pattern)
                    examples.append(Example(alert, function, pattern.name))
                continue
            for _ in range(count):
                alert = _alert(rng, pools, entry, catalog.by_name[function], pattern)
                examples.append(Example(alert, function, pattern.name))
    rng.shuffle(examples)
    return examples


def _alert(rng: random.Random, pools: dict, entry: RunbookEntry, spec: FunctionSpec, pattern: AlertPattern) -> Alert:
    app = rng.choice(pools["app"])
    value = value_maker(rng, pools, app, spec.name)
    labels: dict[str, str] = {"alertname": pattern.name}
    for param in spec.parameters:
        keys = [s.partition(":")[0] for s in param.sources]
        if spec.name == "scale-pod":
            keys = [k for k in keys if k != "pod"]  # an HPA alert names its HPA or workload, not a pod
        chosen = _choose_sources(rng, keys, param.required)
        for key in chosen:
            labels.setdefault(key, value(key))
        if "exported_namespace" in chosen and "namespace" not in labels:
            labels["namespace"] = "flux-system"  # where the Flux controllers run
    if pattern.label_condition:
        key, wanted = pattern.label_condition
        # A generic Flux alert without its kind label is about a Kustomization, as in the seeds' curl.
        if not (wanted == "Kustomization" and rng.random() < 0.25):
            labels[key] = wanted
    # Some alerts carry nothing but what the rule sets (as the seeds' examples do), so no label,
    # not even severity, may be taken for granted: the model must not rely on where a label sits.
    extra = 0.0 if rng.random() < 0.2 else 0.45
    for key in entry.extra_labels:
        if key not in labels and rng.random() < extra:
            labels[key] = value(key)
    if rng.random() < 0.7:
        labels.setdefault("severity", value("severity"))
    annotations = _annotations(rng, entry, labels, pattern)
    return Alert(labels=labels, annotations=annotations)


def _choose_sources(rng: random.Random, keys: list[str], required: bool) -> list[str]:
    if not required and rng.random() < 0.5:
        return []
    if len(keys) == 1:
        return keys
    # Usually one source, sometimes several: then the catalog's order of preference decides.
    first = rng.randrange(len(keys))
    return [k for i, k in enumerate(keys) if i == first or rng.random() < 0.3]


def value_maker(rng: random.Random, pools: dict, app: str, function: str) -> Callable[[str], str]:
    node = rng.choice(pools["node"])
    suffix = "".join(rng.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
    values: dict[str, Callable[[], str]] = {
        "name": lambda: f"{app}-tls" if function == "certificate-renew" and rng.random() < 0.5 else app,
        "certificate": lambda: f"{app}-tls",
        "namespace": lambda: rng.choice(pools["namespace"]),
        "exported_namespace": lambda: rng.choice(pools["namespace"]),
        "pod": lambda: f"{app}-{rng.randrange(16**8):08x}"[:-rng.randrange(0, 3) or None] + f"-{suffix}"
        if rng.random() < 0.7 else f"{app}-{rng.randrange(3)}",
        "persistentvolumeclaim": lambda: rng.choice([f"data-{app}-0", f"{app}-config", f"{app}-pvc", f"{app}-data"]),
        "node": lambda: node,
        "instance": lambda: f"{node}:9100" if function == "node-disk-cleanup" or rng.random() < 0.3
        else f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}:{rng.choice([8080, 9100, 443])}",
        "job": lambda: rng.choice(["kube-state-metrics", "node-exporter", "kubelet", app, "blackbox", "apiserver"]),
        "job_name": lambda: rng.choice([f"{app}-backup-{rng.randrange(10**7, 10**8)}", f"{app}-migrate", f"{app}-sync"]),
        "reason": lambda: rng.choice(_RESTARTABLE if function == "pod-restart" else _REASONS),
        "type": lambda: rng.choice(_REASONS),
        "replicas": lambda: str(rng.randrange(2, 13)),
        "kind": lambda: _FLUX_KINDS.get(function) or rng.choice(list(_FLUX_KINDS.values())),
        "customresource_kind": lambda: _FLUX_KINDS.get(function) or rng.choice(list(_FLUX_KINDS.values())),
        "customresource_group": lambda: rng.choice(["kustomize.toolkit.fluxcd.io", "helm.toolkit.fluxcd.io",
                                                    "source.toolkit.fluxcd.io"]),
        "customresource_version": lambda: rng.choice(["v1", "v2"]),
        "ready": lambda: "False",
        "suspended": lambda: "false",
        "url": lambda: f"https://github.com/homelab/{app}",
        "revision": lambda: f"main@sha1:{rng.randrange(16**12):012x}",
        "version": lambda: f"{rng.randrange(1, 9)}.{rng.randrange(20)}.{rng.randrange(10)}",
        "device": lambda: rng.choice(["/dev/sda1", "/dev/nvme0n1p2", "/dev/mmcblk0p2"]),
        "fstype": lambda: rng.choice(["ext4", "xfs", "btrfs"]),
        "mountpoint": lambda: rng.choice(["/", "/var/lib/rancher", "/var/lib/containerd", "/boot"]),
        "storageclass": lambda: rng.choice(["longhorn", "local-path", "nfs-client", "ceph-block"]),
        "condition": lambda: rng.choice(["False", "Unknown"]),
        "issuer_name": lambda: rng.choice(["letsencrypt-prod", "letsencrypt-staging", "selfsigned"]),
        "endpoint": lambda: rng.choice(["http-metrics", "https", "web", "metrics"]),
        "prometheus": lambda: "monitoring/kube-prometheus-stack-prometheus",
        "uid": lambda: f"{rng.randrange(16**8):08x}-{rng.randrange(16**4):04x}-4{rng.randrange(16**3):03x}",
        "severity": lambda: rng.choice(["warning", "critical", "warning", "info"]),
        "cluster": lambda: rng.choice(["homelab", "prod-eu", "k3s"]),
    }
    return lambda key: values.get(key, lambda: app)()  # deployment, service, container, chart, ...


def _annotations(rng: random.Random, entry: RunbookEntry, labels: dict[str, str], pattern: AlertPattern) -> dict[str, str]:
    annotations: dict[str, str] = {}
    templates = [t for t in entry.says if fillable(t, labels)]
    summary = rng.choice(templates).format(**labels) if templates and rng.random() < 0.75 else ""
    return _with_text(rng, annotations, summary, pattern)


def _with_text(rng: random.Random, annotations: dict[str, str], summary: str, pattern: AlertPattern) -> dict[str, str]:
    """`annotations` plus the summary (now and then under another text key) and sometimes a runbook URL."""
    if summary:
        annotations[rng.choice(_TEXT_KEYS) if rng.random() < 0.2 else "summary"] = summary
    if rng.random() < 0.2:
        annotations["runbook_url"] = f"https://runbooks.example.org/{pattern.name.lower()}"
    return annotations


def _context_alert(base: random.Random, rng: random.Random, pools: dict, pattern: AlertPattern) -> Alert:
    """A CPU alert as container metrics label it; `base` draws what both answers share, `rng` the trend."""
    app = base.choice(pools["app"])
    value = value_maker(base, pools, app, "")
    labels = {"alertname": pattern.name, "pod": value("pod"), "namespace": value("namespace")}
    for key, share in (("container", 0.5), ("deployment", 0.2), ("instance", 0.3), ("job", 0.3), ("node", 0.2),
                       ("service", 0.2), ("severity", 0.7)):
        if base.random() < share:
            labels[key] = value(key)
    cpu = base.randrange(80, 100)
    summary = base.choice(_CPU_SAYS).format(**{"cpu": cpu, "container": app, **labels})
    summary = summary if base.random() < 0.8 else ""
    annotations: dict[str, str] = {}
    if base.random() < 0.3:
        annotations["cpu_usage"] = f"{cpu}%"
    rising = pattern.context == "rising"
    where = rng.choice(["annotation", "summary", "both"] if rising else ["annotation", "summary", "both", "none"])
    if rising:
        change, word = rng.randrange(25, 400), rng.choice(_RISING)
    elif rng.random() < 0.25:
        change, word = -rng.randrange(15, 70), rng.choice(_FALLING)
    else:
        change, word = rng.randrange(-6, 7), rng.choice(_FLAT)
    if rising and where == "annotation" and rng.random() < 0.3:
        # the seeds' form: a high request rate and memory headroom, no trend word
        annotations["request_rate"] = f"{rng.randrange(150, 5000)} req/s"
        if rng.random() < 0.5:
            limit = rng.choice([1, 2, 4, 8])
            annotations["memory_usage"] = f"{limit * rng.uniform(0.2, 0.8):.1f}Gi / {limit}Gi"
    elif where in ("annotation", "both"):
        annotations[rng.choice(_RATE_KEYS)] = f"{change:+d}%" if rng.random() < 0.7 else word
    if where in ("summary", "both"):
        trend = rng.choice(_TRENDS).format(word=word, change=change, rps=rng.randrange(20, 5000))
        summary = f"{summary}, {trend}" if summary and rng.random() < 0.8 else f"{trend}; {summary}" if summary else trend
    return Alert(labels=labels, annotations=_with_text(rng, annotations, summary, pattern))


def fillable(template: str, labels: dict[str, str]) -> bool:
    try:
        template.format(**labels)
    except (KeyError, IndexError, ValueError):
        return False
    return True
