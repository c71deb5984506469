"""What agent-sre knows about alerts: the runbook, the real alerts that public rule collections ship,
and the generator that turns both into labelled examples for `trm`, `rag` and `fewshot`."""
