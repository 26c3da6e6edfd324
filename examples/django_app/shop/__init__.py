"""A small shop: categories, products, and a JSON list of them cached in Redis."""
