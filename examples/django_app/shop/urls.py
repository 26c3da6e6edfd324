from __future__ import annotations

from django.urls import path

from shop import views

urlpatterns = [path("products/", views.product_list, name="product-list")]
