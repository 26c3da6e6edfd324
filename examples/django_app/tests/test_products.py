"""The product list: what the endpoint returns, and that the cache in front of it is the
worker's Redis."""

from __future__ import annotations

import os

import redis
from django.core.cache import cache
from django.test import Client

from shop.models import Category, Product
from shop.views import PRODUCTS_KEY


def test_no_products_to_start_with(db: None, client: Client) -> None:
    response = client.get("/products/")
    assert response.status_code == 200
    assert response.json() == {"products": []}


def test_products_are_listed_by_sku(db: None, client: Client) -> None:
    tools = Category.objects.create(name="tools")
    garden = Category.objects.create(name="garden")
    Product.objects.create(sku="B-2", name="rake", price_cents=900, category=garden)
    Product.objects.create(sku="A-1", name="hammer", price_cents=1250, category=tools)
    assert client.get("/products/").json() == {
        "products": [
            {"sku": "A-1", "name": "hammer", "price_cents": 1250, "category": "tools"},
            {"sku": "B-2", "name": "rake", "price_cents": 900, "category": "garden"},
        ]
    }


def test_the_list_is_cached_in_the_workers_redis(db: None, client: Client) -> None:
    tools = Category.objects.create(name="tools")
    Product.objects.create(sku="A-1", name="hammer", price_cents=1250, category=tools)
    assert [p["sku"] for p in client.get("/products/").json()["products"]] == ["A-1"]
    Product.objects.create(sku="B-2", name="saw", price_cents=1500, category=tools)
    # Served from the cache until it expires: the new product is not listed yet.
    assert [p["sku"] for p in client.get("/products/").json()["products"]] == ["A-1"]
    # The key is in the worker's own Redis (the harness's REDIS_URL), not in a process-local cache.
    worker_redis = redis.Redis.from_url(os.environ["REDIS_URL"])
    assert worker_redis.exists(cache.make_key(PRODUCTS_KEY)) == 1
