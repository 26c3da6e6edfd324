"""Signing with cosign, key-based and offline: no transparency log, no certificate
authority, nothing outside this machine.

`create_keys` makes the pair (`harness keys`); `sign` and `attest` act on an image by
digest in the loopback registry. The key password reaches cosign through its environment
(COSIGN_PASSWORD), never its argv, and never a message.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tierharness.config import Settings, child_env, environment
from tierharness.errors import HarnessError
from tierharness.process import run

__all__ = [
    "KeyPair",
    "SigningKeyError",
    "attest",
    "cosign",
    "cosign_env_for",
    "create_keys",
    "ensure_keys",
    "key_pair",
    "sign",
]

_COSIGN_FIX = "install cosign 2.5 (Debian trixie; `bash scripts/provision-docker.sh` installs it)"
# What cosign prints when the password does not decrypt the key.
_WRONG_PASSWORD = ("decryption failed", "reading key: decrypt", "incorrect password")


class SigningKeyError(HarnessError):
    """The signing key is missing, unsafe, or does not open with the password given."""


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path


def cosign() -> str:
    path = shutil.which("cosign")
    if path is None:
        raise HarnessError("cosign is not installed", checked="`cosign` on PATH", fix=_COSIGN_FIX)
    return path


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _refuse_inside_checkout(settings: Settings, folder: Path) -> None:
    if _inside(folder, settings.root):
        raise SigningKeyError(
            f"the signing key folder {folder} is inside the repository",
            checked=f"HARNESS_KEY_DIR / [tool.harness.supply] key-dir against {settings.root}",
            fix="keep private keys out of the checkout: unset key-dir (default "
            "~/.config/harness/keys/<repository>) or point HARNESS_KEY_DIR outside it",
        )


def key_pair(settings: Settings, *, private: bool = True) -> KeyPair:
    """The project's key pair, checked: outside the repository, the private key readable by
    its owner only. With `private=False` only the public key is needed (verification)."""
    folder = settings.key_dir
    pair = KeyPair(*settings.key_files)
    needed = [pair.private, pair.public] if private else [pair.public]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise SigningKeyError(
            f"no signing key: {', '.join(missing)} missing",
            checked=f"the key folder {folder}",
            fix="run `python -m tierharness keys` (HARNESS_KEY_PASSWORD or HARNESS_KEY_PASSWORD_FILE set)",
        )
    if private:
        _refuse_inside_checkout(settings, folder)
        mode = stat.S_IMODE(pair.private.stat().st_mode)
        if mode & 0o077:
            raise SigningKeyError(
                f"the private key {pair.private} has mode {mode:04o}: others can read it",
                checked="its permission bits (group and others must have none)",
                fix=f"chmod 600 {pair.private}",
            )
    return pair


def ensure_keys(settings: Settings, *, force: bool = False, if_missing: bool = False) -> KeyPair:
    """`harness keys`: a new pair (replacing one only with `force`); with `if_missing`, the
    existing pair checked and kept, or a new one when there is none."""
    try:
        return key_pair(settings) if if_missing else create_keys(settings, force=force)
    except SigningKeyError as exc:
        if not (if_missing and "no signing key" in exc.what):
            raise
        return create_keys(settings)


def create_keys(settings: Settings, *, force: bool = False) -> KeyPair:
    """A new pair in the key folder (0700), the private key 0600, encrypted with the
    password from the environment. An existing pair is kept unless `force`."""
    folder = settings.key_dir
    _refuse_inside_checkout(settings, folder)
    pair = KeyPair(*settings.key_files)
    if pair.private.exists() and not force:
        raise SigningKeyError(
            f"a signing key already exists: {pair.private}",
            checked=f"the key folder {folder}",
            fix="keep using it, or pass --force to replace it (images signed with it then "
            "no longer verify against the new public key)",
        )
    password = environment().signing_password()
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    for path in (pair.private, pair.public):
        path.unlink(missing_ok=True)
    run(
        [cosign(), "generate-key-pair", "--output-key-prefix", str(pair.private.with_suffix(""))],
        what="cosign generate-key-pair",
        fix=_COSIGN_FIX,
        cwd=folder,
        env=child_env({"COSIGN_PASSWORD": password}),
        error=SigningKeyError,
    )
    os.chmod(pair.private, 0o600)
    os.chmod(pair.public, 0o644)
    return pair


def _cosign_env(docker_config: Path, password: str | None = None) -> dict[str, str]:
    extra = {"DOCKER_CONFIG": str(docker_config)}
    if password is not None:
        extra["COSIGN_PASSWORD"] = password
    # No signing service or log is reachable, and none is wanted: say so to cosign too.
    return child_env(extra, drop=("COSIGN_EXPERIMENTAL", "SIGSTORE_ID_TOKEN"))


def _run_signing(argv: list[str], pair: KeyPair, docker_config: Path, *, what: str) -> None:
    password = environment().signing_password()
    try:
        run(
            argv,
            what=what,
            fix="check the key password (HARNESS_KEY_PASSWORD / HARNESS_KEY_PASSWORD_FILE) and that "
            "the registry is running",
            env=_cosign_env(docker_config, password),
            error=SigningKeyError,
            timeout=120,
        )
    except SigningKeyError as exc:
        if any(marker in exc.what.lower() for marker in _WRONG_PASSWORD):
            raise SigningKeyError(
                f"{what}: the password does not open the private key {pair.private}",
                checked="HARNESS_KEY_PASSWORD, then the file named by HARNESS_KEY_PASSWORD_FILE",
                fix="set the password the key was made with, or make a new pair with "
                "`python -m tierharness keys --force` and publish again",
            ) from None
        raise


def sign(pair: KeyPair, reference: str, docker_config: Path) -> None:
    """Sign `reference` (by digest) with the private key, no transparency log."""
    _run_signing(
        [cosign(), "sign", "--key", str(pair.private), "--tlog-upload=false",
         "--allow-insecure-registry", "--yes", reference],
        pair, docker_config, what=f"cosign sign {reference}",
    )  # fmt: skip


def attest(pair: KeyPair, reference: str, predicate: Path, kind: str, docker_config: Path) -> None:
    """Attach a signed in-toto attestation of `kind` (cyclonedx, slsaprovenance1) to `reference`."""
    _run_signing(
        [cosign(), "attest", "--key", str(pair.private), "--type", kind, "--predicate", str(predicate),
         "--tlog-upload=false", "--allow-insecure-registry", "--yes", reference],
        pair, docker_config, what=f"cosign attest --type {kind} {reference}",
    )  # fmt: skip


def cosign_env_for(docker_config: Path) -> Mapping[str, str]:
    """The environment for a cosign that only reads (verify): credentials, no password."""
    return _cosign_env(docker_config)
