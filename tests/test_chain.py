"""The selector chain: fallbacks, thresholds, phases and observers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from agent_sre.schemas.alert import Alert
from agent_sre.schemas.catalog import ESCALATE, load_catalog
from agent_sre.schemas.decision import Escalation, Outcome, Phase, Proposal
from agent_sre.selectors.chain import Chain
from agent_sre.settings import SelectorOptions, Settings

CATALOG = load_catalog()
ALERT = Alert(labels={"alertname": "KubePodCrashLooping", "pod": "api-1", "namespace": "shop"})
GOOD = Proposal(lambda_function="pod-restart", parameters={"name": "api-1", "namespace": "shop"}, confidence=0.9)


class Scripted:
    """A selector that runs a given coroutine and counts its calls."""

    def __init__(self, name: str, answer: Callable[[Alert], Awaitable[Proposal | None]]) -> None:
        self.name = name
        self.answer = answer
        self.calls = 0

    async def select(self, alert: Alert) -> Proposal | None:
        self.calls += 1
        return await self.answer(alert)


def returning(name: str, proposal: Proposal | None) -> Scripted:
    async def answer(alert: Alert) -> Proposal | None:
        return proposal

    return Scripted(name, answer)


def sleeping(name: str, seconds: float) -> Scripted:
    async def answer(alert: Alert) -> Proposal | None:
        await asyncio.sleep(seconds)
        return GOOD

    return Scripted(name, answer)


def raising(name: str) -> Scripted:
    async def answer(alert: Alert) -> Proposal | None:
        raise RuntimeError("model file missing")

    return Scripted(name, answer)


# These tests are about the chain's mechanics, so the risk gates are off here; tests/test_gates.py
# has them on, as they ship.
NO_RISK_GATES = {"agreement_risks": [], "risk_thresholds": {"none": 0, "low": 0, "medium": 0, "high": 0}}


def chain_of(*selectors: Scripted, observer: object = None, **settings: object) -> Chain:
    return Chain(list(selectors), CATALOG, Settings(**{**NO_RISK_GATES, **settings}), observer)  # type: ignore[arg-type]


async def test_first_good_decision_wins_and_later_selectors_are_not_called() -> None:
    first, second = returning("first", GOOD), returning("second", GOOD)

    decision = await chain_of(first, second).decide(ALERT)

    assert decision.decided
    assert decision.lambda_function == "pod-restart"
    assert decision.parameters == {"name": "api-1", "namespace": "shop"}
    assert decision.method == "first"
    assert decision.confidence == 0.9
    assert (first.calls, second.calls) == (1, 0)
    assert [p.selector for p in decision.phases] == ["first"]


async def test_fallback_on_timeout() -> None:
    slow, fallback = sleeping("slow", 5.0), returning("rules", GOOD)

    started = asyncio.get_running_loop().time()
    decision = await chain_of(slow, fallback, selector_options={"slow": SelectorOptions(timeout_s=0.05)}).decide(ALERT)
    elapsed = asyncio.get_running_loop().time() - started

    assert elapsed < 1.0
    assert decision.method == "rules"
    assert decision.phases[0].outcome is Outcome.TIMEOUT
    assert decision.phases[0].confidence is None
    assert decision.phases[0].ms >= 40


async def test_global_timeout_applies_without_options() -> None:
    decision = await chain_of(sleeping("slow", 5.0), returning("rules", GOOD), selector_timeout_s=0.05).decide(ALERT)

    assert [p.outcome for p in decision.phases] == [Outcome.TIMEOUT, Outcome.DECIDED]


async def test_fallback_on_exception() -> None:
    decision = await chain_of(raising("broken"), returning("rules", GOOD)).decide(ALERT)

    assert decision.method == "rules"
    assert decision.phases[0].outcome is Outcome.ERROR
    assert "model file missing" in (decision.phases[0].detail or "")


async def test_fallback_on_a_wrong_return_type() -> None:
    odd = returning("odd", {"lambda_function": "escalate"})  # type: ignore[arg-type]

    decision = await chain_of(odd, returning("rules", GOOD)).decide(ALERT)

    assert [p.outcome for p in decision.phases] == [Outcome.ERROR, Outcome.DECIDED]


async def test_fallback_on_abstain() -> None:
    decision = await chain_of(returning("static", None), returning("rules", GOOD)).decide(ALERT)

    assert decision.method == "rules"
    assert decision.phases[0].outcome is Outcome.ABSTAINED


async def test_fallback_below_the_default_threshold() -> None:
    unsure = GOOD.model_copy(update={"confidence": 0.69})

    decision = await chain_of(returning("trm", unsure), returning("rules", GOOD)).decide(ALERT)

    assert decision.method == "rules"
    assert decision.phases[0].outcome is Outcome.BELOW_THRESHOLD
    assert decision.phases[0].confidence == 0.69
    assert decision.phases[0].lambda_function == "pod-restart"


async def test_per_selector_threshold() -> None:
    fairly_sure = GOOD.model_copy(update={"confidence": 0.8})
    options = {"trm": SelectorOptions(threshold=0.85), "llm": SelectorOptions(threshold=0.5)}

    strict_chain = chain_of(returning("trm", fairly_sure), returning("rules", GOOD), selector_options=options)

    strict = await strict_chain.decide(ALERT)
    lenient = await chain_of(
        returning("llm", GOOD.model_copy(update={"confidence": 0.55})), selector_options=options
    ).decide(ALERT)

    assert strict.method == "rules"
    assert strict.phases[0].outcome is Outcome.BELOW_THRESHOLD
    assert lenient.method == "llm"


async def test_threshold_zero_from_options_is_honoured() -> None:
    zero = GOOD.model_copy(update={"confidence": 0.0})

    options = {"any": SelectorOptions(threshold=0.0)}

    decision = await chain_of(returning("any", zero), selector_options=options).decide(ALERT)

    assert decision.method == "any"


async def test_fallback_on_catalog_rejection() -> None:
    invented = GOOD.model_copy(update={"parameters": {"name": "api-2", "namespace": "shop"}, "confidence": 1.0})
    unknown = Proposal(lambda_function="delete-namespace", confidence=1.0)

    chain = chain_of(returning("llm", invented), returning("trm", unknown), returning("rules", GOOD))

    decision = await chain.decide(ALERT)

    assert decision.method == "rules"
    assert [p.outcome for p in decision.phases] == [Outcome.REJECTED, Outcome.REJECTED, Outcome.DECIDED]
    assert "api-2" in (decision.phases[0].detail or "")


async def test_denied_namespace_from_settings_is_rejected() -> None:
    decision = await chain_of(returning("static", GOOD), denied_namespaces=["shop"]).decide(ALERT)

    assert decision.undecided
    assert decision.phases[0].outcome is Outcome.REJECTED


async def test_nobody_decides() -> None:
    decision = await chain_of(returning("static", None), raising("trm")).decide(ALERT)

    assert decision.undecided
    assert (decision.lambda_function, decision.escalation, decision.method) == (ESCALATE, Escalation.UNDECIDED, "chain")
    assert decision.parameters == {}
    assert "static abstained" in decision.reasoning and "trm error" in decision.reasoning


async def test_nobody_decides_dead_letters_when_so_configured() -> None:
    decision = await chain_of(returning("static", None), raising("trm"), undecided="dead-letter").decide(ALERT)

    assert decision.undecided and decision.lambda_function is None and decision.method is None
    assert "static abstained" in decision.reasoning and "trm error" in decision.reasoning


async def test_phases_have_one_entry_per_selector_tried() -> None:
    options = {"slow": SelectorOptions(timeout_s=0.02)}
    selectors = [
        returning("static", None),
        sleeping("slow", 1.0),
        raising("broken"),
        returning("unsure", GOOD.model_copy(update={"confidence": 0.1})),
        returning("rules", GOOD),
        returning("never", GOOD),
    ]

    decision = await chain_of(*selectors, selector_options=options).decide(ALERT)
    dumped = decision.model_dump(mode="json")["phases"]

    assert [p["selector"] for p in dumped] == ["static", "slow", "broken", "unsure", "rules"]
    assert [p["outcome"] for p in dumped] == ["abstained", "timeout", "error", "below_threshold", "decided"]
    assert [p["confidence"] for p in dumped] == [None, None, None, 0.1, 0.9]
    assert all(isinstance(p["ms"], float) and p["ms"] >= 0 for p in dumped)
    assert selectors[-1].calls == 0


class Recorder:
    def __init__(self) -> None:
        self.phases: list[Phase] = []

    def phase(self, phase: Phase) -> None:
        self.phases.append(phase)


class Exploding:
    def phase(self, phase: Phase) -> None:
        raise RuntimeError("metrics backend down")


async def test_observer_sees_every_phase() -> None:
    recorder = Recorder()

    decision = await chain_of(returning("static", None), returning("rules", GOOD), observer=recorder).decide(ALERT)

    assert recorder.phases == decision.phases


async def test_an_observer_that_raises_does_not_change_the_decision() -> None:
    quiet = await chain_of(returning("static", None), returning("rules", GOOD)).decide(ALERT)
    noisy = await chain_of(returning("static", None), returning("rules", GOOD), observer=Exploding()).decide(ALERT)

    assert noisy.lambda_function == quiet.lambda_function == "pod-restart"
    assert noisy.parameters == quiet.parameters
    assert [p.outcome for p in noisy.phases] == [p.outcome for p in quiet.phases]


async def test_the_chain_keeps_its_selectors_in_order() -> None:
    first, second = returning("a", None), returning("b", None)

    assert chain_of(first, second).selectors == [first, second]


@pytest.mark.parametrize("confidence", [0.7, 1.0])
async def test_confidence_at_the_threshold_passes(confidence: float) -> None:
    decision = await chain_of(returning("trm", GOOD.model_copy(update={"confidence": confidence}))).decide(ALERT)

    assert decision.method == "trm"


async def test_a_selectors_own_default_timeout_applies_unless_the_operator_sets_one() -> None:
    # Given a slow selector that declares it needs 5 s, under a 2 s global default
    class Patient:
        name = "patient"
        default_timeout_s = 5.0

        async def select(self, alert: Alert) -> Proposal | None:
            return None

    catalog = load_catalog()
    chain = Chain([Patient()], catalog, Settings(selector_timeout_s=2.0))
    overridden = Chain(
        [Patient()], catalog, Settings(selector_timeout_s=2.0, selector_options={"patient": {"timeout_s": 0.5}})
    )
    # Then its own default wins over the global one, and the operator's option over both
    assert chain.steps[0].timeout_s == 5.0
    assert overridden.steps[0].timeout_s == 0.5


async def test_a_selectors_own_default_threshold_applies_unless_the_operator_sets_one() -> None:
    class Demanding:
        name = "demanding"
        default_threshold = 0.93

        async def select(self, alert: Alert) -> Proposal | None:
            return GOOD  # 0.9: below its own bar

    decided = await chain_of(Demanding(), returning("next", GOOD.model_copy(update={"confidence": 0.8}))).decide(ALERT)
    lowered = chain_of(Demanding(), selector_options={"demanding": {"threshold": 0.5}})

    assert decided.method == "next" and decided.phases[0].outcome is Outcome.BELOW_THRESHOLD
    assert lowered.steps[0].threshold == 0.5


async def test_the_next_selector_prepares_while_the_current_one_answers() -> None:
    # Given a slow first selector and a second one that can prepare
    events: list[str] = []

    class First:
        name = "first"

        async def select(self, alert: Alert) -> Proposal | None:
            await asyncio.sleep(0.05)
            events.append("first answered")
            return None

    class Second:
        name = "second"

        async def prepare(self, alert: Alert) -> None:
            events.append(f"second prepares {alert.alertname}")

        async def select(self, alert: Alert) -> Proposal | None:
            events.append("second asked")
            return GOOD

    class Broken(Second):
        name = "broken"

        async def prepare(self, alert: Alert) -> None:
            raise RuntimeError("no model")

    decision = await chain_of(First(), Second()).decide(ALERT)
    # Then the preparation ran before the first selector was done; a failing one changes nothing
    assert events == ["second prepares KubePodCrashLooping", "first answered", "second asked"]
    assert decision.method == "second"
    assert (await chain_of(First(), Broken()).decide(ALERT)).method == "broken"


async def test_a_decision_drops_the_preparations_it_no_longer_needs() -> None:
    # Given a first selector that decides at once, and a second whose preparation is slow work
    events: list[str] = []

    class Instant:
        name = "instant"

        async def select(self, alert: Alert) -> Proposal | None:
            return GOOD

    class Slow:
        name = "slow"

        async def prepare(self, alert: Alert) -> None:
            events.append("preparing")
            await asyncio.sleep(0.05)
            events.append("prepared")

        async def select(self, alert: Alert) -> Proposal | None:
            return GOOD

    chain = chain_of(Instant(), Slow())
    decisions = [await chain.decide(ALERT) for _ in range(3)]
    await asyncio.sleep(0.1)
    # Then nothing was prepared for a selector the chain never asked: a known alert's embedding,
    # queued behind others on the side thread, held up the never-seen alerts that came next
    assert [d.method for d in decisions] == ["instant"] * 3
    assert events == [] and not chain._preparing
    # and a preparation the decision did need still runs to its end
    class Slower(Instant):
        name = "slower"

        async def select(self, alert: Alert) -> Proposal | None:
            await asyncio.sleep(0.1)
            return None

    assert (await chain_of(Slower(), Slow()).decide(ALERT)).method == "slow"
    assert events == ["preparing", "prepared"]
