"""deploy/k8s/: validated offline against the Kubernetes schemas kubernetes-validate ships, and
the settings the issue asks for asserted one by one. In the integration tier only because the
unit tier also runs inside the image, which holds no deploy/ folder."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from services.api_gateway.settings import SECRETS, ConfigError, Settings

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
VERSION = kubernetes_validate.latest_version()


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((K8S / name).read_text())
    return data


@pytest.mark.parametrize("name", ["deployment.yaml", "service.yaml", "networkpolicy.yaml"])
def test_manifest_validates_strictly(name: str) -> None:
    kubernetes_validate.validate(_load(name), VERSION, strict=True)


def test_the_validation_can_fail() -> None:
    broken = copy.deepcopy(_load("deployment.yaml"))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/ready"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSION, strict=True)


@pytest.fixture
def pod() -> dict[str, Any]:
    spec: dict[str, Any] = _load("deployment.yaml")["spec"]["template"]["spec"]
    return spec


def test_rolling_update_never_takes_a_pod_away_first() -> None:
    strategy = _load("deployment.yaml")["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_probes_are_health_and_ready(pod: dict[str, Any]) -> None:
    (app,) = pod["containers"]
    assert app["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert app["livenessProbe"]["httpGet"]["path"] == "/health"


def test_security_settings(pod: dict[str, Any]) -> None:
    (app,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    ctx = app["securityContext"]
    assert ctx["runAsNonRoot"] is True
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"]["drop"] == ["ALL"]
    assert "add" not in ctx["capabilities"]
    assert {"cpu", "memory"} <= set(app["resources"]["limits"])


def test_secret_files_come_from_the_one_secret_volume(pod: dict[str, Any]) -> None:
    (app,) = pod["containers"]
    volumes = {v["name"] for v in pod["volumes"] if v.get("secret", {}).get("secretName") == "api-gateway"}
    mounts = [m["mountPath"] + "/" for m in app["volumeMounts"] if m["name"] in volumes]
    files = {var["name"]: var["value"] for var in app["env"] if var["name"].endswith("_FILE")}
    assert set(files) == {f"{name}_FILE" for name in SECRETS}
    for name, path in files.items():
        assert path.startswith(tuple(mounts)), f"{name}={path} is not in the mounted Secret (at {mounts})"


# What the Secrets the manifest names would hold, stood in by recognisable values: the volume
# Secret (`api-gateway`) one file per secret setting of the service; any other Secret (one
# read into the environment) those settings by their variable names, as a settings Secret would.
def _secret_value(setting: str) -> str:
    return f"client:{setting.lower()}-0123456789abcdef" if setting == "API_KEYS" else f"{setting}-value"


def _secret_data(name: str) -> dict[str, str]:
    if name == "api-gateway":
        return {setting.lower(): _secret_value(setting) for setting in SECRETS}
    return {setting: _secret_value(setting) for setting in SECRETS}


def _container_environment(pod: dict[str, Any], mounts: Path) -> dict[str, str]:
    """The environment Kubernetes gives the container: envFrom sources in order, then env
    (which wins over them); files of a mounted Secret volume written under `mounts`, and
    paths into them rewritten to point there."""
    (app,) = pod["containers"]
    environment: dict[str, str] = {}
    for source in app.get("envFrom", []):
        if "secretRef" in source:
            environment.update(_secret_data(source["secretRef"]["name"]))
        # A ConfigMap holds no secret: its settings have defaults, so an empty one stands in.
    for var in app.get("env", []):
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        environment[var["name"]] = _secret_data(ref["name"])[ref["key"]] if ref else var["value"]
    secret_volumes = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    for mount in app.get("volumeMounts", []):
        if mount["name"] not in secret_volumes:
            continue
        folder = mounts / mount["mountPath"].lstrip("/")
        folder.mkdir(parents=True)
        for key, value in _secret_data(secret_volumes[mount["name"]]).items():
            (folder / key).write_text(value)
        for name, value in environment.items():
            if value.startswith(mount["mountPath"] + "/"):
                environment[name] = str(mounts / value.lstrip("/"))
    return environment


def test_the_service_starts_with_the_environment_the_manifest_gives_it(
    pod: dict[str, Any], tmp_path: Path
) -> None:
    environment = _container_environment(pod, tmp_path)
    try:
        settings = Settings.from_env(environment)
    except ConfigError as exc:
        pytest.fail(f"the pod would crash-loop: the service refuses its environment: {exc}")
    assert settings.database_url == _secret_value("DATABASE_URL")  # read from the mounted file
    assert settings.api_keys_file is not None, "API keys from a file are rotated in place; as a variable, not"


def test_no_secret_value_reaches_the_environment(pod: dict[str, Any], tmp_path: Path) -> None:
    environment = _container_environment(pod, tmp_path)
    leaked = sorted(name for name, value in environment.items() for s in SECRETS if _secret_value(s) in value)
    assert not leaked, f"secret values in the container's environment: {leaked}; mount them as files (*_FILE)"


def test_image_is_pinned_by_digest(pod: dict[str, Any]) -> None:
    (app,) = pod["containers"]
    assert re.fullmatch(r"[a-z0-9./-]+@sha256:[0-9a-f]{64}", app["image"]), app["image"]


def test_service_and_network_policy_select_the_deployment() -> None:
    labels = _load("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    for name in ("service.yaml", "networkpolicy.yaml"):
        spec = _load(name)["spec"]
        selector = spec.get("selector") or spec["podSelector"]["matchLabels"]
        assert selector.items() <= labels.items()
    assert set(_load("networkpolicy.yaml")["spec"]["policyTypes"]) == {"Ingress", "Egress"}


def test_prometheus_rule_holds_exactly_the_tested_alerts() -> None:
    rule = _load("prometheusrule.yaml")
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    alerts = yaml.safe_load((ROOT / "monitoring" / "alerts.yml").read_text())
    assert rule["spec"]["groups"] == alerts["groups"]
