"""The authenticated caller, as every route and the authorization layer see it."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

import msgspec

Role = Literal[
    "admin",
    "ministry_monitor",
    "province_head",
    "province_monitor",
    "region_coordinator",
    "district_head",
    "division_head",
    "integration",
]

ROLES: tuple[Role, ...] = (
    "admin",
    "ministry_monitor",
    "province_head",
    "province_monitor",
    "region_coordinator",
    "district_head",
    "division_head",
    "integration",
)


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Read from the database, and kept per worker only while the change feed is live:
    every user change is notified at commit, so role and scope changes apply at once."""

    id: UUID
    username: str
    role: Role
    area_code: str
    division_id: UUID | None = None
    extra_areas: tuple[str, ...] = ()
    #: Moved by each deactivation or password change: only tokens of this generation
    #: are accepted (migration 0021).
    token_generation: int = 0

    @property
    def areas(self) -> tuple[str, ...]:
        """Every area the principal is bound to (more than one only for service accounts)."""
        return (self.area_code, *self.extra_areas)
