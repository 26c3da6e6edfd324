from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"


def test_the_database_is_at_head(db: Session) -> None:
    head = ScriptDirectory.from_config(Config(str(ALEMBIC_INI))).get_current_head()
    assert db.scalar(text("SELECT version_num FROM alembic_version")) == head
    assert {"users", "items"} <= set(inspect(db.get_bind()).get_table_names())
