"""Request and response bodies for tokens, users, service accounts and signing keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from api.auth.principal import Role
from api.schemas.patterns import NO_NUL, VISIBLE_TEXT, described, whole

Username = Annotated[
    str,
    msgspec.Meta(
        pattern=described(
            whole(r"[A-Za-z0-9._@-]{3,64}"),
            "a username of 3 to 64 letters, digits, dots, _, @ or -",
        )
    ),
]
Password = Annotated[str, msgspec.Meta(min_length=10, max_length=256)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=VISIBLE_TEXT)]
AreaCode = Annotated[
    str,
    msgspec.Meta(
        pattern=described(
            whole(r"ID|[0-9]{2}|[0-9]{2}\.[0-9]{2}"),
            "an area code: ID, a province such as 16 or a district such as 16.71",
        )
    ),
]


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """OAuth2 token request: ``password`` for people, ``client_credentials`` for systems."""

    grant_type: Literal["password", "client_credentials"]
    username: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    password: Annotated[str, msgspec.Meta(max_length=1024)] | None = None
    client_id: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    client_secret: Annotated[str, msgspec.Meta(max_length=1024)] | None = None
    scope: Annotated[str, msgspec.Meta(max_length=256)] | None = None


class TokenResponse(msgspec.Struct, kw_only=True):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int


class UserCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    username: Username
    full_name: Name
    role: Role
    area_code: AreaCode
    password: Password
    division_id: UUID | None = None


class UserPatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    full_name: Name | None = None
    active: bool | None = None
    password: Password | None = None
    role: Role | None = None
    area_code: AreaCode | None = None
    division_id: UUID | None = None


class User(msgspec.Struct, kw_only=True):
    id: UUID
    username: str
    full_name: str
    role: str
    area_code: str
    division_id: UUID | None
    areas: list[str]
    active: bool
    created_at: datetime
    updated_at: datetime


class ServiceAccountCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    areas: Annotated[list[AreaCode], msgspec.Meta(min_length=1, max_length=100)]


class ServiceAccountCreated(msgspec.Struct, kw_only=True):
    """The secret is shown once, here, and stored only as a hash."""

    id: UUID
    client_id: str
    client_secret: str
    areas: list[str]


class KeyRegister(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    jwk: dict[str, Any]
    label: Annotated[str, msgspec.Meta(max_length=200, pattern=NO_NUL)] | None = None


class SigningKeyOut(msgspec.Struct, kw_only=True):
    kid: str
    owner_id: UUID
    alg: str
    jwk: dict[str, Any]
    label: str | None
    created_at: datetime
    revoked_at: datetime | None
