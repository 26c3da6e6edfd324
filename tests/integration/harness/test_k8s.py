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


def test_secrets_come_by_reference_and_as_files(pod: dict[str, Any]) -> None:
    (app,) = pod["containers"]
    assert any("secretRef" in source for source in app["envFrom"])
    assert {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v} == {"api-gateway"}
    for var in app["env"]:
        # Only file paths and references: never a secret's value.
        assert var["name"].endswith("_FILE") or "valueFrom" in var, var
        assert var.get("value", "/").startswith("/"), var


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
