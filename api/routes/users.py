"""Users (people) and service accounts, managed within the caller's scope."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import asyncpg
from litestar import Controller, Request, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from api import identity
from api.auth.principal import Principal, Role
from api.pagination import Page, page_bounds
from api.schemas.identity import (
    ServiceAccountCreate,
    ServiceAccountCreated,
    User,
    UserCreate,
    UserPatch,
)
from api.settings import local_today
from db import users as user_db


def caller(request: Request[Any, Any, Any]) -> Principal:
    user = request.scope.get("user")
    assert isinstance(user, Principal)  # the guard has let only principals through
    return user


class UserController(Controller):
    path = "/v1/users"
    tags = ["users"]
    opt = {"permission": "users:manage"}

    @post("/", summary="Create a user")
    async def create(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        data: JSONBody[UserCreate],
    ) -> User:
        """Admins create anyone; a province head creates roles below their own, in the province."""
        return await identity.create_user(db, caller(request), data)

    @get("/", summary="List users")
    async def list_users(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        state: State,
        role: Annotated[Role | None, QueryParameter()] = None,
        area: Annotated[str | None, QueryParameter(max_length=8)] = None,
        active: Annotated[bool | None, QueryParameter()] = None,
        limit: Annotated[int | None, QueryParameter()] = None,
        offset: Annotated[int, QueryParameter()] = 0,
    ) -> Page[User]:
        me = caller(request)
        limit, offset = page_bounds(limit, offset, state.settings)
        rows, total = await user_db.list_users(
            db,
            within_province=None if me.role == "admin" else me.area_code,
            role=role,
            area=area,
            active=active,
            limit=limit,
            offset=offset,
        )
        return Page(
            items=[identity.to_user(r) for r in rows], total=total, limit=limit, offset=offset
        )

    @get("/{user_id:uuid}", summary="One user")
    async def get_user(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        user_id: FromPath[UUID],
    ) -> User:
        return identity.to_user(await identity.visible_user(db, caller(request), user_id))

    @patch("/{user_id:uuid}", summary="Change a user (name, password, role, scope, active)")
    async def patch_user(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        user_id: FromPath[UUID],
        data: JSONBody[UserPatch],
    ) -> User:
        """Setting ``active: false`` stops the user's existing tokens at once."""
        this_year = local_today(request.app.state.settings).year
        return await identity.patch_user(db, caller(request), user_id, data, this_year=this_year)


@get("/v1/me", opt={"permission": "me:read"}, summary="The caller's own account", tags=["users"])
async def me(request: Request[Any, Any, Any], db: NamedDependency[asyncpg.Connection]) -> User:
    row = await user_db.get_user(db, caller(request).id)
    assert row is not None
    return identity.to_user(row)


@post(
    "/v1/service-accounts",
    opt={"permission": "service_accounts:manage"},
    summary="Create a service account (integration)",
    tags=["users"],
)
async def create_service_account(
    request: Request[Any, Any, Any],
    db: NamedDependency[asyncpg.Connection],
    data: JSONBody[ServiceAccountCreate],
) -> ServiceAccountCreated:
    """Returns the client secret once; it is stored only as a hash."""
    return await identity.create_service_account(db, caller(request), data)
