"""Accounts (companies) and the contacts in them: a contact is in at most one account."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import Field
from sqlalchemy import select

from api.crm_references import CrmInput, Fields, Id, Name, Url, invalid_field, store_refusals
from api.deps import ServicesDep
from api.errors import answers
from api.records import Limit, Offset, PathId, Records, each
from api.schemas.accounts import AccountMemberPublic, AccountPublic
from api.schemas.page import Page
from store import crm as crm_store
from store.models import Account, AccountContact, Contact

router = APIRouter(prefix="/accounts", tags=["crm"])
ACCOUNTS = Records(Account, "account", each(AccountPublic.of))
MEMBERS = Records(
    AccountContact, "link", each(AccountMemberPublic.of), order=AccountContact.contact_id
)


class AccountIn(CrmInput):
    name: Name
    url: Url | None = None
    fields: Fields = Field(default_factory=dict)


class AccountPatch(CrmInput):
    """Only what is given changes; `url: null` removes it, a field set to null is removed."""

    name: Name | None = None
    url: Url | None = None
    fields: Fields | None = None


class MemberIn(CrmInput):
    contact: Id
    job_title: Name | None = None


class MemberPatch(CrmInput):
    job_title: Name | None


@router.post("", status_code=201, responses=answers(409))
async def create_account(body: AccountIn, services: ServicesDep) -> AccountPublic:
    async with services.db.write() as session:
        with store_refusals("name"):
            account = await crm_store.create_account(
                session, body.name, url=body.url, fields=body.fields
            )
        return await ACCOUNTS.show(session, account)


@router.get("")
async def list_accounts(
    services: ServicesDep, limit: Limit = 50, offset: Offset = 0
) -> Page[AccountPublic]:
    async with services.db.read() as session:
        return await ACCOUNTS.page(session, select(Account), limit, offset)


@router.get("/{account_id}", responses=answers(404))
async def read_account(account_id: PathId, services: ServicesDep) -> AccountPublic:
    async with services.db.read() as session:
        return await ACCOUNTS.read(session, account_id)


@router.patch("/{account_id}", responses=answers(404, 409))
async def patch_account(
    account_id: PathId, body: AccountPatch, services: ServicesDep
) -> AccountPublic:
    # Only `url` may be set to null (removed); a null name or fields changes nothing.
    changes = {
        name: value
        for name in body.model_fields_set
        if (value := getattr(body, name)) is not None or name == "url"
    }
    async with services.db.write() as session:
        account = await ACCOUNTS.get(session, account_id)
        with store_refusals("name"):
            await crm_store.update_account(session, account, changes)
        return await ACCOUNTS.show(session, account)


@router.post("/{account_id}/contacts", status_code=201, responses=answers(404))
async def add_account_contact(
    account_id: PathId, body: MemberIn, services: ServicesDep
) -> AccountMemberPublic:
    """Put a contact in the account (a contact has one account: it moves from any other)."""
    async with services.db.write() as session:
        account = await ACCOUNTS.get(session, account_id)
        if await session.get(Contact, body.contact) is None:
            raise invalid_field("contact", f"contact {body.contact} does not exist")
        await crm_store.link_contact(session, account, body.contact, body.job_title)
        await session.flush()
        return await MEMBERS.read(session, body.contact)


@router.get("/{account_id}/contacts", responses=answers(404))
async def list_account_contacts(
    account_id: PathId, services: ServicesDep, limit: Limit = 50, offset: Offset = 0
) -> Page[AccountMemberPublic]:
    async with services.db.read() as session:
        await ACCOUNTS.get(session, account_id)
        query = select(AccountContact).where(AccountContact.account_id == account_id)
        return await MEMBERS.page(session, query, limit, offset)


@router.patch("/{account_id}/contacts/{contact_id}", responses=answers(404))
async def patch_account_contact(
    account_id: PathId, contact_id: PathId, body: MemberPatch, services: ServicesDep
) -> AccountMemberPublic:
    async with services.db.write() as session:
        link = await session.get(AccountContact, contact_id)
        if link is None or link.account_id != account_id:
            raise HTTPException(
                status_code=404, detail=f"contact {contact_id} is not in account {account_id}"
            )
        link.job_title = body.job_title
        return await MEMBERS.show(session, link)
