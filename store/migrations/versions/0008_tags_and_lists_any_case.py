"""contacts: tags and lists are one name whatever their case

"VIP" and "vip" were two tags (and "News" and "news" two lists) in storage, while triggers
ignored case. Existing spellings of one name are merged into the first one used (tags: the
oldest row; lists: the least recently changed membership), a contact holding both keeps one
row (a list keeps its most recent status), and unique indexes on the lowered name make the
database agree with the code from now on.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _spellings(conn: Any, table: str, column: str, order: str) -> dict[str, list[str]]:
    """lowered name -> its spellings, first used first, for names spelled more than one way."""
    rows = conn.execute(
        sa.text(f"SELECT {column}, MIN({order}) AS first FROM {table} GROUP BY {column}")
    ).all()
    groups: dict[str, list[tuple[Any, str]]] = defaultdict(list)
    for name, first in rows:
        groups[name.strip().lower()].append((first, name))
    return {
        key: [name for _, name in sorted(found, key=lambda f: (str(f[0]), f[1]))]
        for key, found in groups.items()
        if len(found) > 1
    }


def _merge_tags(conn: Any) -> None:
    for kept, *others in _spellings(conn, "contact_tags", "tag", "created_at").values():
        for other in others:
            names = {"kept": kept, "other": other}
            conn.execute(
                sa.text(
                    "DELETE FROM contact_tags WHERE tag = :other AND contact_id IN "
                    "(SELECT contact_id FROM contact_tags WHERE tag = :kept)"
                ),
                names,
            )
            conn.execute(sa.text("UPDATE contact_tags SET tag = :kept WHERE tag = :other"), names)


def _merge_lists(conn: Any) -> None:
    for kept, *others in _spellings(conn, "subscriptions", "list", "updated_at").values():
        rows = conn.execute(
            sa.text(
                "SELECT contact_id, list, status, updated_at FROM subscriptions "
                "WHERE list IN :names"
            ).bindparams(sa.bindparam("names", expanding=True)),
            {"names": [kept, *others]},
        ).all()
        latest: dict[int, tuple[str, Any]] = {}
        for contact_id, _, status, updated_at in sorted(rows, key=lambda r: str(r[3])):
            latest[contact_id] = (status, updated_at)
        conn.execute(
            sa.text("DELETE FROM subscriptions WHERE list IN :names").bindparams(
                sa.bindparam("names", expanding=True)
            ),
            {"names": [kept, *others]},
        )
        for contact_id, (status, updated_at) in latest.items():
            conn.execute(
                sa.text(
                    "INSERT INTO subscriptions (contact_id, list, status, updated_at) "
                    "VALUES (:contact_id, :list, :status, :updated_at)"
                ),
                {
                    "contact_id": contact_id,
                    "list": kept,
                    "status": status,
                    "updated_at": updated_at,
                },
            )


def upgrade() -> None:
    conn = op.get_bind()
    _merge_tags(conn)
    _merge_lists(conn)
    lower_tag, lower_list = sa.text("lower(tag)"), sa.text("lower(list)")
    op.create_index(
        "uq_contact_tags_lower_tag", "contact_tags", ["contact_id", lower_tag], unique=True
    )
    op.create_index("ix_contact_tags_lower_tag", "contact_tags", [lower_tag])
    op.create_index(
        "uq_subscriptions_lower_list", "subscriptions", ["contact_id", lower_list], unique=True
    )
    op.create_index("ix_subscriptions_lower_list", "subscriptions", [lower_list])


def downgrade() -> None:
    op.drop_index("ix_subscriptions_lower_list", table_name="subscriptions")
    op.drop_index("uq_subscriptions_lower_list", table_name="subscriptions")
    op.drop_index("ix_contact_tags_lower_tag", table_name="contact_tags")
    op.drop_index("uq_contact_tags_lower_tag", table_name="contact_tags")
