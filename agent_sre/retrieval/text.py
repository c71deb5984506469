"""Turning alerts and runbook lines into the short texts that retrieval compares.

Annotation text is data: it is capped, so that a huge annotation cannot blow up latency or
memory, and it only ever adds words to compare. Nothing read here is acted on; parameters come
from the catalog's label sources alone.
"""

from __future__ import annotations

import re
from collections.abc import Container

from ..schemas.alert import Alert

MAX_ANNOTATION_CHARS = 300
# Labels whose names say nothing about the situation (every alert has them).
_NOISE_LABELS = frozenset({"alertname", "severity", "prometheus", "uid", "cluster", "endpoint", "instance"})
# Labels whose values are a small vocabulary worth comparing (not free-form object names). Not
# `job`: it names the exporter (kube-state-metrics for most Kubernetes alerts), not the problem,
# and it would match the runbook's KubeStateMetricsDown.
_VALUE_LABELS = ("kind", "reason", "type", "condition")
_TEXT_ANNOTATIONS = ("summary", "description", "message")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_TOKEN = re.compile(r"[a-z0-9]+")
_PERCENT = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*%\s*$")
_TREND_KEYS = ("rate", "traffic", "rps", "request")


def split_words(name: str) -> str:
    """`KubePodCrashLooping` -> `Kube Pod Crash Looping`; `etcdNoLeader` -> `etcd No Leader`."""
    return " ".join(_CAMEL.findall(name)) or name


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens for BM25; CamelCase names are split into their words first."""
    words = []
    for chunk in text.split():
        words.extend(_TOKEN.findall(split_words(chunk).lower()))
    return words


def known_share(alert: Alert, vocabulary: Container[str]) -> float:
    """The share of the alert name's words that the index has seen: a stranger's neighbours prove little."""
    words = tokenize(alert.alertname)
    return sum(word in vocabulary for word in words) / len(words) if words else 0.0


def cap(text: str, limit: int = MAX_ANNOTATION_CHARS) -> str:
    return text if len(text) <= limit else text[:limit]


def alert_text(alert: Alert, max_chars: int = MAX_ANNOTATION_CHARS) -> str:
    """The alert as one line: its name in words, its label names, a few categorical values, its summary."""
    parts = [split_words(cap(alert.alertname, 200))]
    keys = sorted(k for k in alert.labels if k not in _NOISE_LABELS)
    if keys:
        parts.append(cap("labels: " + " ".join(keys), max_chars))
    values = [f"{k} {cap(alert.labels[k], 40)}" for k in _VALUE_LABELS if alert.labels.get(k)]
    if values:
        parts.append(" ".join(values))
    parts.extend(_trend_words(alert))
    texts = [cap(alert.annotations[k], max_chars) for k in _TEXT_ANNOTATIONS if alert.annotations.get(k)]
    if texts:
        parts.append(cap(" ".join(texts), max_chars))
    return ". ".join(parts)


def _trend_words(alert: Alert) -> list[str]:
    """A request-rate annotation such as `traffic_change: +120%` read as `traffic rising` or `traffic flat`.

    The runbook keys scale-pod versus pod-restart on this trend; a number alone means little to
    either retriever, so it is restated in the runbook's own words.
    """
    words = []
    for key, value in alert.annotations.items():
        match = _PERCENT.match(value[:20])
        if match is None or not any(part in key.lower() for part in _TREND_KEYS):
            continue
        change = float(match[1])
        if change >= 15:
            words.append("traffic rising")
        elif abs(change) <= 10:
            words.append("traffic flat")
    return words[:1]
