from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from inventory import crud
from inventory.models import Item


def test_no_items_to_start_with(db: Session) -> None:
    assert crud.count_items(db) == 0
    assert crud.list_items(db) == []


def test_add_items_as_the_logged_in_superuser(db: Session, superuser_token: str) -> None:
    me = crud.current_user(db, superuser_token)
    for n in range(3):
        crud.add_item(db, me, f"SKU-{n:04}", f"widget {n}", quantity=n + 1)
    assert crud.count_items(db) == 3
    assert [(i.sku, i.quantity) for i in crud.list_items(db, me)] == [
        ("SKU-0000", 1),
        ("SKU-0001", 2),
        ("SKU-0002", 3),
    ]


def test_items_are_listed_by_owner(db: Session, superuser_token: str) -> None:
    me = crud.current_user(db, superuser_token)
    alice = crud.create_user(db, "alice@example.com", "alice-password")
    crud.add_item(db, me, "SKU-0001", "hammer")
    crud.add_item(db, alice, "SKU-0002", "saw")
    crud.add_item(db, alice, "SKU-0003", "drill")
    assert [i.name for i in crud.list_items(db, alice)] == ["saw", "drill"]
    assert [i.name for i in crud.list_items(db)] == ["hammer", "saw", "drill"]


def test_sku_is_unique(db: Session, superuser_token: str) -> None:
    me = crud.current_user(db, superuser_token)
    crud.add_item(db, me, "SKU-0001", "hammer")
    with pytest.raises(IntegrityError):
        crud.add_item(db, me, "SKU-0001", "another hammer")
    db.rollback()
    assert crud.count_items(db) == 1


def test_an_item_needs_an_existing_owner(db: Session) -> None:
    db.add(Item(sku="SKU-0404", name="orphan", owner_id=404))
    with pytest.raises(IntegrityError):
        db.commit()


def test_deleting_a_user_deletes_their_items(db: Session) -> None:
    dave = crud.create_user(db, "dave@example.com", "dave-password")
    crud.add_item(db, dave, "SKU-0100", "ladder")
    crud.add_item(db, dave, "SKU-0101", "bucket")
    db.delete(dave)
    db.commit()
    assert crud.count_items(db) == 0
    assert len(crud.list_users(db)) == 1
