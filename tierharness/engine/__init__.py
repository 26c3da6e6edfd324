"""The Docker engines: the client of the one the harness uses (`client`), a second engine
(`second_engine*`, `tls`), and what runs leave in an engine: the labels that tie it to its run
(`labels`), the reaper that removes it after a killed run (`reaper`), kept containers
(`reuse`), and what builds made (`ledger`, `retention`).

The client's names are re-exported, so `from tierharness.engine import engine_client` works."""

from tierharness.engine.client import *  # noqa: F403
from tierharness.engine.client import __all__ as __all__
