"""The knowledge-hub API gateway: articles on Postgres, cache and rate limits on Redis."""

from __future__ import annotations

__all__ = ["__version__"]
__version__ = "1.0.0"
