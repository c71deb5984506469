"""deploy/kubernetes/overlays/functions, rendered by `kubectl kustomize` and checked offline as the
worker's manifests are (tests/test_deploy.py): schemas, one namespace, pods that hold nothing they
do not need, and the generated file still what the generator writes."""

from __future__ import annotations

import pytest

from agent_sre.functions.manifests import account, render
from agent_sre.functions.permissions import PERMISSIONS
from agent_sre.schemas.catalog import load_catalog
from agent_sre.settings import Settings
from tests.deploy_schemas import CUSTOM_RESOURCES
from tests.test_deploy import CORE_KINDS, KUBERNETES_VERSIONS, need
from tests.test_functions_rbac import OVERLAY, rendered

RBAC_KINDS = {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def _deployments() -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in rendered()
            if d["kind"] == "Deployment" and d["metadata"]["name"].startswith("agent-sre-fn-")}


def test_the_generated_file_is_what_the_generator_writes():
    assert (OVERLAY / "functions.yaml").read_text() == render(), "run: agent-sre functions manifests > " \
        "deploy/kubernetes/overlays/functions/functions.yaml"


def test_every_catalog_function_has_permissions_and_a_deployment():
    names = set(load_catalog().names)
    assert set(PERMISSIONS) == names
    assert set(_deployments()) == {account(name) for name in names}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_manifests_pass_kubernetes_schemas(version):
    validator = need("kubernetes_validate", "kubernetes-validate")
    version = validator.utils.latest_version() if version == "latest" else version
    for doc in rendered():
        if doc["kind"] in CORE_KINDS | RBAC_KINDS:
            try:
                validator.validate(doc, version, strict=True)
            except validator.ValidationError as exc:
                pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} is invalid for Kubernetes {version}: {exc}")
        else:
            jsonschema = need("jsonschema", "jsonschema")
            jsonschema.validate(doc, CUSTOM_RESOURCES[(doc["apiVersion"], doc["kind"])])


def test_everything_lands_in_the_agent_sre_namespace():
    for doc in rendered():
        if doc["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert doc["metadata"]["namespace"] == "agent-sre", (doc["kind"], doc["metadata"]["name"])
        for subject in doc.get("subjects", []):
            assert subject["namespace"] == "agent-sre"


def test_each_function_pod_runs_its_function_alone_as_its_own_account_in_dry_run():
    settings = set(f"AGENT_SRE_{name.upper()}" for name in Settings.model_fields)
    for name, deployment in _deployments().items():
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        env = {item["name"]: item["value"] for item in container["env"]}
        assert set(env) <= settings
        assert account(env["AGENT_SRE_FUNCTIONS"]) == name == pod["serviceAccountName"]
        assert env["AGENT_SRE_FUNCTIONS_QUEUE"] == f"agent-sre.functions.{env['AGENT_SRE_FUNCTIONS']}"
        assert env["AGENT_SRE_FUNCTIONS_DRY_RUN"] == "true"
        assert container["command"] == ["agent-sre", "functions", "consume"]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
        assert security["capabilities"] == {"drop": ["ALL"]} and pod["securityContext"]["runAsNonRoot"]
        assert pod["automountServiceAccountToken"] is bool(PERMISSIONS[env["AGENT_SRE_FUNCTIONS"]].cluster
                                                           or PERMISSIONS[env["AGENT_SRE_FUNCTIONS"]].own)
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["catalog"]["configMap"]["name"].startswith("agent-sre-catalog-")  # the worker's, hashed
