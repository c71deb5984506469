"""The recursive model: shapes, the parameter budget, halting, and that learning works."""

from __future__ import annotations

import time

import pytest
import torch

from agent_sre.schemas.catalog import load_catalog
from agent_sre.trm.dataset import encode_examples
from agent_sre.trm.encode import EncoderConfig
from agent_sre.trm.evaluate import expected_calibration_error
from agent_sre.knowledge.generate import generate
from agent_sre.trm.model import TRM, TRMConfig, fully_correct
from agent_sre.knowledge.runbook import load_runbook


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny matrices: a second thread only adds spin-waiting on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_set():
    catalog = load_catalog()
    encoder = EncoderConfig.from_catalog(catalog, buckets=2048)
    examples = generate(load_runbook(functions=catalog.names), catalog, "train", 1, seed=5)[:24]
    return encoder, encode_examples(examples, catalog, encoder)


def _tiny_config(encoder: EncoderConfig, **overrides) -> TRMConfig:
    settings = dict(seq_len=encoder.seq_len, features=encoder.features, buckets=encoder.buckets,
                    functions=len(encoder.functions), slots=encoder.slots, hidden=48, H_cycles=2, L_cycles=2, N_sup=4)
    return TRMConfig(**{**settings, **overrides})


def test_default_model_fits_the_parameter_budget():
    model = TRM(TRMConfig())
    assert model.parameter_count() <= 7_000_000
    assert model.config.H_cycles == 3 and model.config.L_cycles == 6


def test_one_supervision_step_shapes_and_detached_carry(tiny_set):
    encoder, data = tiny_set
    model = TRM(_tiny_config(encoder))
    (y, z), outputs, loss = model(data.features[:5], data.roles[:5], None, (data.functions[:5], data.pointers[:5]))
    assert y.shape == z.shape == (5, encoder.seq_len, 48) and not y.requires_grad
    assert outputs.function_logits.shape == (5, 12)
    assert outputs.pointer_logits.shape == (5, encoder.slots, encoder.seq_len)
    assert loss is not None and loss.requires_grad
    # before training the halting head says "not done" (bias -5), so inference runs to N_sup
    _, steps = model.infer(data.features[:5], data.roles[:5])
    assert steps.tolist() == [4] * 5


def test_pointers_can_only_name_labels_or_none(tiny_set):
    encoder, data = tiny_set
    model = TRM(_tiny_config(encoder))
    _, outputs, _ = model(data.features, data.roles)
    _, pointers = outputs.predictions()
    chosen_roles = torch.gather(data.roles, 1, pointers)
    assert set(chosen_roles.unique().tolist()) <= {1, 3}  # CLS (none) or LABEL


@pytest.mark.parametrize("mixer", ["mlp", "attention"])
def test_tiny_model_overfits_a_tiny_set_in_seconds(tiny_set, mixer):
    encoder, data = tiny_set
    torch.manual_seed(0)
    model = TRM(_tiny_config(encoder, mixer=mixer))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    targets = (data.functions, data.pointers)
    started = time.monotonic()
    for _ in range(120):
        carry = None
        for _ in range(2):  # deep supervision: two steps, carry detached in between
            carry, _, loss = model(data.features, data.roles, carry, targets)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    assert time.monotonic() - started < 30
    outputs, steps = model.infer(data.features, data.roles)
    assert fully_correct(outputs, *targets).all()
    assert (steps < 4).float().mean() > 0.5  # the halting head learned to stop early
    confidence = torch.sigmoid(outputs.halt_logits)
    assert expected_calibration_error(confidence, torch.ones(len(data))) < 0.3


def test_a_model_with_sentence_embeddings_learns_from_them_alone(tiny_set):
    # Given alerts whose tokens are all the same, so that only the sentence embedding tells them apart
    encoder, data = tiny_set
    torch.manual_seed(0)
    rows = len(data)
    features, roles = data.features[:1].expand(rows, -1, -1), data.roles[:1].expand(rows, -1)
    sentence = torch.nn.functional.normalize(torch.randn(len(encoder.functions), 16), dim=-1)[data.functions]
    targets = (data.functions, torch.where(data.pointers[:1] == -100, -100, 0).expand(rows, -1))
    model = TRM(_tiny_config(encoder, sentence_dim=16))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)

    for _ in range(150):
        _, _, loss = model(features, roles, None, targets, sentence=sentence)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    # Then it answers every one right, and refuses to run without the embedding it was built to read
    outputs, _ = model.infer(features, roles, sentence=sentence)
    assert (outputs.function_logits.argmax(-1) == data.functions).all()
    with pytest.raises(ValueError, match="sentence"):
        model.infer(features, roles)
