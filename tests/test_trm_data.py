"""The runbook parser, the generator and the encoder/decoder of the TRM selector."""

from __future__ import annotations

import random

import pytest

from agent_sre.schemas.alert import Alert
from agent_sre.schemas.catalog import load_catalog
from agent_sre.trm.encode import (
    CLS, IGNORE, LABEL, NAME, NONE_POINTER, PAD, EncoderConfig, decode_parameters, encode_alert, targets_for,
)
from agent_sre.knowledge.generate import generate
from agent_sre.knowledge.runbook import AlertPattern, load_runbook, parse_runbook
from agent_sre.trm.dataset import build_splits
from agent_sre.trm.train import trained_answers


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture(scope="module")
def entries(catalog):
    return load_runbook(functions=catalog.names)


@pytest.fixture(scope="module")
def encoder(catalog):
    return EncoderConfig.from_catalog(catalog)


def test_runbook_has_one_section_per_catalog_function_with_conditions(entries):
    assert len(entries) == 12
    kustomization = entries["flux-reconcile-kustomization"]
    assert AlertPattern("FluxReconciliationFailure", ("kind", "Kustomization")) in kustomization.alerts
    cpu = [p for p in entries["scale-pod"].alerts if p.name == "PodCPUHigh"]
    assert cpu and cpu[0].context == "rising" and cpu[0].label_condition is None
    assert {"Watchdog", "KubeAPIDown", "PostgresqlDown", "NodeRAIDDegraded"} <= {p.name for p in entries["escalate"].alerts}
    for entry in entries.values():
        assert entry.held_out and entry.says and entry.not_when


def test_parser_skips_prose_sections():
    text = "## How to read\n- **alerts**: prose, not names\n\n## job-retry\n- **alerts**: KubeJobFailed\n"
    assert list(parse_runbook(text)) == ["job-retry"]


def test_generator_is_seeded_and_test_split_holds_out_whole_families(entries, catalog):
    first = generate(entries, catalog, "train", 3, seed=7)
    again = generate(entries, catalog, "train", 3, seed=7)
    assert [e.alert for e in first] == [e.alert for e in again]
    test = generate(entries, catalog, "test", 3, seed=7)
    train_names = {e.alert.alertname for e in first}
    assert train_names.isdisjoint({e.alert.alertname for e in test})
    # both answers of the multi-condition CPU case are in the test split, told apart by context
    held_cpu = {e.function for e in test if e.family == "PodHighCPU"}
    assert held_cpu == {"scale-pod", "pod-restart"}


def test_generated_alerts_always_carry_their_required_parameters(entries, catalog):
    for example in generate(entries, catalog, "train", 4, seed=1):
        spec = catalog.by_name[example.function]
        resolved = catalog.resolve(example.function, example.alert)
        assert all(p.name in resolved for p in spec.parameters if p.required), example


def test_encoding_has_a_fixed_layout(encoder):
    alert = Alert(labels={"alertname": "FluxReconciliationFailure", "name": "homepage", "namespace": "flux-system",
                          "kind": "Kustomization"}, annotations={"summary": "Kustomization homepage is not ready"})
    encoded = encode_alert(alert, encoder)
    assert len(encoded.roles) == len(encoded.features) == encoder.seq_len == 48
    assert all(len(f) == encoder.features for f in encoded.features)
    assert encoded.roles[:4] == [CLS, NAME, NAME, NAME] and encoded.roles[4] == PAD
    assert [k for k in encoded.label_keys if k] == ["name", "namespace", "kind"]
    assert encode_alert(alert, encoder) == encoded  # hashing is stable (CRC32, not Python's hash)


def test_unseen_alert_words_share_pieces_with_known_ones(encoder):
    def name_pieces(alertname: str) -> set[int]:
        encoded = encode_alert(Alert(labels={"alertname": alertname}), encoder)
        return {i for f, r in zip(encoded.features, encoded.roles) if r == NAME for i in f if i}

    crash = name_pieces("PodCrashLooping")
    assert len(crash & name_pieces("ContainerCrashLoopin")) > len(crash) / 3  # a typo still overlaps
    assert not crash & name_pieces("Watchdog")


def test_a_change_keeps_its_sign_and_a_pod_name_is_no_number(encoder):
    def features(**annotations: str) -> list[list[int]]:
        return encode_alert(Alert(labels={"alertname": "PodCPUHigh"}, annotations=annotations), encoder).features

    assert features(traffic_change="-40%") != features(traffic_change="+40%") != features(traffic_change="40%")
    # `-515` inside a pod name is part of the name, not a drop of 515
    assert features(summary="CPU of api-515d565-x2 is high") == features(summary="CPU of api 515d565 x2 is high")
    assert features(summary="traffic -5% in 1h") != features(summary="traffic 5% in 1h")


def test_targets_point_at_the_preferred_label(catalog, encoder):
    alert = Alert(labels={"alertname": "FluxKustomizationNotReady", "name": "apps", "namespace": "flux-system",
                          "exported_namespace": "media"})
    encoded = encode_alert(alert, encoder)
    function, pointers = targets_for(alert, "flux-reconcile-kustomization", encoded, catalog, encoder)
    assert encoder.functions[function] == "flux-reconcile-kustomization"
    assert [encoded.label_keys[p] for p in pointers[:2]] == ["name", "exported_namespace"] and pointers[2] == IGNORE
    assert decode_parameters(alert, "flux-reconcile-kustomization", pointers, encoded, catalog) == {
        "name": "apps", "namespace": "media"}


def test_node_parameter_goes_through_the_host_transform(catalog, encoder):
    alert = Alert(labels={"alertname": "NodeFilesystemAlmostOutOfSpace", "instance": "worker-03:9100"})
    encoded = encode_alert(alert, encoder)
    _, pointers = targets_for(alert, "node-disk-cleanup", encoded, catalog, encoder)
    assert decode_parameters(alert, "node-disk-cleanup", pointers, encoded, catalog) == {"node": "worker-03"}


def test_malformed_or_foreign_labels_never_become_parameters(catalog, encoder):
    alert = Alert(labels={"alertname": "KubePodCrashLooping", "pod": "Bad_Pod!", "namespace": "apps",
                          "container": "web"})
    encoded = encode_alert(alert, encoder)
    pod, container = encoded.label_keys.index("pod"), encoded.label_keys.index("container")
    namespace = encoded.label_keys.index("namespace")
    # the pod label fails the name pattern; container is not a source of `name`; CLS means none
    assert decode_parameters(alert, "pod-restart", [pod, namespace, NONE_POINTER], encoded, catalog) == {"namespace": "apps"}
    assert decode_parameters(alert, "pod-restart", [container, NONE_POINTER, 0], encoded, catalog) == {}


def test_any_pointer_yields_only_values_taken_from_labels(entries, catalog, encoder):
    rng = random.Random(3)
    for example in generate(entries, catalog, "test", 2, seed=3):
        encoded = encode_alert(example.alert, encoder)
        for function in catalog.names:
            pointers = [rng.randrange(encoder.seq_len + 2) for _ in range(encoder.slots)]
            for name, value in decode_parameters(example.alert, function, pointers, encoded, catalog).items():
                param = next(p for p in catalog.by_name[function].parameters if p.name == name)
                assert value in param.candidates(example.alert) and param.regex.fullmatch(value)
    assert LABEL in encode_alert(example.alert, encoder).roles


def test_some_generated_alerts_carry_only_what_the_rule_sets(entries, catalog):
    """The seeds' alerts have no severity and no extra labels; training must include such alerts."""
    examples = generate(entries, catalog, "train", 4, seed=2)
    bare = [e for e in examples if "severity" not in e.alert.labels]
    assert 0.15 < len(bare) / len(examples) < 0.5


def test_jittered_label_slots_keep_pointers_consistent(entries, catalog, encoder):
    rng = random.Random(11)
    for example in generate(entries, catalog, "train", 1, seed=11):
        encoded = encode_alert(example.alert, encoder, jitter=rng)
        assert len(encoded.roles) == encoder.seq_len
        _, pointers = targets_for(example.alert, example.function, encoded, catalog, encoder)
        decoded = decode_parameters(example.alert, example.function, pointers, encoded, catalog)
        assert decoded == catalog.resolve(example.function, example.alert)


def test_only_the_trend_tells_the_two_cpu_answers_apart(entries, catalog):
    # Rising and flat draws share their labels pair by pair, so no label can give the answer away.
    examples = [e for e in generate(entries, catalog, "train", 8, seed=3) if e.family == "PodCPUHigh"]
    rising = sorted(sorted(e.alert.labels.items()) for e in examples if e.function == "scale-pod")
    flat = sorted(sorted(e.alert.labels.items()) for e in examples if e.function == "pod-restart")
    assert rising and rising == flat
    trends = [e for e in examples if e.function == "scale-pod"]
    assert all(set(e.alert.annotations) - {"summary", "description", "runbook_url", "cpu_usage"}
               or any(w in e.alert.annotations.get("summary", "") + e.alert.annotations.get("description", "")
                      for w in ("rising", "growing", "increasing", "up", "spiking", "climbing", "surging"))
               for e in trends)


def test_each_trained_name_keeps_the_answers_training_gave_it(catalog, encoder):
    # What lets the predictor trust the halting head on a trained name only for those answers.
    examples, data = build_splits(catalog, encoder, 0, 2)["train"]
    answers = trained_answers(examples, data, encoder)
    assert sorted(answers) == sorted({example.alert.alertname for example in examples})
    assert answers["PodCPUHigh"] == ["pod-restart", "scale-pod"]  # the request rate's trend decides
    assert answers["KubeHpaReplicasMismatch"] == ["escalate"]
