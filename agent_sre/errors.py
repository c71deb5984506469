"""The one exception tree of agent-sre.

    AgentSreError
    ├── ConfigError            settings or a data file cannot be used
    ├── InputError             an incoming event cannot be turned into alerts
    │     (carries `reason`, the dead-letter reason: invalid_json, too_large, ...)
    ├── CatalogError           a decision does not fit the catalog (unknown function,
    │                          a parameter not taken from the alert, a denied namespace)
    ├── TransientError         worth retrying later (unconfirmed publish, lost connection)
    │     ├── Retry            an alert's step gave back what it held: the message is retried
    │     │                    (carries what the alert's `retry` audit record adds)
    │     └── RedisUnavailable the shared state (limits, outcomes, approvals) cannot be reached
    └── FunctionError          a remediation function did not act (ends its run as `failed`)
          ├── Skipped          nothing to do: the object is gone or no longer in the alert's state
          └── KubeApiError     the Kubernetes API refused or failed (carries `status`, `reason`)

Third-party errors are translated at the boundaries with `raise ... from exc`.
"""


class AgentSreError(Exception):
    """Base of every error raised on purpose by agent-sre."""


class ConfigError(AgentSreError):
    """Settings, the catalog or another data file cannot be used; the message says what to fix."""


class InputError(AgentSreError):
    """An incoming event cannot be turned into alerts; `reason` is the dead-letter reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class CatalogError(AgentSreError):
    """A decision does not pass catalog validation."""


class TransientError(AgentSreError):
    """A failure that may pass on a later attempt."""


class Retry(TransientError):
    """A step of an alert's handling failed after giving back what it held; `audit` is what the
    alert's `retry` audit record adds (its decision). The message takes the retry path."""

    def __init__(self, message: str, **audit: object) -> None:
        super().__init__(message)
        self.audit = audit


class RedisUnavailable(TransientError):
    """Redis did not answer in time, or refused: nothing acts without its shared state."""


class FunctionError(AgentSreError):
    """A remediation function could not act; its result is `failed` with this message."""


class Skipped(FunctionError):
    """A remediation function found nothing to do (its result is `skipped`, with this reason)."""


class KubeApiError(FunctionError):
    """The Kubernetes API answered with an error Status: `status` is the HTTP code, `reason` its reason."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
