"""The metric context an alert gives, in numbers and words: the traffic trend and memory headroom.

It is read only where it is given: annotations named for the metric (`request_rate`,
`*_change` / `*_trend` about requests or traffic, `memory_usage`) and the sentences of the summary
or description that speak of traffic. A trend word in a sentence about something else ("the restart
counter keeps climbing") says nothing about traffic.

The reading is a set of tokens that the catalog's evidence patterns match:
- `traffic=rising`, `traffic=flat`, `traffic=falling`: a trend was given;
- `traffic=high`: no trend, but the alert gives a request rate of at least HIGH_RATE_RPS;
- `memory=high`: memory at MEMORY_HIGH or more of its limit (a leak, not load).
"""

from __future__ import annotations

import re

from ..schemas.alert import Alert

HIGH_RATE_RPS = 100.0  # a service answering this many requests a second is under real load
MEMORY_HIGH = 0.9
CHANGE_RISING, CHANGE_FALLING = 10.0, -10.0  # percent; in between, the trend is flat

_TEXT_KEYS = ("summary", "description", "message")
_TRAFFIC = re.compile(r"\b(traffic|requests?|rps|req/s|qps|throughput|load)\b", re.IGNORECASE)
_WORDS = {
    "rising": re.compile(r"^(grow\w*|ris(e|es|ing)|increas\w*|up|spik\w*|surg\w*|climb\w*|doubl\w*|tripl\w*)$"),
    "flat": re.compile(r"^(flat|steady|stable|unchanged|normal|constant)$"),
    "falling": re.compile(r"^(fall\w*|drop\w*|decreas\w*|down|declin\w*)$"),
}
_NEAR = 4  # a trend word counts when it is this many words or fewer from a traffic word
_PERCENT = re.compile(r"([+-]?\d+(?:\.\d+)?)\s*%")
_NUMBER = re.compile(r"(\d+(?:\.\d+)?)")
_TREND_KEY = re.compile(r"(request|traffic|rps|qps|load).*_(change|trend)$|^(request|traffic|rps|qps)_?trend$")
_RATE_KEY = re.compile(r"^(request_rate|requests_per_second|rps|qps|traffic)$")
_MEMORY_KEY = re.compile(r"^memory(_usage)?$")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgtp]i?b?)?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "p": 1e15}


def metric_context(alert: Alert) -> set[str]:
    annotations = alert.annotations
    tokens = set()
    trend = next(filter(None, (_trend_of_value(v) for k, v in annotations.items() if _TREND_KEY.search(k.lower()))), None)
    if trend is None:
        trend = next(filter(None, (_trend_in_text(annotations.get(k, "")) for k in _TEXT_KEYS)), None)
    if trend is not None:
        tokens.add(f"traffic={trend}")
    elif any(_rate(v) >= HIGH_RATE_RPS for k, v in annotations.items() if _RATE_KEY.match(k.lower())):
        tokens.add("traffic=high")
    if any(_memory_share(v) >= MEMORY_HIGH for k, v in annotations.items() if _MEMORY_KEY.match(k.lower())):
        tokens.add("memory=high")
    return tokens


def _trend_of_value(value: str) -> str | None:
    """`+150%` -> rising, `+1%` -> flat; a word (`rising`, `steady`) as in the summary."""
    percent = _PERCENT.search(value)
    if percent:
        change = float(percent.group(1))
        return "rising" if change >= CHANGE_RISING else "falling" if change <= CHANGE_FALLING else "flat"
    return _trend_word(value.lower().split())


def _trend_in_text(text: str) -> str | None:
    for sentence in re.split(r"[.;,!?\n]|\bwhile\b|\bbut\b|\band\b", text):
        if _TRAFFIC.search(sentence):
            trend = _trend_near_traffic(sentence)
            if trend is not None:
                return trend
    return None


def _trend_near_traffic(sentence: str) -> str | None:
    words = re.findall(r"[a-z/]+|[+-]?\d+(?:\.\d+)?%", sentence.lower())
    anchors = [i for i, word in enumerate(words) if _TRAFFIC.fullmatch(word)]
    best: tuple[int, str] | None = None
    for i, word in enumerate(words):
        trend = _trend_of_value(word) if word.endswith("%") else _trend_word([word])
        if trend is None:
            continue
        distance = min(abs(i - a) for a in anchors)
        if distance <= _NEAR and (best is None or distance < best[0]):
            best = (distance, trend)
    return best[1] if best else None


def _trend_word(words: list[str]) -> str | None:
    for word in words:
        for trend, pattern in _WORDS.items():
            if pattern.match(word):
                return trend
    return None


def _rate(value: str) -> float:
    number = _NUMBER.search(value)
    return float(number.group(1)) if number else 0.0


def _memory_share(value: str) -> float:
    """`2.5Gi / 4Gi` -> 0.625; `95%` -> 0.95; anything else -> 0."""
    percent = _PERCENT.search(value)
    if percent:
        return float(percent.group(1)) / 100
    used, sep, limit = value.partition("/")
    if not sep:
        return 0.0
    used_bytes, limit_bytes = _bytes(used), _bytes(limit)
    return used_bytes / limit_bytes if used_bytes is not None and limit_bytes else 0.0


def _bytes(text: str) -> float | None:
    size = _SIZE.search(text.strip())
    if not size:
        return None
    unit = (size.group(2) or "").lower()[:1]
    return float(size.group(1)) * _UNITS.get(unit, 1)
