"""Which alerts are about a stateful data service, or an operator's own namespace: no robot restarts those.

A database, a queue, a coordination or a storage system keeps state that a restart at the wrong
moment loses or splits (a primary failing over, a quorum losing a member, a rebalance), and an
operator that owns a namespace restarts its pods itself. Restarting, rolling or scaling them is a
human's call, whatever a model proposes (issue 20: a MongoDB StatefulSet, KubeVirt's `virt-handler`
in `openshift-cnv` and a crash-looping PostgreSQL were restarted by rag, "confirmed" by fewshot).

A service is recognised from the words of the alert's name and of a few label values: the names
of workloads, containers, apps, jobs, services and namespaces (AGENT_SRE_STATEFUL_LABELS).
- A label value is split on everything but letters and digits, and a piece's trailing digits are
  dropped: `mongo-rs0-1` reads `mongo rs`, `redis-master` `redis master`, `etcd0` `etcd`. A piece
  with digits inside (`7db9c8f`, a ReplicaSet's hash) is no word, so a hash never reads as `db`.
- A piece, or an alert name, is split into its CamelCase words too, and two neighbouring words are
  also read joined: `MySQLReplicationLag` reads `my sql mysql ...`, `MongoDBDown` `mongo db mongodb ...`.
- A piece that loses its digits must keep three letters: `db258`, a pod's random suffix, is no `db`.
- A word matches only as a whole: `rediscover` is not `redis`, `vaultwarden` is not `vault`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from fnmatch import fnmatchcase

from ..schemas.alert import Alert

MAX_VALUE_CHARS = 256  # a label value longer than any workload name is read only this far
MIN_NUMBERED_CHARS = 3  # `etcd0` is etcd, but `db258` is an id (a pod's random suffix), not `db`
_PIECE = re.compile(r"[A-Za-z0-9]+")
_CAMEL_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+")
_TRAILING_DIGITS = re.compile(r"\d+$")
_DIGITS = re.compile(r"\d+")


def words(text: str) -> Iterator[str]:
    """The lower-cased words of a name or label value, and each pair of neighbouring CamelCase words joined."""
    for piece in _PIECE.findall(text[:MAX_VALUE_CHARS]):
        word = _TRAILING_DIGITS.sub("", piece)
        numbered = word != piece
        if any(char.isdigit() for char in word) or len(word) < (MIN_NUMBERED_CHARS if numbered else 1):
            continue
        parts = [part.lower() for part in _CAMEL_WORD.findall(word)]
        yield from parts
        yield from (first + second for first, second in zip(parts, parts[1:]))


class StatefulServices:
    """Says why an alert is about a stateful data service or an operator's namespace, or None."""

    def __init__(self, services: Iterable[str], labels: Iterable[str], operator_namespaces: Iterable[str]) -> None:
        self.services = frozenset(service.lower() for service in services)
        self.labels = tuple(labels)
        self.namespaces = tuple(operator_namespaces)

    def refusal(self, alert: Alert) -> str | None:
        for key in ("namespace", "exported_namespace"):
            namespace = alert.labels.get(key, "")
            if glob := next((g for g in self.namespaces if fnmatchcase(namespace, g)), None):
                return f"{key}={namespace} is owned by an operator ({glob}): not restarted by a robot"
        for key in self.labels:
            value = alert.labels.get(key)
            if value and (service := self._service(value)):
                return f"{key}={value[:MAX_VALUE_CHARS]} is a stateful data service ({service}): not restarted by a robot"
        if service := self._service(_DIGITS.sub(" ", alert.alertname)):  # a name has no hashes
            return f"the alert {alert.alertname[:MAX_VALUE_CHARS]} names a stateful data service ({service}): not restarted by a robot"
        return None

    def _service(self, text: str) -> str | None:
        return next((word for word in words(text) if word in self.services), None)
