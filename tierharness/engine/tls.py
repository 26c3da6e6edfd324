"""Throwaway mutual-TLS certificates for a second engine's TCP listener: a CA made for that
one engine, a server certificate for 127.0.0.1 and a client certificate, by openssl.

The container engine (tierharness.engine.second_engine_container) listens on a published
127.0.0.1 port, which every user of the machine can connect to: only a client holding the
key made here, in a folder only its owner can read, gets an answer. The CA's own key is
deleted once both certificates are signed, so nothing can sign another client later.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from tierharness.errors import HarnessError
from tierharness.process import run

__all__ = ["EngineTls", "make_certificates"]

_FIX = "install openssl (Debian: apt-get install openssl)"


@dataclass(frozen=True)
class EngineTls:
    """Certificates for a TCP listener with client verification, as DOCKER_CERT_PATH lays
    them out (ca.pem, cert.pem, key.pem for the client; the server's own pair beside)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_dir: Path  # DOCKER_CERT_PATH: ca.pem, cert.pem, key.pem


def make_certificates(folder: Path, *, name: str = "harness-engine-ca", days: int = 2) -> EngineTls:
    """A new CA named `name`, a server certificate for IP 127.0.0.1 and a client one, in
    `folder` (made, mode 0700: it holds private keys). Another `name` makes another CA."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise HarnessError(
            "making the second engine's TLS certificates needs openssl, which is not installed",
            checked="`openssl` on PATH",
            fix=_FIX,
        )
    folder.mkdir(mode=0o700, parents=True)
    client = folder / "client"
    client.mkdir(mode=0o700)

    def ssl(*args: str) -> None:
        run([openssl, *args], cwd=folder, what=f"openssl {args[0]}", fix=_FIX)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out", "ca.pem",
        "-days", str(days), "-subj", f"/CN={name}")  # fmt: skip
    for role, usage in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
                        ("client", "extendedKeyUsage=clientAuth\n")):  # fmt: skip
        (folder / f"{role}.ext").write_text(usage)
        ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{role}-key.pem", "-out", f"{role}.csr",
            "-subj", f"/CN={role}")  # fmt: skip
        ssl("x509", "-req", "-in", f"{role}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
            "-CAcreateserial", "-out", f"{role}-cert.pem", "-days", str(days),
            "-extfile", f"{role}.ext")  # fmt: skip
    for leftover in ("ca-key.pem", "ca.srl", "server.csr", "client.csr", "server.ext", "client.ext"):
        (folder / leftover).unlink(missing_ok=True)
    for source, target in (
        ("ca.pem", "ca.pem"),
        ("client-cert.pem", "cert.pem"),
        ("client-key.pem", "key.pem"),
    ):
        (client / target).write_bytes((folder / source).read_bytes())
    for key in (folder / "server-key.pem", folder / "client-key.pem", client / "key.pem"):
        key.chmod(0o600)
    return EngineTls(folder / "ca.pem", folder / "server-cert.pem", folder / "server-key.pem", client)
