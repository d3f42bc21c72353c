"""The one authorization layer: which roles may use a route, and what lies in scope.

Every route declares ``opt={"permission": NAME}``; ``authorize`` (called by the auth
middleware on every request, once the caller is known) lets a request through only
when the caller's role is in ``PERMISSIONS[NAME]`` (403 otherwise). Whether a
particular object lies inside the caller's scope is answered by the ``*_in_scope``
helpers below, and an object outside answers 404, so its existence is not revealed.
A test fails on any route without a declaration.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from api.auth.principal import ROLES, Principal, Role
from api.errors import Forbidden, Unauthorized
from db import scope as scope_db
from db.submissions import ListScope

PUBLIC = "public"

_SIGNERS: frozenset[Role] = frozenset(
    {"ministry_monitor", "province_head", "district_head", "division_head"}
)
_PEOPLE: frozenset[Role] = frozenset(r for r in ROLES if r != "integration")

#: permission name → roles allowed to use routes that declare it.
PERMISSIONS: dict[str, frozenset[Role]] = {
    "me:read": frozenset(ROLES),
    "users:manage": frozenset({"admin", "province_head"}),
    "service_accounts:manage": frozenset({"admin"}),
    "keys:register": _SIGNERS,
    "keys:read": _SIGNERS | {"admin"},
    "keys:revoke": _SIGNERS | {"admin"},
    "submissions:submit": frozenset({"district_head", "division_head"}),
    # Service accounts read scorecards and rankings (DESIGN's roles), not the signed
    # reports, their notes and their reviewers' reasons.
    "submissions:read": _PEOPLE,
    "submissions:review": frozenset({"province_head", "province_monitor", "region_coordinator"}),
    "ledger:verify": frozenset(
        {
            "admin",
            "ministry_monitor",
            "province_head",
            "province_monitor",
            "region_coordinator",
            "district_head",
        }
    ),
    "catalogue:read": frozenset(ROLES),
    "catalogue:manage": frozenset({"admin"}),
    "divisions:read": frozenset(ROLES),
    "divisions:manage": frozenset({"admin", "district_head"}),
    # Not service accounts: the listing names each region's coordinator (username and
    # full name), and DESIGN grants them scorecard and ranking JSON only (whose region
    # rows carry each region's code and name).
    "regions:read": frozenset(
        {"admin", "ministry_monitor", "province_head", "province_monitor", "region_coordinator"}
    ),
    "regions:write": frozenset({"admin", "province_head"}),
    "agreements:read": _PEOPLE,
    "agreements:write": frozenset({"ministry_monitor", "province_head", "district_head"}),
    "agreements:sign": _SIGNERS,
    "scorecards:district": frozenset(ROLES),
    "scorecards:province": frozenset(
        {"admin", "ministry_monitor", "province_head", "province_monitor", "integration"}
    ),
    "rankings:read": frozenset(
        {
            "admin",
            "ministry_monitor",
            "province_head",
            "province_monitor",
            "region_coordinator",
            "integration",
        }
    ),
    "cascade:read": frozenset(
        {
            "admin",
            "ministry_monitor",
            "province_head",
            "province_monitor",
            "region_coordinator",
            "district_head",
        }
    ),
}

#: Roles a province head may create or manage (those below their own), and where.
PROVINCE_MANAGEABLE: frozenset[Role] = frozenset(
    {"province_monitor", "region_coordinator", "district_head", "division_head"}
)


def declared_permission(handler: BaseRouteHandler) -> str | None:
    value = handler.opt.get("permission")
    return value if isinstance(value, str) else None


def current_principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    user = connection.scope.get("user")
    return user if isinstance(user, Principal) else None


def authorize(principal: Principal | None, permission: str | None) -> None:
    """The role must be allowed by the route's declared permission.

    Called from the auth middleware rather than registered as a Litestar guard: a sync
    guard runs in a worker thread and copies the handler on every request, which cost
    more than the check itself on the hottest routes.
    """
    if permission == PUBLIC:
        return
    if permission is None or permission not in PERMISSIONS:
        # A route without a (known) declaration is closed, never open.
        raise Forbidden("This route has no access rule and is closed.")
    if principal is None:
        raise Unauthorized("A bearer token is required.", headers={"WWW-Authenticate": "Bearer"})
    if principal.role not in PERMISSIONS[permission]:
        raise Forbidden(
            f"The role {principal.role!r} may not do this.",
            extra={"permission": permission},
        )


def not_own_submission(principal: Principal, submitter_id: UUID) -> None:
    """A review is someone else's check of a signed report: an official moved to a
    reviewing role keeps the account that signed their old district's reports (403)."""
    if principal.id == submitter_id:
        raise Forbidden(
            "You signed this submission; another reviewer must decide on it.",
            extra={"submitter": str(submitter_id)},
        )


# -- scope ---------------------------------------------------------------------------


def is_national(principal: Principal) -> bool:
    return principal.role in ("admin", "ministry_monitor")


async def area_in_scope(
    conn: asyncpg.Connection | asyncpg.Pool,
    principal: Principal,
    area_code: str,
    *,
    year: int,
) -> bool:
    """Whether ``area_code`` (a province or district) lies inside the caller's scope.

    ``year`` is the year of the data asked about (a report's, an agreement's, a
    scorecard's; this year, ``local_today``, where no data names one). Only a region
    coordinator's scope depends on it: the districts whose region for that year they
    coordinate, in their own province.
    """
    if is_national(principal):
        return True
    role = principal.role
    if role in ("province_head", "province_monitor"):
        return await scope_db.area_within(conn, area_code, principal.area_code)
    if role == "region_coordinator":
        return await scope_db.district_coordinated_by(
            conn,
            area_code,
            principal.id,
            principal.area_code,
            year,
        )
    if role in ("district_head", "division_head"):
        return area_code == principal.area_code
    if role == "integration":
        for granted in principal.areas:
            if await scope_db.area_within(conn, area_code, granted):
                return True
        return False
    return False


async def user_manageable(
    conn: asyncpg.Connection, principal: Principal, *, role: str, area_code: str
) -> bool:
    """Whether the caller may create or change a user with this role and area."""
    if principal.role == "admin":
        return True
    if principal.role == "province_head":
        return role in PROVINCE_MANAGEABLE and await scope_db.area_within(
            conn, area_code, principal.area_code
        )
    return False


async def user_visible(
    conn: asyncpg.Connection, principal: Principal, areas: Sequence[str]
) -> bool:
    """Whether a user bound to ``areas`` (their area, then a service account's further
    grants) may be seen by a user manager: a province head sees those bound inside the
    province alone, whatever order the grants were listed in."""
    if principal.role == "admin":
        return True
    if principal.role == "province_head":
        for area in areas:
            if not await scope_db.area_within(conn, area, principal.area_code):
                return False
        return True
    return False


async def submission_visible(
    conn: asyncpg.Connection,
    principal: Principal,
    district_code: str,
    division_id: UUID | None,
    year: int,
) -> bool:
    """Whether the caller may read a submission of this district (and division), for
    the year of its ``as_of``.

    A division head sees only their division's reports; everyone else as far as their
    area scope reaches (``area_in_scope``).
    """
    if principal.role == "division_head" and division_id != principal.division_id:
        return False
    return await area_in_scope(conn, principal, district_code, year=year)


def submission_list_scope(principal: Principal) -> ListScope | None:
    """The same rule as ``submission_visible``, as a filter for lists (None: nothing)."""
    role = principal.role
    if is_national(principal):
        return ListScope()
    if role in ("province_head", "province_monitor", "district_head"):
        return ListScope(areas=(principal.area_code,))
    if role == "division_head":
        return ListScope(areas=(principal.area_code,), division_id=principal.division_id)
    if role == "region_coordinator":
        return ListScope(coordinator_id=principal.id, coordinator_province=principal.area_code)
    if role == "integration":
        return ListScope(areas=principal.areas)
    return None


async def province_report_visible(
    conn: asyncpg.Connection | asyncpg.Pool, principal: Principal, province: str
) -> bool:
    """Province documents: national roles, the province's own roles, integrations granted it."""
    if is_national(principal):
        return True
    if principal.role in ("province_head", "province_monitor"):
        return principal.area_code == province
    if principal.role == "integration":
        return any([await scope_db.area_within(conn, province, a) for a in principal.areas])
    return False


async def national_reports(conn: asyncpg.Connection | asyncpg.Pool, principal: Principal) -> bool:
    """Nationwide documents: national roles and integrations granted the whole country."""
    return is_national(principal) or (principal.role == "integration" and "ID" in principal.areas)


async def coordinated_districts(
    conn: asyncpg.Connection, principal: Principal, year: int
) -> set[str]:
    """A region coordinator's districts for ``year`` (as ``area_in_scope``)."""
    return await scope_db.coordinated_districts(conn, principal.id, principal.area_code, year)
