"""The alerts real clusters send, as data: `agent_sre/data/real_alerts.jsonl`.

One line per alert rule of a public rule collection (kube-prometheus-stack's mixins, Flux, its
notification-controller's Alertmanager events, cert-manager, awesome-prometheus-alerts, and other
projects' and homelabs' rule files), with the facts of each: its name, the label keys its series
really carry (`labels`, about the subject, and `target_labels`, the scrape labels that survive the
expression), the exporter, severity, source project, and the action with the reason, in our words.
`condition` restricts a line to alerts whose labels have those values (`kind=HelmRelease`).

`real_examples` turns lines into alerts with realistic values, the exporter's own scrape labels
included (a kube-state-metrics Job alert carries the exporter's `pod` and pod-IP `instance`), so
that the models learn from what clusters send and the benchmark measures it.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import CatalogError
from ..schemas.alert import Alert
from ..schemas.catalog import ESCALATE, Catalog
from ..schemas.decision import Proposal
from .generate import POOLS, Example, fillable, value_maker

IGNORE = "ignore"
# What the models learn from: a third of an active line's alerts carry an app's word in their name.
RENAMED_SHARE = 1 / 3


@dataclass(frozen=True)
class RealAlert:
    alert: str
    source: str
    group: str
    severity: str
    labels: tuple[str, ...]
    target_labels: tuple[str, ...]
    exporter: str
    condition: tuple[tuple[str, str], ...]  # (label, value) pairs; empty: any alert of that name
    action: str  # a catalog function, escalate, or ignore
    says: str
    reason: str

    def applies_to(self, alert: Alert) -> bool:
        return all(alert.labels.get(key) == value for key, value in self.condition)


def load_real_alerts(path: Path | None = None) -> list[RealAlert]:
    if path is None:
        text = resources.files("agent_sre.data").joinpath("real_alerts.jsonl").read_text()
    else:
        text = Path(path).read_text()
    alerts = []
    for line in text.splitlines():
        if line.strip():
            row = json.loads(line)
            alerts.append(
                RealAlert(
                    alert=row["alert"], source=row["source"], group=row.get("group", ""),
                    severity=row.get("severity", ""), labels=tuple(row.get("labels", ())),
                    target_labels=tuple(row.get("target_labels", ())), exporter=row.get("exporter", ""),
                    condition=tuple(sorted((row.get("condition") or {}).items())), action=row["action"],
                    says=row.get("says", ""), reason=row.get("reason", ""),
                )
            )
    return alerts


# What kube-prometheus-stack's ServiceMonitors add for the common exporters: (job, port, container, service).
_EXPORTERS = {
    "kube-state-metrics": ("kube-state-metrics", 8080, "kube-state-metrics", "kube-prometheus-stack-kube-state-metrics"),
    "node-exporter": ("node-exporter", 9100, "node-exporter", "kube-prometheus-stack-prometheus-node-exporter"),
    "kubelet": ("kubelet", 10250, "", "kube-prometheus-stack-kubelet"),
    "cadvisor": ("kubelet", 10250, "", "kube-prometheus-stack-kubelet"),
    "apiserver": ("apiserver", 6443, "", "kubernetes"),
    "prometheus": ("kube-prometheus-stack-prometheus", 9090, "prometheus", "kube-prometheus-stack-prometheus"),
    "alertmanager": ("kube-prometheus-stack-alertmanager", 9093, "alertmanager", "kube-prometheus-stack-alertmanager"),
    "cert-manager": ("cert-manager", 9402, "cert-manager-controller", "cert-manager"),
}


def real_examples(
    alerts: list[RealAlert],
    per_alert: int,
    seed: int,
    pools: str = "train",
    include_ignored: bool = False,
    renamed: float = 0.0,
) -> list[Example]:
    """`per_alert` alerts for each line, reproducible from `seed`; `ignore` lines (which no selector
    is asked about) only with `include_ignored`, labelled `ignore`.

    `renamed`: the share of an active line's alerts whose name gets an app's word in front, or in
    place of its first word (`KubeJobFailed` as `PaperlessJobFailed`). Homelabs name their own rules
    after their apps; without this a model learns that an unfamiliar word in the name means
    `escalate`, since most real lines with unfamiliar words are escalate. Escalate lines keep their
    names: there the vendor word (`Postgresql`) is often the very reason."""
    rng = random.Random(f"real/{seed}")
    siblings: dict[str, list[RealAlert]] = {}
    for entry in alerts:
        siblings.setdefault(entry.alert, []).append(entry)
    examples = []
    for entry in alerts:
        if entry.action == IGNORE and not include_ignored:
            continue
        # An unconditioned line must not be drawn with a value that a sibling line's condition names.
        taken = {kv for other in siblings[entry.alert] if other is not entry for kv in other.condition}
        # Most real lines are escalate, and the few active ones must not drown: a third of the share
        # for escalate, twice for the rest.
        for _ in range(max(1, per_alert // 3) if entry.action == ESCALATE else 2 * per_alert):
            alert = real_alert(entry, rng, POOLS[pools], taken)
            if entry.action not in (ESCALATE, IGNORE) and rng.random() < renamed:
                alert = _renamed(alert, rng, POOLS[pools]["app"])
            examples.append(Example(alert, entry.action, f"{entry.source}:{entry.alert}"))
    return examples


def _renamed(alert: Alert, rng: random.Random, apps: list[str]) -> Alert:
    app = "".join(part.capitalize() for part in rng.choice(apps).split("-"))
    words = re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+", alert.alertname)
    name = app + "".join(words[1:]) if len(words) > 2 and rng.random() < 0.5 else app + alert.alertname
    return alert.model_copy(update={"labels": {**alert.labels, "alertname": name}})


def expected_answer(example: Example, catalog: Catalog) -> tuple[str, dict[str, str]]:
    """The right answer to one example: its line's action with exactly the labels' values, except
    that an active function whose required parameters the labels cannot give (a node-exporter
    `instance` that is a pod IP) is `escalate`: only a human can tell what to act on."""
    if example.function in (ESCALATE, IGNORE):
        return example.function, {}
    try:
        proposal = Proposal(lambda_function=example.function, confidence=1.0)
        return example.function, catalog.validate_proposal(proposal, example.alert, set())
    except CatalogError:
        return ESCALATE, {}


def real_alert(entry: RealAlert, rng: random.Random, pools: dict, taken: set[tuple[str, str]] = frozenset()) -> Alert:
    app = rng.choice(pools["app"])
    value = value_maker(rng, pools, app, entry.action)
    labels: dict[str, str] = {"alertname": entry.alert}
    for key in entry.labels:
        labels[key] = value(key)
    labels.update(_target_labels(entry, rng, value, app))
    if "kind" in labels and (kind := _flux_kind(entry.alert)):
        labels["kind"] = kind  # the notification-controller names the event after the object's kind
        if "reason" in labels:  # and after the event's reason, which it also sends as a label
            labels["reason"] = entry.alert.removeprefix(f"Flux{kind}")
    labels.update(dict(entry.condition))
    for key, wanted in taken:
        if labels.get(key) == wanted:
            labels[key] = f"{wanted}-other"
    if entry.severity:  # a rule's own label: every alert of it carries it
        labels["severity"] = entry.severity
    if rng.random() < 0.5:
        labels["prometheus"] = "monitoring/kube-prometheus-stack-prometheus"
    annotations: dict[str, str] = {}
    if entry.says and fillable(entry.says, labels) and rng.random() < 0.8:
        annotations["summary" if rng.random() < 0.7 else "description"] = entry.says.format(**labels)
    if rng.random() < 0.3:
        annotations["runbook_url"] = f"https://runbooks.example.org/{entry.group or entry.source}/{entry.alert.lower()}"
    return Alert(labels=labels, annotations=annotations)


_FLUX_KINDS = ("Kustomization", "HelmRelease", "GitRepository", "HelmRepository", "OCIRepository", "HelmChart",
               "Bucket", "FluxInstance", "ResourceSet", "ImageRepository", "ImagePolicy", "ImageUpdateAutomation")


def _flux_kind(alertname: str) -> str | None:
    return next((kind for kind in _FLUX_KINDS if alertname.startswith(f"Flux{kind}")), None)


def _target_labels(entry: RealAlert, rng: random.Random, value, app: str) -> dict[str, str]:
    job, port, container, service = _EXPORTERS.get(
        entry.exporter, (entry.exporter or app, rng.choice([8080, 9090, 9100, 9187, 9121]), entry.exporter or app,
                         entry.exporter or app)
    )
    ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    node = value("node")
    suffix = "".join(rng.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
    made = {
        "job": job,
        # node-exporter's instance is the node's name where the ServiceMonitor relabels it, else the pod IP
        "instance": f"{node}:{port}" if entry.exporter == "node-exporter" and rng.random() < 0.5 else f"{ip}:{port}",
        "pod": f"{service}-{rng.randrange(16**9):09x}"[:-4] + f"-{suffix}" if service else f"{job}-{suffix}",
        "container": container or job,
        "service": service or job,
        "endpoint": rng.choice(["http", "http-metrics", "https-metrics", "metrics"]),
        "namespace": "monitoring" if entry.exporter in _EXPORTERS else value("namespace"),
        "node": node,
    }
    return {key: made.get(key) or value(key) for key in entry.target_labels}
