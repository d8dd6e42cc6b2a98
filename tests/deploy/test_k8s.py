"""deploy/k8s: the base and the production overlay, rendered, are valid Kubernetes objects (kubernetes-validate's
schemas) with the probes, rollout, autoscaling and policies a deployment needs.

The overlay is rendered here with a small kustomize (namespace, images and strategic-merge patches, which is all
the overlay uses); where the `kubectl` binary is installed, its own `kubectl kustomize` must render the same."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.parts import DEPLOY

K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.30"
Doc = dict[str, Any]


def _load(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _key(doc: Doc) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def _merge(base: Any, patch: Any) -> Any:
    """A strategic merge as kustomize does it for these objects: maps merge, lists of named maps merge by name,
    other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(item, dict) and "name" in item for item in [*base, *patch])
    ):
        by_name = {item["name"]: item for item in base}
        result = [_merge(by_name[item["name"]], item) if item["name"] in by_name else item for item in patch]
        patched = {item["name"] for item in patch}
        return [item for item in base if item["name"] not in patched] + result
    return copy.deepcopy(patch)


def _pod_specs(doc: Doc) -> list[Doc]:
    if doc["kind"] in ("Deployment", "Job"):
        return [doc["spec"]["template"]["spec"]]
    return []


def render(folder: Path) -> list[Doc]:
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert set(kustomization) <= {"apiVersion", "kind", "resources", "namespace", "images", "patches"}, (
        "the overlay uses kustomize features this renderer does not know"
    )
    docs: list[Doc] = []
    for resource in kustomization["resources"]:
        path = folder / resource
        docs += render(path) if path.is_dir() else _load(path)
    for patch_ref in kustomization.get("patches", []):
        assert set(patch_ref) == {"path"}
        for patch in _load(folder / patch_ref["path"]):
            index = [_key(doc) for doc in docs].index(_key(patch))
            docs[index] = _merge(docs[index], patch)
    for image in kustomization.get("images", []):
        for doc in docs:
            for spec in _pod_specs(doc):
                for container in spec["containers"]:
                    if container["image"].split(":")[0] == image["name"]:
                        container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    if "namespace" in kustomization:
        for doc in docs:
            doc["metadata"]["namespace"] = kustomization["namespace"]
    return docs


@pytest.fixture(scope="module", params=["base", "overlays/production"])
def rendered(request: pytest.FixtureRequest) -> list[Doc]:
    return render(K8S / request.param)


def test_every_object_is_valid_kubernetes(rendered: list[Doc]) -> None:
    for doc in rendered:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_kubectl_kustomize_renders_the_same() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the overlay is checked with this module's renderer only")
    for folder in ("base", "overlays/production"):
        done = subprocess.run([kubectl, "kustomize", str(K8S / folder)], capture_output=True, text=True, check=True)
        theirs = {_key(doc): doc for doc in yaml.safe_load_all(done.stdout) if doc}
        ours = {_key(doc): doc for doc in render(K8S / folder)}
        assert theirs == ours, folder


def _objects(docs: list[Doc]) -> dict[tuple[str, str], Doc]:
    return {_key(doc): doc for doc in docs}


def test_the_deployments_probe_roll_and_run_unprivileged(rendered: list[Doc]) -> None:
    objects = _objects(rendered)
    api = objects["Deployment", "memex-api"]
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/api/health"
    assert container["startupProbe"]
    assert container["args"] == ["serve", "--no-worker"]
    for name in ("memex-api", "memex-worker"):
        deployment = objects["Deployment", name]
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for c in pod["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert c["resources"]["limits"]["memory"]
            assert c["envFrom"] == [{"configMapRef": {"name": "memex-config"}}]
            assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(c)
        secret_volumes = [v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v]
        assert secret_volumes == ["memex-secrets"]
        assert ("HorizontalPodAutoscaler", name) in objects and ("PodDisruptionBudget", name) in objects
        hpa = objects["HorizontalPodAutoscaler", name]["spec"]
        assert hpa["metrics"][0]["resource"]["name"] == "cpu"
        assert hpa["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["maxReplicas"]
    job = objects["Job", "memex-migrate"]["spec"]["template"]["spec"]
    assert job["containers"][0]["args"] == ["migrate"]


def test_settings_in_the_config_map_are_memex_settings(rendered: list[Doc]) -> None:
    from memex.settings import Settings

    known = {f"MEMEX_{name.upper()}" for name in Settings.model_fields}
    data = _objects(rendered)["ConfigMap", "memex-config"]["data"]
    for variable in data:
        assert variable.removesuffix("_FILE") in known, variable
    assert not {"MEMEX_DATABASE_URL", "MEMEX_ADMIN_PASSWORD", "MEMEX_METRICS_TOKEN"} & set(data)


def test_the_ingress_streams_server_sent_events(rendered: list[Doc]) -> None:
    ingress = _objects(rendered)["Ingress", "memex"]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 300
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "25m"
    assert ingress["spec"]["tls"]
    networkpolicies = [doc for doc in rendered if doc["kind"] == "NetworkPolicy"]
    assert {"Ingress", "Egress"} <= {kind for doc in networkpolicies for kind in doc["spec"]["policyTypes"]}


def test_the_production_overlay_changes_what_it_says() -> None:
    objects = _objects(render(K8S / "overlays/production"))
    api = objects["Deployment", "memex-api"]
    assert api["metadata"]["namespace"] == "memex"
    assert api["spec"]["replicas"] == 3
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/memex:0.1.0"
    assert container["resources"]["limits"]["memory"] == "2Gi"
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/health/ready"  # kept from the base
    assert objects["ConfigMap", "memex-config"]["data"]["MEMEX_LOG_FORMAT"] == "json"  # kept from the base
