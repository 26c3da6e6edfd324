"""The team's fixtures. No database plumbing: the harness provides the database (see
[tool.pytest.ini_options] and [tool.harness.test-env] in pyproject.toml)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from inventory import crud, settings
from inventory.db import SessionLocal
from inventory.models import User


@pytest.fixture(scope="session")
def superuser() -> User:
    """The first superuser, created and committed once per session."""
    with SessionLocal() as session:
        return crud.ensure_superuser(session)


@pytest.fixture(scope="module")
def superuser_token(superuser: User) -> str:
    """Logged in once per module, as the superuser."""
    with SessionLocal() as session:
        return crud.login(session, superuser.email, settings.FIRST_SUPERUSER_PASSWORD)


@pytest.fixture
def db() -> Iterator[Session]:
    with SessionLocal() as session:
        yield session
