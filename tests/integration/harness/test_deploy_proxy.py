"""The proxy's configuration check, with the haproxy logical image: a configuration that fails
`haproxy -c` is refused before anything starts, and nothing of the run is left."""

from __future__ import annotations

from pathlib import Path

import pytest

from tierharness.config import load_settings
from tierharness.deploy import rehearsal_stack
from tierharness.deploy.proxy import ProxyError, check_config, haproxy_config
from tierharness.deploy.rehearsal_stack import rehearsal
from tierharness.deploy.timeline import Timeline
from tierharness.engine.client import engine_client
from tierharness.engine.labels import LABEL_RUN, RunIdentity
from tierharness.engine.run_ids import new_run_id
from tierharness.imaging.resolution import resolve_images

pytestmark = pytest.mark.usefixtures("harness_reaper")


@pytest.fixture(scope="module")
def haproxy_image() -> str:
    return resolve_images(load_settings(), ["haproxy"], log=lambda _m: None)[0].ref


@pytest.fixture
def identity() -> RunIdentity:
    return RunIdentity.for_this_process(new_run_id("test-proxy-"))


def _write(folder: Path, config: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    for name, text in (("haproxy.cfg", config), ("active.map", "active blue\n")):
        (folder / name).write_text(text)
        (folder / name).chmod(0o644)
    return folder


def test_the_generated_configuration_passes_haproxy_c(
    haproxy_image: str, identity: RunIdentity, tmp_path: Path
) -> None:
    check_config(haproxy_image, identity, _write(tmp_path / "ok", haproxy_config(8000)))


def test_a_broken_configuration_is_refused(haproxy_image: str, identity: RunIdentity, tmp_path: Path) -> None:
    broken = haproxy_config(8000).replace("mode http", "mode htttp", 1)
    with pytest.raises(ProxyError, match=r"haproxy -c\) failed") as info:
        check_config(haproxy_image, identity, _write(tmp_path / "bad", broken))
    assert "htttp" in str(info.value)  # haproxy's own words are in the error
    assert "nothing was changed" in str(info.value)


def test_a_rehearsal_with_a_broken_proxy_config_starts_nothing(
    identity: RunIdentity, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rehearsal_stack, "haproxy_config", lambda port: "frontend\n  bind :notaport\n")
    settings = load_settings()
    blue = settings.image("postgres").local  # any local image: nothing may start anyway
    with (
        pytest.raises(ProxyError),
        rehearsal(settings, identity, blue, folder=tmp_path / "d", timeline=Timeline(), users=1, instances=1),
    ):
        pytest.fail("the rehearsal started")
    client = engine_client()
    flt = {"label": [f"{LABEL_RUN}={identity.run_id}"]}
    containers = client.containers.list(all=True, filters=flt, ignore_removed=True)
    leftovers = containers + client.networks.list(filters=flt)
    assert leftovers == []
