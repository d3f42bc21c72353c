"""Public keys people register to sign agreements and submissions."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from api import identity
from api.pagination import Page, page_bounds
from api.routes.users import caller
from api.schemas.identity import KeyRegister, SigningKeyOut
from db import signing_keys as key_db


class KeyController(Controller):
    path = "/v1/keys"
    tags = ["keys"]

    @post("/", opt={"permission": "keys:register"}, summary="Register a public signing key")
    async def register(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        data: JSONBody[KeyRegister],
    ) -> SigningKeyOut:
        """Ed25519 (OKP) or P-256 (EC) public JWK; its RFC 7638 thumbprint becomes its kid."""
        return await identity.register_key(db, caller(request), data.jwk, data.label)

    @get("/", opt={"permission": "keys:read"}, summary="List keys (your own; admins see all)")
    async def list_keys(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        state: State,
        limit: Annotated[int | None, QueryParameter()] = None,
        offset: Annotated[int, QueryParameter()] = 0,
    ) -> Page[SigningKeyOut]:
        me = caller(request)
        limit, offset = page_bounds(limit, offset, state.settings)
        keys, total = await key_db.list_keys(
            db, owner_id=None if me.role == "admin" else me.id, limit=limit, offset=offset
        )
        return Page(
            items=[identity.to_key(k) for k in keys], total=total, limit=limit, offset=offset
        )

    @post(
        "/{kid:str}/revoke",
        opt={"permission": "keys:revoke"},
        status_code=200,
        summary="Revoke a key",
    )
    async def revoke(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        kid: FromPath[str],
    ) -> SigningKeyOut:
        """Records the time; what was signed before it stays verifiable."""
        await identity.own_key(db, caller(request), kid)
        key = await key_db.revoke(db, kid)
        assert key is not None
        return identity.to_key(key)
