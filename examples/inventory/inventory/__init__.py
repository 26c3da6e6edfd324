"""Inventory: users own items. SQLAlchemy 2 on Postgres, schema by Alembic."""
