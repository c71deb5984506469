"""Exactly one result per trigger, even when publishing it fails.

A result that the broker did not confirm is kept in the ledger, in place of the run's status, and
the trigger is requeued; its redelivery does not run the function again (the claim holds) but finds
the kept result and publishes it. Once confirmed, the ledger says `sent`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson

from ..errors import TransientError
from .ledger import run_key
from .result import Result, result_event
from .runner import Runner
from .trigger import Trigger

Publish = Callable[[bytes, dict[str, str]], Awaitable[None]]
_UNSENT = "unsent:"


async def deliver(runner: Runner, trigger: Trigger, result: Result | None, key: bytes | None, publish: Publish) -> bool:
    """Publish `result` (None: a redelivery, whose kept result is published, if one is kept).
    True when something was published; TransientError when it could not be."""
    run = run_key(trigger.correlation_id, trigger.function)
    if result is not None:
        body, headers = result_event(trigger, result, dry_run=runner.dry_run, key=key)
    else:
        kept = await runner.ledger.state(run)
        if kept is None or not kept.startswith(_UNSENT):
            return False
        unsent = orjson.loads(kept[len(_UNSENT):])
        body, headers = unsent["body"].encode(), unsent["headers"]
    try:
        await publish(body, headers)
    except TransientError:
        await runner.ledger.finish(run, _UNSENT + orjson.dumps({"body": body.decode(), "headers": headers}).decode())
        raise
    await runner.ledger.finish(run, "sent")
    return True
