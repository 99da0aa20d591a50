"""Names people type (tags, lists, pipelines, accounts) are one name whatever their case, as in
ActiveCampaign; the spelling first used is the one kept for display."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_


def name_key(name: str) -> str:
    """What two spellings of one name have in common."""
    return name.strip().lower()


def named(column: Any, name: str) -> Any:
    """`column` matches `name` whatever the case. The exact spelling always matches: SQLite's
    lower() only folds ASCII, so "Équipe" must still find "Équipe" there."""
    return or_(column == name.strip(), func.lower(column) == name_key(name))
