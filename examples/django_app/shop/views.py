from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.http import HttpRequest, JsonResponse

from shop.models import Product

# The product list is read far more often than it changes: kept in the cache for a minute.
PRODUCTS_KEY = "shop:products"
PRODUCTS_TTL = 60


def product_list(request: HttpRequest) -> JsonResponse:
    products: list[dict[str, Any]] | None = cache.get(PRODUCTS_KEY)
    if products is None:
        rows = Product.objects.select_related("category").order_by("sku")
        products = [
            {"sku": p.sku, "name": p.name, "price_cents": p.price_cents, "category": p.category.name}
            for p in rows
        ]
        cache.set(PRODUCTS_KEY, products, PRODUCTS_TTL)
    return JsonResponse({"products": products})
