"""The Docker engines: the client of the one the harness uses (`client`), a second engine
(`second_engine*`, `tls`), and what runs leave in an engine: the labels that tie it to its run
(`labels`), the reaper that removes it after a killed run (`reaper`), kept containers
(`reuse`), what builds made (`ledger`, `retention`), and its images listed beside other runs'
removals (`image_list`).

Nothing is imported here: importing `labels` (which the pytest plugin's controller does on
every run, for the run's id) must not import the client and what it needs (ssl, ctypes).
Import the submodule that holds a name: `from tierharness.engine.client import engine_client`."""
