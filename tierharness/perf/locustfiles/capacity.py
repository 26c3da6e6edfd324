"""Loaded by Locust by its path (`-f`) on capacity runs, beside the project's locustfile: Locust
runs the `LoadTestShape` it finds here. Never imported as a module: importing Locust patches the
standard library, so this folder has no `__init__.py`, and nothing that walks the package (tests,
the docs) imports it.
"""

from __future__ import annotations

from locust import LoadTestShape, events

from tierharness.perf.capacity_shape import CapacitySteps, install


class CapacityShape(CapacitySteps, LoadTestShape):
    """The capacity steps, as Locust's load shape."""


install(events)
