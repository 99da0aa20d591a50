"""An account (a company) and its contacts' memberships."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from store import models


class AccountPublic(BaseModel):
    id: int
    name: str
    url: str | None
    fields: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, account: models.Account) -> AccountPublic:
        return cls(
            id=account.id,
            name=account.name,
            url=account.url,
            fields=account.fields or {},
            created_at=account.created_at,
            updated_at=account.updated_at,
        )


class AccountMemberPublic(BaseModel):
    """A contact in an account, with its job title there."""

    account: int
    contact: int
    job_title: str | None
    created_at: datetime

    @classmethod
    def of(cls, link: models.AccountContact) -> AccountMemberPublic:
        return cls(
            account=link.account_id,
            contact=link.contact_id,
            job_title=link.job_title,
            created_at=link.created_at,
        )


class ContactAccountPublic(AccountPublic):
    """The account a contact is in, as its record shows it: the account and the job title."""

    job_title: str | None

    @classmethod
    def of_membership(
        cls, account: models.Account, link: models.AccountContact
    ) -> ContactAccountPublic:
        return cls(**AccountPublic.of(account).model_dump(), job_title=link.job_title)
