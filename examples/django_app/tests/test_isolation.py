"""Every test starts from the migrated database and an empty cache, whichever of
pytest-django's database fixtures it asks for: the harness resets both before each test
(harness_autoclean). The tests of a file run in one worker (--dist loadfile), in order, so
each pair below fails if what the first wrote reached the second."""

from __future__ import annotations

import psycopg
import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.test import Client

from shop.models import Category, Product


def _add(sku: str) -> Product:
    tools, _ = Category.objects.get_or_create(name="tools")
    return Product.objects.create(sku=sku, name=f"the {sku}", price_cents=1250, category=tools)


def _listed(client: Client) -> list[str]:
    return [p["sku"] for p in client.get("/products/").json()["products"]]


@pytest.mark.parametrize("sku", ["HAMMER-1", "SAW-2"])
def test_db_sees_only_its_own_row(db: None, client: Client, sku: str) -> None:
    product = _add(sku)
    assert Product.objects.count() == 1
    # Django rolls a `db` test back, but not its sequences: id 1 twice is the harness's reset.
    assert product.pk == 1
    # The list is cached in Redis for a minute: the second test sees its own only because
    # the cache was emptied in between.
    assert _listed(client) == [sku]


@pytest.mark.parametrize("sku", ["DRILL-3", "PLANE-4"])
def test_transactional_db_commits_and_sees_only_its_own_row(
    transactional_db: None, client: Client, sku: str
) -> None:
    with transaction.atomic():
        product = _add(sku)
    assert not connection.in_atomic_block
    # Committed: another connection (libpq's PG* variables, the worker's database) sees it.
    with psycopg.connect() as other:
        rows = other.execute("SELECT sku FROM shop_product").fetchall()
    assert rows == [(sku,)]
    assert product.pk == 1
    assert _listed(client) == [sku]


@pytest.mark.parametrize("value", ["first", "second"])
def test_cache_starts_empty(value: str) -> None:
    # add() sets a key only if it is missing.
    assert cache.add("shop:greeting", value)
    assert cache.get("shop:greeting") == value
