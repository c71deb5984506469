"""The metric context an alert gives, in numbers and words: the traffic trend and memory headroom.

It is read only where it is given: annotations named for the metric (`request_rate`,
`*_change` / `*_trend` about requests or traffic, `memory_usage`) and the sentences of the summary
or description that speak of traffic. A trend word in a sentence about something else ("the restart
counter keeps climbing") says nothing about traffic.

The reading is a set of tokens that the catalog's evidence patterns match:
- `traffic=rising`, `traffic=flat`, `traffic=falling`: a trend was given;
- `traffic=high`: no trend, but the alert gives a request rate of at least HIGH_RATE_RPS;
- `memory=high`: memory at MEMORY_HIGH or more of its limit (a leak, not load).

Text is read as one list of words (`_words`): a sentence speaks of traffic when one of those words
is a traffic word, and the trend is measured in the same words. (A second reading, a regex over the
raw sentence, once found "traffic" inside `demo-netpol/traffic-gen-b690cfc0a-d29wb` where the words
had none, and the distance to the nearest traffic word was a minimum over nothing.) An object's
name is no word at all. The percentage pattern starts only at the first digit of a run, so a value
of many thousand digits is read in one pass; and at most MAX_TEXT_CHARS of an annotation is read:
an alert's context lies in its first sentences, and the gates read it for every proposal.
"""

from __future__ import annotations

import re

from ..schemas.alert import Alert

HIGH_RATE_RPS = 100.0  # a service answering this many requests a second is under real load
MEMORY_HIGH = 0.9
CHANGE_RISING, CHANGE_FALLING = 10.0, -10.0  # percent; in between, the trend is flat

MAX_TEXT_CHARS = 4096

_TEXT_KEYS = ("summary", "description", "message")
_PUNCTUATION = "\"'`()[]{}<>:.,;!?"
_LETTERS = re.compile(r"[a-z]+(?:-[a-z]+)*")  # `request-rate` is two words; `traffic-gen-7f9c` is a name
_PERCENT_WORD = re.compile(r"[+-]?\d+(?:\.\d+)?%")
_TRAFFIC = re.compile(r"traffic|requests?|rps|req/s|qps|throughput|load")  # a whole word
_SENTENCE_END = re.compile(r"[;!?\n]|[.,](?!\d)|\b(?:while|but|and)\b")  # not the point of `12.5%`
_WORDS = {
    "rising": re.compile(r"^(grow\w*|ris(e|es|ing)|increas\w*|up|spik\w*|surg\w*|climb\w*|doubl\w*|tripl\w*)$"),
    "flat": re.compile(r"^(flat|steady|stable|unchanged|normal|constant)$"),
    "falling": re.compile(r"^(fall\w*|drop\w*|decreas\w*|down|declin\w*)$"),
}
_NEAR = 4  # a trend word counts when it is this many words or fewer from a traffic word
_PERCENT = re.compile(r"(?<![\d.])([+-]?\d+(?:\.\d+)?)\s*%")
_NUMBER = re.compile(r"(\d+(?:\.\d+)?)")
_TREND_SUBJECT = re.compile(r"request|traffic|rps|qps|load")
_TREND_NAMES = {f"{subject}{sep}trend" for subject in ("request", "traffic", "rps", "qps") for sep in ("", "_")}
_RATE_KEY = re.compile(r"^(request_rate|requests_per_second|rps|qps|traffic)$")
_MEMORY_KEY = re.compile(r"^memory(_usage)?$")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgtp]i?b?)?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "p": 1e15}


def metric_context(alert: Alert) -> set[str]:
    annotations = alert.annotations
    tokens = set()
    trend = next(filter(None, (_trend_of_value(v) for k, v in annotations.items() if _is_trend_key(k))), None)
    if trend is None:
        trend = next(filter(None, (_trend_in_text(annotations.get(k, "")) for k in _TEXT_KEYS)), None)
    if trend is not None:
        tokens.add(f"traffic={trend}")
    elif any(_rate(v) >= HIGH_RATE_RPS for k, v in annotations.items() if _RATE_KEY.match(k.lower())):
        tokens.add("traffic=high")
    if any(_memory_share(v) >= MEMORY_HIGH for k, v in annotations.items() if _MEMORY_KEY.match(k.lower())):
        tokens.add("memory=high")
    return tokens


def _is_trend_key(key: str) -> bool:
    """`request_rate_change`, `traffic_trend`, `rpstrend`: a key that names a change in traffic."""
    key = key.lower()
    head, sep, tail = key.rpartition("_")
    return key in _TREND_NAMES or (bool(sep) and tail in ("change", "trend") and bool(_TREND_SUBJECT.search(head)))


def _trend_of_value(value: str) -> str | None:
    """`+150%` -> rising, `+1%` -> flat; a word (`rising`, `steady`) as in the summary."""
    value = value[:MAX_TEXT_CHARS]
    percent = _PERCENT.search(value)
    if percent:
        change = float(percent.group(1))
        return "rising" if change >= CHANGE_RISING else "falling" if change <= CHANGE_FALLING else "flat"
    return _trend_word(value.lower().split())


def _trend_in_text(text: str) -> str | None:
    for sentence in _SENTENCE_END.split(text[:MAX_TEXT_CHARS]):
        trend = _trend_near_traffic(_words(sentence))
        if trend is not None:
            return trend
    return None


def _words(sentence: str) -> list[str]:
    """The sentence's words, lower-cased, one position each. An object's name (`shop/api-7f9c`), a
    path or a bare number is one position that is no word, so that a traffic or trend word inside
    a name is never read."""
    words = []
    for chunk in sentence.lower().split():
        chunk = chunk.strip(_PUNCTUATION)
        if chunk == "req/s" or _PERCENT_WORD.fullmatch(chunk):
            words.append(chunk)
        elif _LETTERS.fullmatch(chunk):
            words.extend(chunk.split("-"))
        else:
            words.append("")
    return words


def _trend_near_traffic(words: list[str]) -> str | None:
    """The trend word (or percentage) nearest a traffic word, within _NEAR words; None without both."""
    anchors = [i for i, word in enumerate(words) if _TRAFFIC.fullmatch(word)]
    if not anchors:
        return None
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
    number = _NUMBER.search(value[:MAX_TEXT_CHARS])
    return float(number.group(1)) if number else 0.0


def _memory_share(value: str) -> float:
    """`2.5Gi / 4Gi` -> 0.625; `95%` -> 0.95; anything else -> 0."""
    value = value[:MAX_TEXT_CHARS]
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
