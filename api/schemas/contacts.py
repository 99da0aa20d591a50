"""A contact's full record, and the answers to the changes made to it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from api.schemas.accounts import ContactAccountPublic
from api.schemas.deals import DealPublic
from api.schemas.tasks import TaskPublic
from store.contacts import ContactDetails
from store.crm import ContactCrm
from store.models import Contact


class ListMembership(BaseModel):
    list: str
    status: str


class ContactNote(BaseModel):
    id: int
    note: str
    created_at: datetime


class ConversionPublic(BaseModel):
    conversion: str
    value: float | None
    created_at: datetime


class ContactRun(BaseModel):
    """One of the contact's runs, as its record lists them."""

    automation: str
    workflow_id: str
    status: str
    reason: str | None
    current_step: str | None
    started_at: datetime


class ContactPublic(BaseModel):
    id: int
    email: str | None
    first_name: str | None
    last_name: str | None
    phone: str | None
    fields: dict[str, Any]
    bounced: bool
    tags: list[str]
    lists: list[ListMembership]
    scores: dict[str, float]
    notes: list[ContactNote]
    conversions: list[ConversionPublic]
    deals: list[DealPublic]
    tasks: list[TaskPublic]
    account: ContactAccountPublic | None
    automations: list[ContactRun]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, details: ContactDetails, crm: ContactCrm) -> ContactPublic:
        contact = details.contact
        return cls(
            id=contact.id,
            email=contact.email,
            first_name=contact.first_name,
            last_name=contact.last_name,
            phone=contact.phone,
            fields=contact.fields or {},
            bounced=contact.bounced,
            tags=details.tags,
            lists=[ListMembership(list=s.list, status=s.status) for s in details.subscriptions],
            scores={s.name: s.value for s in details.scores},
            notes=[
                ContactNote(id=n.id, note=n.body, created_at=n.created_at) for n in details.notes
            ],
            conversions=[
                ConversionPublic(conversion=c.name, value=c.value, created_at=c.created_at)
                for c in details.conversions
            ],
            deals=[DealPublic.of(deal) for deal in crm.deals],
            tasks=[TaskPublic.of(task, crm.assignees) for task in crm.tasks],
            account=ContactAccountPublic.of_membership(*crm.account) if crm.account else None,
            automations=[
                ContactRun(
                    automation=r.automation_id,
                    workflow_id=r.workflow_id,
                    status=r.status,
                    reason=r.reason,
                    current_step=r.current_step,
                    started_at=r.started_at,
                )
                for r in details.runs
            ],
            created_at=contact.created_at,
            updated_at=contact.updated_at,
        )


class ContactSummary(BaseModel):
    """A contact as a search lists it: who it is and its tags."""

    id: int
    email: str | None
    first_name: str | None
    last_name: str | None
    phone: str | None
    bounced: bool
    tags: list[str]
    created_at: datetime

    @classmethod
    def of(cls, contact: Contact, tags: list[str]) -> ContactSummary:
        return cls(
            id=contact.id,
            email=contact.email,
            first_name=contact.first_name,
            last_name=contact.last_name,
            phone=contact.phone,
            bounced=contact.bounced,
            tags=tags,
            created_at=contact.created_at,
        )


class TagAdded(BaseModel):
    contact: int
    tag: str
    added: bool  # false: the contact had the tag


class TagRemoved(BaseModel):
    contact: int
    tag: str
    removed: bool


class ListChanged(BaseModel):
    contact: int
    list: str
    status: str
    changed: bool  # false: the contact already had this status on the list


class Enrolled(BaseModel):
    workflow_id: str
    automation: str
    contact: int


class RunsEnded(BaseModel):
    ended: list[str]  # workflow ids
