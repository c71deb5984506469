"""The rag and fewshot confidence maps, as `agent-sre calibrate` last wrote them to `fitted.json`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FITTED = Path(__file__).with_name("fitted.json")

_maps: dict[str, Any] = json.loads(FITTED.read_text())
RAG: dict[str, Any] = _maps["rag"]
FEWSHOT: dict[str, Any] = _maps["fewshot"]
