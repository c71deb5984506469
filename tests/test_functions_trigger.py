"""A trigger as a function reads it: the worker's own trigger passes; anything else is refused."""

from __future__ import annotations

import orjson
import pytest

from agent_sre.errors import InputError
from agent_sre.functions import trigger as trigger_module
from agent_sre.functions.trigger import read_trigger
from agent_sre.worker.publisher import PROPOSED_TYPE, TRIGGER_TYPE, Kind, build_trigger
from tests.functions_harness import CATALOG, alert_for

LABELS = {"pod": "api-7f9", "namespace": "shop"}


def _message(kind: Kind = Kind.TRIGGER):
    from agent_sre.schemas.decision import Decision

    alert = alert_for(LABELS)
    decision = Decision(lambda_function="pod-restart", parameters=CATALOG.resolve("pod-restart", alert), confidence=1)
    return build_trigger(alert, decision, kind, trace={"traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"})


def test_the_type_is_the_workers():
    assert trigger_module.TRIGGER_TYPE == TRIGGER_TYPE


def test_the_workers_trigger_is_read_whole():
    message = _message()
    trigger = read_trigger(message.body, message.headers, content_type=message.content_type)
    assert trigger.function == "pod-restart" and trigger.parameters == {"name": "api-7f9", "namespace": "shop"}
    assert trigger.id == message.message_id and trigger.trace["traceparent"].startswith("00-abab")


def test_a_proposal_is_no_trigger():
    message = _message(Kind.PROPOSED)
    assert message.headers["type"] == PROPOSED_TYPE
    with pytest.raises(InputError) as refused:
        read_trigger(message.body, message.headers, content_type=message.content_type)
    assert refused.value.reason == "unsupported_type"


@pytest.mark.parametrize("header", ["correlationid", "subject"])
def test_attributes_that_contradict_the_data_are_refused(header):
    message = _message()
    headers = {**message.headers, header: "something-else"}
    with pytest.raises(InputError) as refused:
        read_trigger(message.body, headers, content_type=message.content_type)
    assert refused.value.reason == "invalid_trigger"


def test_a_trigger_without_its_alert_is_refused():
    message = _message()
    data = orjson.loads(message.body)
    del data["alert"]
    with pytest.raises(InputError) as refused:
        read_trigger(orjson.dumps(data), message.headers, content_type=message.content_type)
    assert refused.value.reason == "invalid_trigger"
