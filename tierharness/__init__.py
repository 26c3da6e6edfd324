"""harness: reproducible builds and isolated, parallel test tiers for Python services.

The harness learns about the service it serves from `[tool.harness]` in the
project's `pyproject.toml`; it never imports the service.
"""

from __future__ import annotations

from tierharness.errors import HarnessError

__all__ = ["HarnessError", "__version__"]
__version__ = "0.1.0"
