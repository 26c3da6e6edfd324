"""The blue-green switch of one candidate, behind the running rehearsal's proxy.

For each candidate: start green; wait for its HEALTHCHECK and /ready; smoke it through the
proxy's second frontend; switch the proxy (one runtime-API map update); watch green for the
settle window against the paging alerts in Prometheus; drain and stop blue. A failure at any
step routes traffic back to blue (if it had moved), takes green out and removes it, and says
why, with the time from the bad signal to blue serving alone.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from tierharness.deploy.monitor import PrometheusUnavailableError
from tierharness.deploy.probes import (
    BadSignal,
    container_health,
    get,
    prometheus_clean,
    prometheus_has,
    wait_healthy,
    wait_until,
)
from tierharness.deploy.rehearsal import Rehearsal
from tierharness.deploy.report import Outcome
from tierharness.errors import HarnessError

__all__ = ["deploy_candidate"]


@dataclass
class _Move:
    """One candidate's way through the switch: traffic from `old` to `slot`, and when it moved."""

    outcome: Outcome
    old: str
    slot: str
    switched: float | None = None  # monotonic instant of the switch, once made

    @property
    def label(self) -> str:
        return self.outcome.candidate


def deploy_candidate(reh: Rehearsal, image: str, label: str) -> Outcome:
    """Deploy `image` as green; switch to it or roll back. Never leaves the proxy half-switched:
    the switch is one map update, undone on any failure, Ctrl-C included."""
    old = reh.active
    move = _Move(Outcome(label, image, deployed=False), old, "green" if old == "blue" else "blue")
    outcome, slot = move.outcome, move.slot
    retried = reh.api.retries()
    reh.timeline.mark(f"[{label}] start green", image)
    try:
        instance = _start_green(reh, move, image)
        _switch(reh, move, instance)
        _retire_blue(reh, move)
        outcome.retries = reh.api.retries() - retried
        return outcome
    except BadSignal as bad:
        _roll_back(reh, move, bad)
        with contextlib.suppress(HarnessError):
            outcome.retries = reh.api.retries() - retried
        if slot in reh.apps:
            reh.remove(reh.apps.pop(slot), timeout=2)
            reh.instances.pop(slot, None)
        return outcome
    except BaseException:
        # Ctrl-C or an error of the harness itself: traffic goes back to blue before anything else.
        if move.switched is not None:
            with contextlib.suppress(Exception):
                reh.api.switch(old)
        raise


def _start_green(reh: Rehearsal, move: _Move, image: str) -> str:
    """Green healthy, ready, UP in the proxy and smoke-checked through it; its instance."""
    cfg, port, label, slot = reh.settings.deploy, reh.settings.stack.port, move.label, move.slot
    green, instance = reh.start_app(image, slot)
    wait_healthy(green, reh.settings.stack.health_timeout)
    status, _ = get(f"http://127.0.0.1:{reh.published(green, port)}/ready")
    if status != 200:
        raise BadSignal(f"green is healthy but GET /ready answered {status or 'nothing'}")
    reh.timeline.mark(f"[{label}] green healthy and ready", f"HEALTHCHECK and /ready, instance {instance}")
    reh.api.set_address(slot, reh.address(green), port)
    reh.api.set_state(slot, "ready")
    if not reh.api.wait_status(slot, "UP", 10):
        raise BadSignal("the proxy's health checks never saw green UP")
    _smoke(reh, cfg.smoke_requests)
    reh.timeline.mark(
        f"[{label}] smoke check passed", f"{cfg.smoke_requests} requests through the second frontend"
    )
    return instance


def _switch(reh: Rehearsal, move: _Move, instance: str) -> None:
    """The proxy routed to green, then green watched over the settle window."""
    tl, settle, label = reh.timeline, reh.settings.deploy.settle_seconds, move.label
    # Its target was declared before it existed, so InstanceDown may still fire from then:
    # green is switched to only once Prometheus scrapes it and no alert fires for it.
    if not wait_until(lambda: prometheus_clean(reh.prometheus, instance), 10, poll=0.2):
        if not prometheus_has(reh.prometheus, instance):
            raise BadSignal("Prometheus has no data for green: refusing to switch to what cannot be watched")
        raise BadSignal(
            f"alert {', '.join(reh.prometheus.firing(instance))} firing for green before the switch"
        )
    reh.api.switch(move.slot)
    move.switched = time.monotonic()
    tl.mark(f"[{label}] SWITCH: proxy routes to green", "one runtime-API map update", name=f"{label}:switch")
    move.outcome.switch_at = tl.marks[f"{label}:switch"]
    _settle(reh, instance, settle)
    tl.mark(f"[{label}] settled", f"no alert firing for green over {settle:g}s")


def _retire_blue(reh: Rehearsal, move: _Move) -> None:
    """The old slot drained, stopped and removed: the new one is the active one now."""
    drain, old, label = reh.settings.deploy.drain_timeout, move.old, move.label
    reh.api.set_state(old, "drain")
    drained = reh.api.wait_idle(old, drain)
    reh.api.set_state(old, "maint")
    reh.remove(reh.apps.pop(old))
    reh.instances.pop(old)
    reh.active = move.slot
    reh.timeline.mark(
        f"[{label}] blue drained and stopped",
        "no session left" if drained else f"sessions still open after {drain:g}s",
        name=f"{label}:drained",
    )
    move.outcome.drained_at = reh.timeline.marks[f"{label}:drained"]
    move.outcome.deployed = True


def _roll_back(reh: Rehearsal, move: _Move, bad: BadSignal) -> None:
    """Traffic back on the old slot (if it had moved) and the new one out of the proxy, timed
    from `bad`."""
    outcome, label = move.outcome, move.label
    outcome.reason = bad.reason
    if move.switched is not None:
        reh.api.switch(move.old)
        outcome.signal_after_switch = round(bad.at - move.switched, 2)
    with contextlib.suppress(HarnessError):
        reh.api.set_state(move.slot, "maint")
        reh.api.wait_idle(move.slot, reh.settings.deploy.drain_timeout)
    outcome.rollback_seconds = round(time.monotonic() - bad.at, 2)
    reh.timeline.mark(
        f"[{label}] ROLLED BACK: blue serving alone",
        f"{bad.reason}; {outcome.rollback_seconds:.2f}s after the bad signal",
        name=f"{label}:rolled-back",
    )
    outcome.rolled_back_at = reh.timeline.marks[f"{label}:rolled-back"]


def _smoke(reh: Rehearsal, count: int) -> None:
    key = next(iter(reh.api_keys.values()))
    paths = ["/health", "/ready", "/v1/articles?limit=1"]
    for n in range(count):
        path = paths[n % len(paths)]
        status, _ = get(f"{reh.smoke_url}{path}", {"X-API-Key": key})
        if status != 200:
            raise BadSignal(
                f"smoke check through the second backend: GET {path} answered {status or 'nothing'}"
            )


def _settle(reh: Rehearsal, instance: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            firing = reh.prometheus.firing(instance)
        except PrometheusUnavailableError as exc:
            raise BadSignal(
                f"Prometheus is unreachable, so green cannot be judged healthy: {exc.what}"
            ) from None
        if firing:
            raise BadSignal(f"alert {', '.join(firing)} firing for green in Prometheus")
        status, output = container_health(reh.apps[_slot_of(reh, instance)])
        if status in ("unhealthy", "exited"):
            raise BadSignal(f"green became {status} ({output})")
        time.sleep(0.25)
    try:
        scraped = reh.prometheus.samples(instance, f"{max(1, int(seconds))}s")
    except PrometheusUnavailableError as exc:
        raise BadSignal(f"Prometheus is unreachable, so green cannot be judged healthy: {exc.what}") from None
    if scraped == 0:
        raise BadSignal(
            "Prometheus holds no data for green over the settle window: refusing to call it healthy"
        )


def _slot_of(reh: Rehearsal, instance: str) -> str:
    return next(slot for slot, name in reh.instances.items() if name == instance)
