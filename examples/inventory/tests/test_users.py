from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from inventory import crud, settings
from inventory.models import User


def test_only_the_superuser_exists(db: Session) -> None:
    users = crud.list_users(db)
    assert [(u.email, u.is_superuser) for u in users] == [(settings.FIRST_SUPERUSER, True)]


def test_create_user(db: Session, superuser: User) -> None:
    alice = crud.create_user(db, "Alice@Example.com", "alice-password", full_name="Alice")
    assert alice.email == "alice@example.com"
    assert [u.email for u in crud.list_users(db)] == [superuser.email, "alice@example.com"]


def test_new_users_are_numbered_after_the_superuser(db: Session, superuser: User) -> None:
    carol = crud.create_user(db, "carol@example.com", "carol-password")
    assert carol.id == superuser.id + 1


def test_email_is_unique(db: Session) -> None:
    crud.create_user(db, "bob@example.com", "bob-password")
    with pytest.raises(IntegrityError):
        crud.create_user(db, "BOB@example.com", "another-password")
    db.rollback()
    assert len(crud.list_users(db)) == 2
