"""Each function re-checks the world before it acts: what the alert described may be over.

Skipped (with the reason) when there is nothing to do; failed when the tool it replaces would
refuse; and never a write in either case.
"""

from __future__ import annotations

import http.server
import json

import pytest

from agent_sre.functions.result import Status
from tests.conftest import threaded_http
from tests.functions_harness import (
    certificate,
    crashing_pod,
    deployment,
    failed_job,
    flux_object,
    hpa,
    runner_for,
    trigger_for,
)
from tests.kube_api import FakeKube, Request

POD = {"pod": "api-7f9", "namespace": "shop"}
DEPLOYMENT = {"deployment": "api", "namespace": "shop"}


@pytest.fixture
def fake(fake_kube: FakeKube) -> FakeKube:
    return fake_kube  # tests/conftest.py's


def _healthy(pod):
    pod["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    pod["status"]["containerStatuses"][0].update(ready=True, state={"running": {"startedAt": "2026-12-07T07:00:00Z"}})
    return pod


def _static(pod):
    pod["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": "node-1", "uid": "n",
                                           "controller": True}]
    return pod


def _terminating(pod):
    pod["metadata"]["deletionTimestamp"] = "2026-12-07T07:01:00Z"
    return pod


CASES = [
    # (function, labels, objects, status, words in the message)
    ("pod-restart", POD, [], Status.SKIPPED, "gone"),
    ("pod-restart", POD, [crashing_pod(owned=False)], Status.SKIPPED, "no controller"),
    ("pod-restart", POD, [_healthy(crashing_pod())], Status.SKIPPED, "ready now"),
    ("pod-restart", POD, [_terminating(crashing_pod())], Status.SKIPPED, "terminating"),
    ("pod-restart", POD, [_static(crashing_pod())], Status.SKIPPED, "static pod"),
    ("flux-reconcile-kustomization", {"name": "apps", "namespace": "flux-system"},
     [flux_object("Kustomization", ready="True")], Status.SKIPPED, "Ready at generation 3"),
    ("flux-reconcile-helmrelease", {"name": "apps", "namespace": "flux-system"},
     [{**flux_object("HelmRelease"), "spec": {"suspend": True}}], Status.FAILED, "suspended"),
    ("flux-reconcile-gitrepository", {"name": "apps", "namespace": "flux-system"}, [], Status.SKIPPED, "does not exist"),
    ("deployment-rollout-restart", DEPLOYMENT, [deployment(paused=True)], Status.FAILED, "paused"),
    ("deployment-rollout-restart", DEPLOYMENT, [], Status.SKIPPED, "does not exist"),
    ("scale-pod", DEPLOYMENT, [deployment(replicas=5)], Status.SKIPPED, "ceiling 5"),
    ("scale-pod", DEPLOYMENT, [deployment(), hpa(target="api", max_replicas=5)], Status.SKIPPED, "ceiling 5"),
    ("scale-pod", {"pod": "api-7f9", "namespace": "shop"}, [], Status.SKIPPED, "only a Deployment"),
    ("certificate-renew", {"name": "web-tls", "namespace": "shop"}, [certificate(issuing=True)], Status.SKIPPED,
     "being issued"),
    ("job-retry", {"job_name": "backup-123", "namespace": "shop"}, [failed_job(state="Complete")], Status.SKIPPED,
     "succeeded since"),
    ("job-retry", {"job_name": "backup-123", "namespace": "shop"}, [failed_job(state="FailureTarget")], Status.SKIPPED,
     "has not failed"),
    ("node-disk-cleanup", {"node": "node-9"}, [], Status.SKIPPED, "does not exist"),
    ("check-pvc-status", {"persistentvolumeclaim": "gone", "namespace": "shop"}, [], Status.SKIPPED, "does not exist"),
    ("pod-check-status", {"namespace": "empty"}, [], Status.SKIPPED, "no pods"),
]


@pytest.mark.parametrize(("function", "labels", "objects", "status", "words"), CASES,
                         ids=[f"{c[0]}-{c[4].replace(' ', '-')}" for c in CASES])
async def test_the_function_rechecks_the_world_first(fake, tmp_path, function, labels, objects, status, words):
    for obj in objects:
        fake.add(obj)
    runner = await runner_for(fake, tmp_path)

    result = await runner.run(trigger_for(function, labels))

    assert result is not None and result.status is status, result
    assert words in result.message
    assert fake.writes == []


async def test_a_pod_replaced_between_the_look_and_the_delete_is_left_alone(fake, tmp_path):
    # Given the pod the alert saw, replaced by its ReplicaSet (same name, a new UID) just before the DELETE
    fake.add(crashing_pod())

    def replace(request: Request) -> None:
        if request.method == "DELETE":
            fake.add(crashing_pod())  # a new uid

    fake.hooks.append(replace)
    runner = await runner_for(fake, tmp_path)

    result = await runner.run(trigger_for("pod-restart", POD))

    assert result is not None and result.status is Status.SKIPPED and "replaced meanwhile" in result.message
    assert fake.get("Pod", "api-7f9", "shop") is not None  # the replacement lives


async def test_a_concurrent_scale_is_a_conflict_not_a_second_step(fake, tmp_path):
    fake.add(deployment())

    def scale_meanwhile(request: Request) -> None:
        if request.method == "PUT":
            fake.add(deployment(replicas=4))  # someone else scaled it: a new resourceVersion

    fake.hooks.append(scale_meanwhile)
    runner = await runner_for(fake, tmp_path)

    result = await runner.run(trigger_for("scale-pod", DEPLOYMENT))

    assert result is not None and result.status is Status.FAILED and "409" in result.message
    assert fake.get("Deployment", "api", "shop")["spec"]["replicas"] == 4  # type: ignore[index]


async def test_a_job_retried_with_its_generated_selector_would_be_refused(fake, tmp_path):
    # The fake refuses what the apiserver refuses: the proof that job-retry's stripping matters.
    from kubernetes_asyncio.client import ApiException

    from agent_sre.functions.kube import connect

    fake.add(failed_job())
    kube = await connect(kubeconfig=fake.kubeconfig(tmp_path / "kubeconfig"))
    copied = dict(fake.get("Job", "backup-123", "shop"))  # type: ignore[arg-type]
    copied["metadata"] = {"name": "backup-123-copy", "namespace": "shop"}
    try:
        with pytest.raises(ApiException) as refused:
            await kube.batch.create_namespaced_job("shop", copied)
    finally:
        await kube.close()
    assert refused.value.status == 422 and "not auto-generated" in refused.value.body


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers["Content-Length"])
        _Hook.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize("style", ["slack", "json"])
async def test_escalate_posts_the_alert_and_reasoning_to_the_webhook(fake, tmp_path, style):
    _Hook.received = []
    labels = {"namespace": "shop", "pod": "<!channel> api"}
    with threaded_http(_Hook) as port:
        runner = await runner_for(fake, tmp_path, escalate_webhook_url=f"http://127.0.0.1:{port}/hook",
                                  escalate_webhook_format=style)
        result = await runner.run(trigger_for("escalate", labels, alertname="KubePodCrashLooping"))

    assert result is not None and result.status is Status.SUCCEEDED
    [posted] = _Hook.received
    if style == "slack":
        assert "KubePodCrashLooping" in posted["text"] and "the runbook says so" in posted["text"]
        assert "<!channel>" not in posted["text"] and "&lt;!channel&gt;" in posted["text"]  # no mention injected
    else:
        assert posted["alertname"] == "KubePodCrashLooping" and posted["reasoning"] == "the runbook says so"
        assert posted["labels"]["pod"] == "<!channel> api"
    assert fake.requests == []


async def test_escalate_carries_the_chains_suggestions(fake, tmp_path):
    from agent_sre.functions.trigger import read_trigger
    from agent_sre.schemas.decision import Decision
    from agent_sre.worker.publisher import build_trigger
    from tests.functions_harness import alert_for

    _Hook.received = []
    suggestion = {"lambda_function": "pod-restart", "parameters": {"name": "api", "namespace": "shop"},
                  "confidence": 0.61, "selector": "trm", "why_not": "below its threshold"}
    message = build_trigger(alert_for({"namespace": "shop"}), Decision(lambda_function="escalate", confidence=1.0),
                            extra={"escalation": "undecided", "suggestions": [suggestion]})
    with threaded_http(_Hook) as port:
        runner = await runner_for(fake, tmp_path, escalate_webhook_url=f"http://127.0.0.1:{port}/hook")
        result = await runner.run(read_trigger(message.body, message.headers, content_type=message.content_type))

    assert result is not None and result.status is Status.SUCCEEDED
    [posted] = _Hook.received
    assert "Suggested: pod-restart name=api namespace=shop (trm, 0.61): not taken, below its threshold" in posted["text"]


async def test_a_redelivered_escalation_is_posted_once(fake, tmp_path):
    _Hook.received = []
    trigger = trigger_for("escalate", {"namespace": "shop"})
    with threaded_http(_Hook) as port:
        runner = await runner_for(fake, tmp_path, escalate_webhook_url=f"http://127.0.0.1:{port}/hook")
        results = [await runner.run(trigger) for _ in range(2)]

    assert results[0] is not None and results[0].status is Status.SUCCEEDED and results[1] is None
    assert len(_Hook.received) == 1


async def test_escalate_without_a_webhook_is_acknowledged(fake, tmp_path):
    runner = await runner_for(fake, tmp_path)
    result = await runner.run(trigger_for("escalate", {"namespace": "shop"}))
    assert result is not None and result.status is Status.SUCCEEDED and "acknowledged" in result.message
    assert result.report == {"notified": False}


async def test_a_failing_webhook_fails_the_escalation(fake, tmp_path):
    runner = await runner_for(fake, tmp_path, escalate_webhook_url="http://127.0.0.1:9/nothing")
    result = await runner.run(trigger_for("escalate", {"namespace": "shop"}))
    assert result is not None and result.status is Status.FAILED and "cannot be reached" in result.message


async def test_reports_carry_status_conditions_and_events(fake, tmp_path):
    from tests.functions_scenarios import SCENARIOS

    for name in ("pod-check-status", "check-pvc-status"):
        SCENARIOS[name].seed(fake)
    runner = await runner_for(fake, tmp_path)

    pods = await runner.run(trigger_for("pod-check-status", SCENARIOS["pod-check-status"].labels))
    claim = await runner.run(trigger_for("check-pvc-status", SCENARIOS["check-pvc-status"].labels))

    assert pods is not None and pods.report is not None and claim is not None and claim.report is not None
    [pod] = pods.report["pods"]
    assert pod["containers"][0] == {"name": "api", "ready": False, "restarts": 7, "state": "waiting",
                                    "reason": "CrashLoopBackOff"}
    assert pod["events"][0]["reason"] == "BackOff" and "not ready: worker-5d8" in pods.message
    assert claim.report["phase"] == "Bound" and claim.report["capacity"] == "10Gi"
    assert claim.report["events"][0]["reason"] == "FailedMount"
    [listing, *_] = [(r.path, r.query) for r in fake.requests if r.path.endswith("/pods")]
    assert listing == ("/api/v1/namespaces/shop/pods", {"labelSelector": "service=worker"})


FLUX = {"name": "apps", "namespace": "flux-system"}


@pytest.mark.parametrize(("controller", "wait_s", "status", "words"), [
    ("True", 5, Status.SUCCEEDED, "reconciled and Ready: Applied revision"),
    ("False", 5, Status.FAILED, "reconciled and is not Ready: ReconciliationFailed"),
    (None, 0.3, Status.FAILED, "did not handle it within 0.3 s"),
    (None, 0, Status.SUCCEEDED, "requested reconciliation"),
])
async def test_flux_reconcile_waits_for_the_controller_as_flux_does(fake, tmp_path, controller, wait_s, status, words):
    from tests.functions_harness import flux_controller

    fake.add(flux_object("Kustomization"))
    if controller is not None:
        flux_controller("Kustomization", ready=controller, message="Applied revision: main@sha1:abc")(fake)
    runner = await runner_for(fake, tmp_path, functions_flux_wait_s=wait_s)

    result = await runner.run(trigger_for("flux-reconcile-kustomization", FLUX))

    assert result is not None and result.status is status and words in result.message, result
    methods = [r.method for r in fake.requests]
    assert methods[:2] == ["GET", "PATCH"]
    assert methods[2:] == [] if wait_s == 0 else (methods[2:] and set(methods[2:]) == {"GET"})  # polls, reads only


async def test_flux_reconcile_does_not_wait_in_dry_run(fake, tmp_path):
    fake.add(flux_object("Kustomization"))
    runner = await runner_for(fake, tmp_path, dry_run=True, functions_flux_wait_s=30)

    result = await runner.run(trigger_for("flux-reconcile-kustomization", FLUX))

    assert result is not None and result.status is Status.SUCCEEDED and "requested" in result.message
    assert [r.method for r in fake.requests] == ["GET", "PATCH"]
