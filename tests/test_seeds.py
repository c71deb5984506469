"""The seeds' seven example alerts, through the default chain as it ships: models, gates and all."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_asyncio

from agent_sre.schemas.alert import Alert
from agent_sre.schemas.catalog import load_catalog
from agent_sre.selectors.base import SelectorContext, close_selectors, create_selectors, start_selectors
from agent_sre.selectors.chain import Chain
from agent_sre.settings import DEFAULT_SELECTORS, Settings

SEEDS = [
    ({"alertname": "FluxReconciliationFailure", "name": "homepage", "namespace": "flux-system", "kind": "Kustomization"},
     {}, "flux-reconcile-kustomization", {"name": "homepage", "namespace": "flux-system"}),
    # the seeds' curl: no kind label
    ({"alertname": "FluxReconciliationFailure", "name": "homepage", "namespace": "flux-system"},
     {}, "flux-reconcile-kustomization", {"name": "homepage", "namespace": "flux-system"}),
    ({"alertname": "FluxGitRepositoryOutOfSync", "name": "flux-system", "namespace": "flux-system"},
     {}, "flux-reconcile-gitrepository", {"name": "flux-system", "namespace": "flux-system"}),
    ({"alertname": "PodCrashLoopBackOff", "pod": "homepage-6d4cf56db6-x2x7q", "namespace": "web"},
     {}, "pod-restart", {"name": "homepage-6d4cf56db6-x2x7q", "namespace": "web"}),
    ({"alertname": "PrometheusServiceDown", "namespace": "monitoring", "service": "prometheus-operated"},
     {}, "pod-check-status", {"namespace": "monitoring", "selector": "service=prometheus-operated"}),
    ({"alertname": "PersistentVolumeFillingUpCritical", "persistentvolumeclaim": "data-loki-0", "namespace": "logging"},
     {}, "check-pvc-status", {"name": "data-loki-0", "namespace": "logging"}),
    # CPU high, memory normal (62.5%), 1000 req/s: a traffic surge, so scale horizontally
    ({"alertname": "PodCPUHigh", "pod": "app-xyz", "namespace": "production"},
     {"cpu_usage": "85%", "memory_usage": "2.5Gi / 4Gi", "request_rate": "1000 req/s", "summary": "CPU usage above 80%"},
     "scale-pod", {"name": "app-xyz", "namespace": "production"}),
]


pytestmark = pytest.mark.asyncio(loop_scope="module")  # one loading of the models for all seven


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chain(tmp_path_factory: pytest.TempPathFactory):
    settings = Settings(retrieval_cache_dir=Path(tmp_path_factory.mktemp("cache")), selector_timeout_s=10.0)
    selectors = create_selectors(DEFAULT_SELECTORS, SelectorContext(settings, load_catalog()))
    await start_selectors(selectors)
    yield Chain(selectors, load_catalog(), settings)
    await close_selectors(selectors)


@pytest.mark.parametrize(("labels", "annotations", "function", "parameters"), SEEDS, ids=[s[0]["alertname"] for s in SEEDS])
async def test_the_seeds_examples_are_right_with_the_default_chain(chain, labels, annotations, function, parameters):
    decision = await chain.decide(Alert(labels=labels, annotations=annotations))

    assert (decision.lambda_function, decision.parameters) == (function, parameters), decision.phases
