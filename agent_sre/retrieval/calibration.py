"""The rag and fewshot confidence maps: logistic maps (`agent_sre.logistic`) fitted on the
generator's `val` split by `agent-sre calibrate`, which writes `fitted.json` beside this module;
`fitted.RAG` and `fitted.FEWSHOT` are read from it."""

from __future__ import annotations

from ..logistic import Logistic, fit_logistic

__all__ = ["Logistic", "fit_logistic"]
