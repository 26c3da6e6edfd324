"""The domain: users, their items, logging in."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inventory import settings
from inventory.models import Item, User
from inventory.security import create_access_token, hash_password, read_access_token, verify_password


class AuthError(Exception):
    """Wrong credentials, or a token that is no longer good."""


def create_user(
    session: Session, email: str, password: str, *, full_name: str | None = None, is_superuser: bool = False
) -> User:
    user = User(
        email=email.lower(),
        full_name=full_name,
        hashed_password=hash_password(password),
        is_superuser=is_superuser,
    )
    session.add(user)
    session.commit()
    return user


def get_user_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email.lower()))


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


def ensure_superuser(session: Session) -> User:
    """The first superuser, from the settings; created (and committed) when missing."""
    user = get_user_by_email(session, settings.FIRST_SUPERUSER)
    if user is None:
        user = create_user(
            session, settings.FIRST_SUPERUSER, settings.FIRST_SUPERUSER_PASSWORD, is_superuser=True
        )
    return user


def login(session: Session, email: str, password: str) -> str:
    """An access token for these credentials."""
    user = get_user_by_email(session, email)
    if user is None or not verify_password(password, user.hashed_password) or not user.is_active:
        raise AuthError("incorrect email or password")
    return create_access_token(user.id)


def current_user(session: Session, token: str) -> User:
    """The active user a token was issued to."""
    user_id = read_access_token(token)
    user = session.get(User, user_id) if user_id is not None else None
    if user is None or not user.is_active:
        raise AuthError("invalid or expired token")
    return user


def add_item(session: Session, owner: User, sku: str, name: str, quantity: int = 1) -> Item:
    item = Item(sku=sku, name=name, quantity=quantity, owner_id=owner.id)
    session.add(item)
    session.commit()
    return item


def list_items(session: Session, owner: User | None = None) -> list[Item]:
    query = select(Item).order_by(Item.id)
    if owner is not None:
        query = query.where(Item.owner_id == owner.id)
    return list(session.scalars(query))


def count_items(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Item)) or 0
