from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from inventory import crud
from inventory.models import User
from inventory.security import create_access_token


def test_the_token_is_the_superusers(db: Session, superuser: User, superuser_token: str) -> None:
    assert crud.current_user(db, superuser_token).id == superuser.id


def test_wrong_password_is_refused(db: Session, superuser: User) -> None:
    with pytest.raises(crud.AuthError):
        crud.login(db, superuser.email, "not-the-password")


def test_expired_or_tampered_tokens_are_refused(db: Session, superuser: User, superuser_token: str) -> None:
    with pytest.raises(crud.AuthError):
        crud.current_user(db, create_access_token(superuser.id, expires_in=-1))
    user_id, rest = superuser_token.split(".", 1)
    with pytest.raises(crud.AuthError):
        crud.current_user(db, f"{int(user_id) + 1}.{rest}")


def test_a_deleted_users_token_is_refused(db: Session) -> None:
    eve = crud.create_user(db, "eve@example.com", "eve-password")
    token = crud.login(db, "eve@example.com", "eve-password")
    assert crud.current_user(db, token).id == eve.id
    db.delete(eve)
    db.commit()
    with pytest.raises(crud.AuthError):
        crud.current_user(db, token)
