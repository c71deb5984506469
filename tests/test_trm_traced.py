"""The TRM's `net` runs as a TorchScript trace at inference (agent_sre/trm/traced.py): it must
answer exactly as the eager network does, for one alert and for a batch, leave training (with
gradients) to the eager network, and fall back to it where tracing fails."""

from __future__ import annotations

import pytest
import torch

from agent_sre.schemas.alert import Alert
from agent_sre.schemas.catalog import load_catalog
from agent_sre.trm import traced as traced_module
from agent_sre.trm.export import load_model
from agent_sre.trm.predict import Predictor, quantized
from agent_sre.trm.traced import TracedNet, traced

ALERTS = [
    Alert(labels={"alertname": "FluxReconciliationFailure", "name": "homepage", "namespace": "flux-system",
                  "kind": "Kustomization"}),
    Alert(labels={"alertname": "PodCrashLoopBackOff", "pod": "homepage-6d4cf56db6-x2x7q", "namespace": "web"}),
    Alert(labels={"alertname": "NodeRAIDDiskFailure", "instance": "10.0.0.5:9100"}),
    Alert(labels={"alertname": "PodCPUHigh", "pod": "shop-api-7d9f8b6c4-x2x7q", "namespace": "web"},
          annotations={"summary": "CPU at 91% and traffic is rising"}),
    Alert(labels={"alertname": "ZorblaxQuuxFrobnicated", "widget": "w-1"}),
]


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.mark.parametrize("quantize", [True, False])
def test_the_traced_network_gives_the_eager_outputs_bitwise(quantize: bool) -> None:
    model, _, _ = load_model()
    model = quantized(model) if quantize else model
    eager = model.net
    fast = traced(model).net
    assert isinstance(fast, TracedNet) and fast[0] is eager[0] and len(fast) == len(eager)
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for batch in (1, 1, 3, 1, 8, 2):
            h = torch.randn(batch, model.config.seq_len, model.config.hidden, generator=generator)
            assert torch.equal(fast(h), eager(h))


def test_with_gradients_the_eager_network_runs() -> None:
    model = traced(load_model()[0])
    calls: list[torch.Tensor] = []
    model.net.trace.register_forward_pre_hook(lambda module, inputs: calls.append(inputs))
    h = torch.randn(1, model.config.seq_len, model.config.hidden)
    with torch.no_grad():
        model.net(h)
    model.net(h)  # gradients on: training's eager network
    assert len(calls) == 1


def test_the_predictor_decides_as_with_the_eager_network(catalog) -> None:
    fast = Predictor.load(catalog)
    eager = Predictor.load(catalog)
    eager.model.net = eager.model.net.eager
    assert isinstance(fast.model.net, TracedNet)
    # every field (function, parameters, confidence, steps, logit, familiarity), as a batch and
    # one alert at a time (int8 quantizes a batch's activations together, so the two may differ)
    assert fast.predict(ALERTS) == eager.predict(ALERTS)
    for alert in ALERTS:
        assert fast.predict([alert]) == eager.predict([alert])


def test_a_network_that_cannot_be_traced_runs_eagerly(catalog, monkeypatch, caplog) -> None:
    def refuse(*args, **kwargs):
        raise RuntimeError("no TorchScript here")

    monkeypatch.setattr(traced_module.torch.jit, "trace", refuse)
    predictor = Predictor.load(catalog)
    assert not isinstance(predictor.model.net, TracedNet)
    assert "runs eagerly" in caplog.text
    [prediction] = predictor.predict(ALERTS[:1])
    assert prediction.function == "flux-reconcile-kustomization"
