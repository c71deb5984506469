"""Signs that a model's choice was read out of the alert's free text rather than reasoned from it."""

from __future__ import annotations

import re
import unicodedata

from ..schemas.alert import Alert

_SEPARATORS = re.compile(r"[^a-z0-9]+")


def named_in_alert_text(function: str, alert: Alert) -> bool:
    """Does an annotation or a label value spell out `function` ("run node disk cleanup")?

    A function picked by name from the alert's own text is what an obeyed injection looks
    like; honest alerts describe the problem, not the remediation.
    """
    wanted = _normalise(function)
    texts = [*alert.annotations.values(), *(v for k, v in alert.labels.items() if k != "alertname")]
    return any(wanted in _normalise(text) for text in texts)


def _normalise(text: str) -> str:
    # Format characters (zero-width spaces, bidi overrides) are invisible: "n\u200bode" reads as "node".
    visible = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    folded = unicodedata.normalize("NFKC", visible).casefold()
    return "-" + _SEPARATORS.sub("-", folded).strip("-") + "-"
