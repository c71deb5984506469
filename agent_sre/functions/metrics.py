"""The functions' metrics, declared once on an injected registry; labels only from function names
and the `Status` enum."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class FunctionMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.runs = Counter("agent_sre_function_runs_total", "Remediation function runs, by how they ended.",
                            ["function", "status"], registry=self.registry)
        self.duration = Histogram("agent_sre_function_run_duration_seconds", "Time a function run took.",
                                  ["function", "status"], buckets=_BUCKETS, registry=self.registry)
        self.duplicates = Counter("agent_sre_function_duplicates_total",
                                  "Triggers not run again: redelivered or replayed.", ["function"],
                                  registry=self.registry)
        self.invalid = Counter("agent_sre_function_invalid_triggers_total",
                               "Deliveries that were no readable trigger, by reason.", ["reason"],
                               registry=self.registry)

    def ran(self, function: str, status: str, seconds: float) -> None:
        self.runs.labels(function, status).inc()
        self.duration.labels(function, status).observe(seconds)
