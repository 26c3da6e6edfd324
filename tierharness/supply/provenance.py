"""A SLSA provenance v1 predicate for the built image: what it was built from (revision,
SOURCE_DATE_EPOCH, lockfiles, Dockerfile, base image), by what (engine and buildx
versions) and how (the command). `cosign attest --type slsaprovenance1` wraps it in a
signed in-toto statement whose subject is the image digest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tierharness.config import Settings
from tierharness.engine.client import engine_client, local_image_id, require_buildx
from tierharness.gitrepo import git_output

__all__ = ["BUILD_TYPE", "provenance_predicate", "provenance_revision", "write_provenance"]

# What kind of build the predicate describes; versioned so a verifier can tell.
BUILD_TYPE = "https://example.invalid/harness/buildtypes/oci-buildx/v1"
BUILD_COMMAND = "python -m tierharness build"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def provenance_predicate(settings: Settings, record: dict[str, Any]) -> dict[str, Any]:
    """The predicate for the image `record` (build/image.json) describes."""
    config = settings.build
    revision = str(record["revision"])
    source_url = git_output(settings.root, "config", "--get", "remote.origin.url") or config.source_url
    base = settings.image(config.base_image)
    base_digest = local_image_id(base.local) or "unknown"
    dockerfile = settings.root / config.dockerfile
    lockfiles = [settings.lock.dir / f"{name}.txt" for name in config.lockfiles]
    engine = engine_client().version()
    buildx = require_buildx().split()
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "source": {"uri": f"git+{source_url}", "digest": {"gitCommit": revision}},
                "dockerfile": config.dockerfile,
                "target": config.target,
                "command": BUILD_COMMAND,
            },
            "internalParameters": {"SOURCE_DATE_EPOCH": int(record["source_date_epoch"])},
            "resolvedDependencies": [
                {"uri": f"git+{source_url}", "digest": {"gitCommit": revision}},
                {"name": config.dockerfile, "digest": {"sha256": _sha256(dockerfile)}},
                *(
                    {"name": str(p.relative_to(settings.root)), "digest": {"sha256": _sha256(p)}}
                    for p in lockfiles
                ),
                {
                    "name": "base-image",
                    "uri": f"oci:{base.local}",
                    "digest": {"sha256": base_digest.removeprefix("sha256:")},
                },
            ],
        },
        "runDetails": {
            "builder": {
                "id": "https://example.invalid/harness/builders/local-docker",
                "version": {
                    "docker-engine": str(engine.get("Version", "unknown")),
                    "buildx": buildx[1] if len(buildx) > 1 else "unknown",
                },
            },
            "metadata": {"invocationId": f"{revision}:{record['digest']}"},
        },
    }


def write_provenance(settings: Settings, record: dict[str, Any], dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(provenance_predicate(settings, record), indent=2, sort_keys=True) + "\n")
    return dest


def provenance_revision(predicate: dict[str, Any]) -> str | None:
    """The git revision a provenance predicate says the image was built from."""
    try:
        source = predicate["buildDefinition"]["externalParameters"]["source"]
        return str(source["digest"]["gitCommit"])
    except (KeyError, TypeError):
        return None
