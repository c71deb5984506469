"""The CloudEvent types agent-sre takes in and sends out: spelt here once.

In: alerts (`DEFAULT_EVENT_TYPE`, or AGENT_SRE_ACCEPTED_TYPES), a function's result, a human's
answer to an approval request, and the worker's own timer for one left unanswered.
Out: a trigger (a function acts), a proposal (shadow mode) and an approval request.
"""

from __future__ import annotations

DEFAULT_EVENT_TYPE = "io.homelab.prometheus.alert.fired"
# What a function reports of a trigger it ran; always taken, beside AGENT_SRE_ACCEPTED_TYPES.
RESULT_TYPE = "io.homelab.agent-sre.lambda.result"
APPROVAL_GRANTED_TYPE = "io.homelab.agent-sre.approval.granted"
APPROVAL_DENIED_TYPE = "io.homelab.agent-sre.approval.denied"
# The worker's own timer: parked in a delay queue at request time, back in the input queue once
# the request's time is up, and taken only when the request has really expired.
APPROVAL_EXPIRED_TYPE = "io.homelab.agent-sre.approval.expired"
APPROVAL_ANSWER_TYPES = (APPROVAL_GRANTED_TYPE, APPROVAL_DENIED_TYPE, APPROVAL_EXPIRED_TYPE)

TRIGGER_TYPE = "io.homelab.agent-sre.lambda.trigger"
PROPOSED_TYPE = "io.homelab.agent-sre.lambda.proposed"
APPROVAL_REQUESTED_TYPE = "io.homelab.agent-sre.approval.requested"
