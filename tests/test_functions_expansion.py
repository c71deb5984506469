"""check-pvc-status says whether the claim's volume can be expanded (the RUNBOOK's promise): its
StorageClass's `allowVolumeExpansion` and provisioner, read from the fake_kube API
(`GET /apis/storage.k8s.io/v1/storageclasses/{name}`, cluster-scoped). Best effort: without a
class, or with one that cannot be read, `expandable` is None with why, and the report still succeeds."""

from __future__ import annotations

import pytest

from agent_sre.functions.result import Status
from tests.functions_harness import pvc, runner_for, storage_class, trigger_for
from tests.functions_scenarios import SCENARIOS
from tests.kube_api import FakeKube
from tests.kube_rbac import Grant

LABELS = SCENARIOS["check-pvc-status"].labels
CLASSES = "/apis/storage.k8s.io/v1/storageclasses"


async def _report(fake_kube: FakeKube, tmp_path, claim: dict, *classes: dict):
    for obj in (claim, *classes):
        fake_kube.add(obj)
    runner = await runner_for(fake_kube, tmp_path)
    result = await runner.run(trigger_for("check-pvc-status", LABELS))
    assert result is not None and result.status is Status.SUCCEEDED, result
    assert fake_kube.writes == []
    return result


def _class_reads(fake_kube: FakeKube) -> list[str]:
    return [r.path for r in fake_kube.requests if r.path.startswith(CLASSES)]


async def test_an_expandable_class_says_so_with_its_provisioner(fake_kube, tmp_path):
    result = await _report(fake_kube, tmp_path, pvc(), storage_class(expandable=True), storage_class(expandable=False))
    assert result.report["expansion"] == {"expandable": True, "provisioner": "driver.longhorn.io"}
    assert result.report["storageClass"] == "longhorn"
    assert "10Gi of 10Gi requested, expandable;" in result.message
    assert _class_reads(fake_kube) == [f"{CLASSES}/longhorn"]


async def test_a_class_without_allow_volume_expansion_is_not_expandable(fake_kube, tmp_path):
    result = await _report(fake_kube, tmp_path, pvc(storage_class="local-path"), storage_class(expandable=False))
    assert result.report["expansion"] == {"expandable": False, "provisioner": "rancher.io/local-path"}
    assert "requested, not expandable;" in result.message


async def test_the_beta_class_annotation_wins_over_the_spec(fake_kube, tmp_path):
    claim = pvc(storage_class="longhorn")
    claim["metadata"]["annotations"] = {"volume.beta.kubernetes.io/storage-class": "local-path"}
    result = await _report(fake_kube, tmp_path, claim, storage_class(expandable=True), storage_class(expandable=False))
    assert result.report["storageClass"] == "local-path" and result.report["expansion"]["expandable"] is False
    assert _class_reads(fake_kube) == [f"{CLASSES}/local-path"]


@pytest.mark.parametrize("named", [None, ""])
async def test_a_claim_without_a_class_has_unknown_expansion(fake_kube, tmp_path, named):
    claim = pvc()
    claim["spec"].pop("storageClassName") if named is None else claim["spec"].update(storageClassName=named)
    result = await _report(fake_kube, tmp_path, claim, storage_class())
    assert result.report["expansion"] == {"expandable": None, "unavailable": "the claim names no StorageClass"}
    assert "expansion unknown: the claim names no StorageClass;" in result.message
    assert _class_reads(fake_kube) == []


async def test_a_missing_class_has_unknown_expansion(fake_kube, tmp_path):
    result = await _report(fake_kube, tmp_path, pvc())
    assert result.report["expansion"] == {"expandable": None, "unavailable": "StorageClass longhorn does not exist"}
    assert "expansion unknown: StorageClass longhorn does not exist" in result.message


async def test_a_role_without_get_storageclasses_still_reports(fake_kube, tmp_path):
    fake_kube.grants = [Grant(({"apiGroups": [""], "resources": ["persistentvolumeclaims", "events"],
                                "verbs": ["get", "list"]},), None)]
    result = await _report(fake_kube, tmp_path, pvc(), storage_class())
    expansion = result.report["expansion"]
    assert expansion["expandable"] is None and "provisioner" not in expansion
    assert expansion["unavailable"].startswith("StorageClass longhorn answered 403 Forbidden")
    assert "(the function's role does not grant it)" in result.message
    assert ("get", "storageclasses", None) in fake_kube.forbidden
