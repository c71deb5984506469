"""`flux reconcile --with-source` (AGENT_SRE_FUNCTIONS_FLUX_WITH_SOURCE, off by default), against
the fake_kube API with Flux's controllers played by tests/functions_harness.py's flux_controller
(it sets `status.lastHandledReconcileAt` to each requestedAt it is patched with): the source first,
waited for until it handled exactly that request and is Ready, then the object; a source that is
not handled in time, not Ready, suspended or gone fails before the object is touched."""

from __future__ import annotations

import pytest

from agent_sre.functions.result import Status
from tests.functions_harness import flux_controller, flux_object, flux_source, runner_for, trigger_for
from tests.kube_api import FakeKube

FLUX = {"name": "apps", "namespace": "flux-system"}
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
SOURCES = "/apis/source.toolkit.fluxcd.io/v1/namespaces"
KUSTOMIZATION = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/apps"
HELMRELEASE = "/apis/helm.toolkit.fluxcd.io/v2/namespaces/flux-system/helmreleases/apps"
GIT = f"{SOURCES}/flux-system/gitrepositories/flux-system"


def _seed(fake: FakeKube, *objects: dict, controllers: tuple[str, ...] = ()) -> None:
    for obj in objects:
        fake.add(obj)
    for kind in controllers:
        flux_controller(kind)(fake)


async def _run(fake: FakeKube, tmp_path, function: str = "flux-reconcile-kustomization", **settings):
    runner = await runner_for(fake, tmp_path, **{"functions_flux_with_source": True, **settings})
    result = await runner.run(trigger_for(function, FLUX))
    assert result is not None
    return result


def _patched(fake: FakeKube) -> list[str]:
    assert all(r.method == "PATCH" for r in fake.writes)
    return [r.path for r in fake.writes]


async def test_a_kustomizations_source_is_handled_before_the_kustomization_is_annotated(fake_kube, tmp_path):
    _seed(fake_kube, flux_object("Kustomization"), flux_source("GitRepository", "flux-system"),
          controllers=("Kustomization", "GitRepository"))
    result = await _run(fake_kube, tmp_path)
    assert result.status is Status.SUCCEEDED, result
    assert _patched(fake_kube) == [GIT, KUSTOMIZATION]
    stamp = fake_kube.writes[0].body["metadata"]["annotations"][REQUESTED_AT]
    for write in fake_kube.writes:  # the annotation, nothing else, as a merge patch
        assert write.content_type == "application/merge-patch+json" and list(write.body) == ["metadata"]
        assert list(write.body["metadata"]) == ["annotations"] and list(write.body["metadata"]["annotations"]) == [REQUESTED_AT]
    assert fake_kube.get("GitRepository", "flux-system", "flux-system")["status"]["lastHandledReconcileAt"] == stamp
    # the source was read back (handled) between its patch and the Kustomization's
    between = fake_kube.requests[fake_kube.requests.index(fake_kube.writes[0]) + 1:
                                 fake_kube.requests.index(fake_kube.writes[1])]
    assert [(r.method, r.path) for r in between] == [("GET", GIT)]
    assert "its source reconciled first: GitRepository flux-system/flux-system" in result.message
    assert [a.split(" reconcile.")[0] for a in result.actions] == [
        "annotated GitRepository flux-system/flux-system", "annotated Kustomization flux-system/apps"]


async def test_off_by_default_no_source_is_read(fake_kube, tmp_path):
    _seed(fake_kube, flux_object("Kustomization"), flux_source("GitRepository", "flux-system"),
          controllers=("Kustomization", "GitRepository"))
    result = await _run(fake_kube, tmp_path, functions_flux_with_source=False)
    assert result.status is Status.SUCCEEDED and _patched(fake_kube) == [KUSTOMIZATION]
    assert not [r for r in fake_kube.requests if r.path.startswith(SOURCES)]


@pytest.mark.parametrize(("spec", "namespace"), [
    # the HelmChart helm-controller made of the chart template, in its source's namespace
    ({"chart": {"spec": {"chart": "podinfo", "sourceRef": {"kind": "HelmRepository", "name": "podinfo",
                                                           "namespace": "sources"}}}}, "sources"),
    ({"chartRef": {"kind": "HelmChart", "name": "flux-system-apps"}}, "flux-system"),
], ids=["chart-template", "chart-ref"])
async def test_a_helmreleases_chart_comes_first_and_its_repository_before_it(fake_kube, tmp_path, spec, namespace):
    _seed(fake_kube, flux_object("HelmRelease", **spec), flux_source("HelmRepository", "podinfo", namespace),
          flux_source("HelmChart", "flux-system-apps", namespace),
          controllers=("HelmRelease", "HelmRepository", "HelmChart"))
    result = await _run(fake_kube, tmp_path, "flux-reconcile-helmrelease")
    assert result.status is Status.SUCCEEDED, result
    assert _patched(fake_kube) == [f"{SOURCES}/{namespace}/helmrepositories/podinfo",
                                   f"{SOURCES}/{namespace}/helmcharts/flux-system-apps", HELMRELEASE]


async def test_an_oci_helm_repository_is_left_alone_as_flux_leaves_it(fake_kube, tmp_path):
    _seed(fake_kube, flux_object("HelmRelease"), flux_source("HelmRepository", "podinfo", type="oci"),
          flux_source("HelmChart", "flux-system-apps"), controllers=("HelmRelease", "HelmChart"))
    result = await _run(fake_kube, tmp_path, "flux-reconcile-helmrelease")
    assert result.status is Status.SUCCEEDED, result
    assert _patched(fake_kube) == [f"{SOURCES}/flux-system/helmcharts/flux-system-apps", HELMRELEASE]
    assert "an OCI HelmRepository: nothing to reconcile" in result.message


@pytest.mark.parametrize(("settings", "bound"), [
    ({"functions_flux_wait_s": 0.3}, "within 0.3 s (AGENT_SRE_FUNCTIONS_FLUX_WAIT_S)"),
    ({"functions_timeout_s": 0.5}, "within 0.45 s (90% of the function's timeout)"),
])
async def test_a_source_not_handled_in_time_fails_and_the_object_is_not_annotated(fake_kube, tmp_path, settings, bound):
    _seed(fake_kube, flux_object("Kustomization"), flux_source("GitRepository", "flux-system"),
          controllers=("Kustomization",))  # no source-controller
    result = await _run(fake_kube, tmp_path, **settings)
    assert result.status is Status.FAILED and _patched(fake_kube) == [GIT]
    stamp = fake_kube.writes[0].body["metadata"]["annotations"][REQUESTED_AT]
    assert (f"Kustomization flux-system/apps was not annotated: its source GitRepository flux-system/flux-system "
            f"did not handle the request {REQUESTED_AT}={stamp} (status.lastHandledReconcileAt") in result.message
    assert bound in result.message and "timed out" not in result.message


async def test_a_source_not_ready_once_handled_fails_before_the_object(fake_kube, tmp_path):
    _seed(fake_kube, flux_object("Kustomization"), flux_source("GitRepository", "flux-system"),
          controllers=("Kustomization",))
    flux_controller("GitRepository", ready="False", message="authentication required")(fake_kube)
    result = await _run(fake_kube, tmp_path)
    assert result.status is Status.FAILED and _patched(fake_kube) == [GIT]
    assert ("the source of Kustomization flux-system/apps, GitRepository flux-system/flux-system, reconciled and is "
            "not Ready: ReconciliationFailed: authentication required") in result.message


@pytest.mark.parametrize(("source", "words"), [
    (flux_source("GitRepository", "flux-system", suspend=True), "is suspended: flux refuses to reconcile it"),
    (None, "cannot be read: 404 NotFound"),
])
async def test_a_suspended_or_missing_source_fails_without_a_write(fake_kube, tmp_path, source, words):
    _seed(fake_kube, flux_object("Kustomization"), *([source] if source else []), controllers=("Kustomization",))
    result = await _run(fake_kube, tmp_path)
    assert result.status is Status.FAILED and words in result.message and fake_kube.writes == []


async def test_a_source_kind_flux_does_not_reconcile_fails_without_a_write(fake_kube, tmp_path):
    _seed(fake_kube, flux_object("Kustomization", sourceRef={"kind": "ExternalArtifact", "name": "x"}))
    result = await _run(fake_kube, tmp_path)
    assert result.status is Status.FAILED and fake_kube.writes == []
    assert "its source is a 'ExternalArtifact', which flux reconcile --with-source does not reconcile" in result.message


async def test_in_dry_run_both_are_sent_dry_and_nothing_is_waited_for(fake_kube, tmp_path):
    _seed(fake_kube, flux_object("Kustomization"), flux_source("GitRepository", "flux-system"))  # no controllers
    result = await _run(fake_kube, tmp_path, dry_run=True)
    assert result.status is Status.SUCCEEDED and _patched(fake_kube) == [GIT, KUSTOMIZATION]
    assert all(r.query.get("dryRun") == "All" for r in fake_kube.writes)
    assert REQUESTED_AT not in (fake_kube.get("GitRepository", "flux-system", "flux-system")["metadata"]
                                .get("annotations") or {})
