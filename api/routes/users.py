"""CRM users: who owns deals and is assigned tasks. Named in other bodies by email or name."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from api.crm_references import CrmInput, Email, Name, store_refusals
from api.deps import ServicesDep
from api.errors import answers
from api.records import Limit, Offset, PathId, Records, each
from api.schemas.page import Page
from api.schemas.users import UserPublic
from store import crm as crm_store
from store.models import User

router = APIRouter(prefix="/users", tags=["crm"])
USERS = Records(User, "user", each(UserPublic.of))


class UserIn(CrmInput):
    email: Email
    name: Name


class UserPatch(CrmInput):
    email: Email | None = None
    name: Name | None = None


@router.post("", status_code=201, responses=answers(409))
async def create_user(body: UserIn, services: ServicesDep) -> UserPublic:
    async with services.db.write() as session:
        with store_refusals("email"):
            user = await crm_store.create_user(session, body.email, body.name)
        return await USERS.show(session, user)


@router.get("")
async def list_users(
    services: ServicesDep, limit: Limit = 50, offset: Offset = 0
) -> Page[UserPublic]:
    async with services.db.read() as session:
        return await USERS.page(session, select(User), limit, offset)


@router.get("/{user_id}", responses=answers(404))
async def read_user(user_id: PathId, services: ServicesDep) -> UserPublic:
    async with services.db.read() as session:
        return await USERS.read(session, user_id)


@router.patch("/{user_id}", responses=answers(404, 409))
async def patch_user(user_id: PathId, body: UserPatch, services: ServicesDep) -> UserPublic:
    async with services.db.write() as session:
        user = await USERS.get(session, user_id)
        with store_refusals("email"):
            await crm_store.update_user(session, user, body.model_dump(exclude_none=True))
        return await USERS.show(session, user)
