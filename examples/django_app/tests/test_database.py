"""pytest-django runs the tests in the database the harness migrated: it creates none, and
applies no migration of its own."""

from __future__ import annotations

import os

from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

# Test modules are imported after the harness migrated the worker's database (early
# provisioning) and before pytest-django sets up its test database (a session fixture).
IMPORTED_AT = timezone.now()


def test_the_tests_database_is_the_one_the_harness_migrated(db: None) -> None:
    assert connection.settings_dict["NAME"] == os.environ["PGDATABASE"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        assert cursor.fetchone() == (os.environ["PGDATABASE"],)


def test_no_migration_was_applied_after_the_harness(db: None) -> None:
    applied = MigrationRecorder.Migration.objects.filter(app="shop")
    assert applied.exists()
    latest = max(m.applied for m in MigrationRecorder.Migration.objects.all())
    assert latest < IMPORTED_AT
