"""What a selector proposes, and what the chain decides."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field


class Outcome(str, Enum):
    """How one selector's turn in the chain ended."""

    DECIDED = "decided"
    ABSTAINED = "abstained"  # the selector had no opinion (returned None)
    BELOW_THRESHOLD = "below_threshold"
    REJECTED = "rejected"  # the proposal failed catalog validation or the function's evidence
    UNCONFIRMED = "unconfirmed"  # passed every gate; its risk waits for a second selector to agree
    TIMEOUT = "timeout"
    ERROR = "error"


class Proposal(BaseModel):
    """A selector's answer. The chain validates it against the catalog before anyone acts on it.

    Only the function is the selector's choice: the chain fills the parameters from the alert's
    labels. A selector that gives parameters (static's `lambda_parameters`, trm's pointers) must give
    exactly those values."""

    model_config = ConfigDict(frozen=True)

    lambda_function: str
    parameters: dict[str, str] = Field(default_factory=dict)
    confidence: float = Field(ge=0.0, le=1.0)
    reasoning: str = ""
    iterations: int | None = None  # recursive selectors report the steps they used


class Phase(BaseModel):
    model_config = ConfigDict(frozen=True)

    selector: str
    outcome: Outcome
    confidence: float | None = None
    ms: float
    lambda_function: str | None = None
    detail: str | None = None


class Decision(BaseModel):
    """The chain's verdict on one alert; `lambda_function` is None when nothing decided, or when the
    alert needs nobody (`ignored`)."""

    model_config = ConfigDict(frozen=True)

    lambda_function: str | None
    parameters: dict[str, str] = Field(default_factory=dict)
    confidence: float = 0.0
    method: str | None = None
    reasoning: str = ""
    phases: list[Phase] = Field(default_factory=list)
    ignored: bool = False

    @property
    def decided(self) -> bool:
        return self.lambda_function is not None
