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


class EvidenceKind(str, Enum):
    """What a selector's answer rests on. Two answers of one kind are one piece of evidence seen
    twice (rag and fewshot both read the nearest neighbours of one MiniLM embedding), so a risky
    function needs two different kinds to agree (`selectors/chain.py`)."""

    ANNOTATION = "annotation"  # the operator's own word in the alert rule
    NAME_TABLE = "name_table"  # a table of known alert names
    TRAINED_MODEL = "trained_model"
    EMBEDDING_NEIGHBOURS = "embedding_neighbours"  # nearest neighbours of the MiniLM embedding
    RULES = "rules"  # hand-written patterns
    LLM = "llm"


class Undecided(str, Enum):
    """What becomes of an alert no selector was confident about (AGENT_SRE_UNDECIDED)."""

    ESCALATE = "escalate"  # an escalate trigger, saying why, with the selectors' suggestions
    DEAD_LETTER = "dead-letter"  # the input message goes to the DLQ as `no_decision`


class Escalation(str, Enum):
    """Why the chain itself ended in `escalate`, rather than a selector choosing it."""

    UNDECIDED = "undecided"  # no selector was confident (AGENT_SRE_UNDECIDED=escalate)
    UNCONFIRMED = "unconfirmed"  # a risky proposal that no selector of another kind confirmed
    DISAGREEMENT = "disagreement"  # two selectors of different kinds proposed different things


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
    # False when the selector knows the alert is unlike what it learned from: its answer may still
    # decide, but it cannot overrule another selector's proposal (no veto from a guess).
    familiar: bool = True


class Phase(BaseModel):
    model_config = ConfigDict(frozen=True)

    selector: str
    outcome: Outcome
    confidence: float | None = None
    ms: float
    lambda_function: str | None = None
    detail: str | None = None


class Suggestion(BaseModel):
    """A proposal that fell short (below a threshold, unconfirmed, refused by a gate), shown to the
    human an escalation goes to. Its parameters are only ever values the catalog took from the
    alert's labels; a proposal whose values failed that check carries none."""

    model_config = ConfigDict(frozen=True)

    lambda_function: str
    parameters: dict[str, str] = Field(default_factory=dict)
    confidence: float
    selector: str
    why_not: str = ""


class Decision(BaseModel):
    """The chain's verdict on one alert; `lambda_function` is None when nothing decided (and
    AGENT_SRE_UNDECIDED is `dead-letter`), or when the alert needs nobody (`ignored`). An `escalate`
    the chain reached itself says why in `escalation`, with what the selectors thought in `suggestions`."""

    model_config = ConfigDict(frozen=True)

    lambda_function: str | None
    parameters: dict[str, str] = Field(default_factory=dict)
    confidence: float = 0.0
    method: str | None = None
    reasoning: str = ""
    phases: list[Phase] = Field(default_factory=list)
    ignored: bool = False
    escalation: Escalation | None = None
    suggestions: list[Suggestion] = Field(default_factory=list)

    @property
    def decided(self) -> bool:
        return self.lambda_function is not None

    @property
    def undecided(self) -> bool:
        """No selector decided: nothing to trigger (AGENT_SRE_UNDECIDED=dead-letter), or an
        escalation for that reason alone (the default)."""
        return (self.lambda_function is None and not self.ignored) or self.escalation is Escalation.UNDECIDED
