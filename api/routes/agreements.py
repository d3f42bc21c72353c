"""Agreements (perjanjian kinerja), their signatures, amendments, history and cascade."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import asyncpg
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi.spec import Example
from litestar.params import BodyKwarg, FromPath, QueryParameter

from api import agreements as service
from api import cascade as cascade_service
from api.pagination import Page, page_bounds
from api.routes.users import caller
from api.schemas.agreements import (
    YEAR_MAX,
    YEAR_MIN,
    Agreement,
    AgreementCreate,
    AgreementPatch,
    AmendmentCreate,
    Cascade,
    CloseIn,
    Level,
    SignatureIn,
    Status,
)
from db import agreements as agreement_db

CREATE_EXAMPLE = Example(
    summary="Province head of South Sumatra with Kota Palembang, 2021",
    value={
        "year": 2021,
        "level": "province_district",
        "second_party": {"area_code": "16.71", "official": "Kadis Dukcapil Kota Palembang"},
        "targets": [
            {"indicator": "ktp_el", "annual": 100, "quarterly": [98.5, 99, 99.5, 100]},
            {"indicator": "kia", "annual": 30},
            {"indicator": "akta_lahir", "annual": 95},
        ],
    },
)
AMEND_EXAMPLE = Example(
    summary="A new acting district head (PLT)",
    value={
        "reason": "mutasi_pejabat",
        "note": "Kadis dimutasi; PLT ditunjuk",
        "second_party": {"official": "PLT Kadis Dukcapil", "acting": "plt"},
    },
)
SIGN_EXAMPLE = Example(
    summary="Compact JWS over {agreement_id, document_sha256, party, iat}",
    value={
        "jws": "eyJhbGciOiJFZERTQSIsImtpZCI6Ii4uLiIsInR5cCI6ImtpbmVyamEtYWdyZWVtZW50LXNp"
        "Z25hdHVyZStqd3QifQ.eyJ...fQ.c2ln"
    },
)


class AgreementController(Controller):
    path = "/v1/agreements"
    tags = ["agreements"]

    @post(
        "/",
        opt={"permission": "agreements:write"},
        summary="Draft an agreement",
        description=(
            "The caller's office is the first party: the ministry monitor drafts "
            "national_province, a province head province_district, a district head "
            "district_division. Quarterly milestones (TW I-IV) must not decrease and end at "
            "the annual target; weights are optional and normalised."
        ),
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        data: Annotated[AgreementCreate, BodyKwarg(examples=[CREATE_EXAMPLE])],
    ) -> Agreement:
        return await service.create(db, caller(request), data)

    @get("/", opt={"permission": "agreements:read"}, summary="List agreements in your scope")
    async def list_agreements(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        state: State,
        # Bounds on the parameter itself: Litestar drops a msgspec.Meta inside the type.
        year: Annotated[int | None, QueryParameter(ge=YEAR_MIN, le=YEAR_MAX)] = None,
        level: Annotated[Level | None, QueryParameter()] = None,
        status: Annotated[Status | None, QueryParameter()] = None,
        area: Annotated[
            str | None, QueryParameter(description="second party's area", max_length=8)
        ] = None,
        party: Annotated[
            str | None, QueryParameter(description="either party's area", max_length=8)
        ] = None,
        limit: Annotated[int | None, QueryParameter()] = None,
        offset: Annotated[int, QueryParameter()] = 0,
    ) -> Page[Agreement]:
        limit, offset = page_bounds(limit, offset, state.settings)
        rows, total = await agreement_db.list_agreements(
            db,
            scope=service.scope_filter(caller(request)),
            year=year,
            level=level,
            status=status,
            area=area,
            party=party,
            limit=limit,
            offset=offset,
        )
        return Page(items=await service.many_out(db, rows), total=total, limit=limit, offset=offset)

    @get(
        "/cascade",
        opt={"permission": "cascade:read"},
        summary="Targets down the cascade, with gaps",
    )
    async def cascade(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        year: Annotated[int, QueryParameter(ge=YEAR_MIN, le=YEAR_MAX)],
        area: Annotated[
            str, QueryParameter(description="ID, a province or a district", max_length=8)
        ] = "ID",
    ) -> Cascade:
        """Findings: district target below its province's; population-weighted mean of
        district targets below the province's; a district indicator no division takes on;
        a district without an active agreement."""
        return await cascade_service.cascade(db, caller(request), year, area)

    @get("/{agreement_id:uuid}", opt={"permission": "agreements:read"}, summary="One agreement")
    async def get_agreement(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        agreement_id: FromPath[UUID],
    ) -> Agreement:
        return await service.to_out(
            db, await service.load_visible(db, caller(request), agreement_id)
        )

    @get(
        "/{agreement_id:uuid}/document",
        opt={"permission": "agreements:read"},
        summary="The canonical document both parties sign",
        media_type="application/json",
    )
    async def document(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        agreement_id: FromPath[UUID],
    ) -> Response[bytes]:
        """Exact bytes (sorted keys, no whitespace); their SHA-256 is ``document_sha256``."""
        row = await service.load_visible(db, caller(request), agreement_id)
        body = await service.document_of(db, row)
        return Response(
            body, media_type="application/json", headers={"X-Document-SHA256": row.document_sha256}
        )

    @patch("/{agreement_id:uuid}", opt={"permission": "agreements:write"}, summary="Edit a draft")
    async def patch_agreement(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        agreement_id: FromPath[UUID],
        data: Annotated[AgreementPatch, BodyKwarg()],
    ) -> Agreement:
        """Only an unsigned draft changes; anything signed answers 409."""
        return await service.patch(db, caller(request), agreement_id, data)

    @delete(
        "/{agreement_id:uuid}", opt={"permission": "agreements:write"}, summary="Discard a draft"
    )
    async def discard_agreement(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        agreement_id: FromPath[UUID],
    ) -> None:
        """Only an unsigned draft, by its first party (204); anything signed answers 409."""
        await service.discard(db, caller(request), agreement_id)

    @post(
        "/{agreement_id:uuid}/signatures",
        opt={"permission": "agreements:sign"},
        status_code=201,
        summary="Sign (second party first, then first party)",
    )
    async def sign(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        agreement_id: FromPath[UUID],
        data: Annotated[SignatureIn, BodyKwarg(examples=[SIGN_EXAMPLE])],
    ) -> Agreement:
        settings = request.app.state.settings
        return await service.sign(db, caller(request), agreement_id, data.jws, settings)

    @post(
        "/{agreement_id:uuid}/amendments",
        opt={"permission": "agreements:write"},
        summary="Amend an active agreement (new draft version)",
    )
    async def amend(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        agreement_id: FromPath[UUID],
        data: Annotated[AmendmentCreate, BodyKwarg(examples=[AMEND_EXAMPLE])],
    ) -> Agreement:
        """Reasons: mutasi_pejabat, perubahan_strategi, perubahan_prioritas. The active
        version becomes superseded when the amendment is signed by both parties."""
        return await service.amend(db, caller(request), agreement_id, data)

    @post(
        "/{agreement_id:uuid}/close",
        opt={"permission": "agreements:write"},
        summary="Close an active agreement (it stops applying from now)",
        status_code=200,
    )
    async def close(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        agreement_id: FromPath[UUID],
        data: Annotated[CloseIn, BodyKwarg()],
    ) -> Agreement:
        """The first party's office only; not while an amendment is being signed (409).
        Scorecards from then on use the targets in force without it (its province's)."""
        return await service.close(db, caller(request), agreement_id, data)

    @get(
        "/{agreement_id:uuid}/versions",
        opt={"permission": "agreements:read"},
        summary="Every version of this agreement",
    )
    async def versions(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[asyncpg.Connection],
        state: State,
        agreement_id: FromPath[UUID],
        limit: Annotated[int | None, QueryParameter()] = None,
        offset: Annotated[int, QueryParameter()] = 0,
    ) -> Page[Agreement]:
        """Oldest first, in pages as every list."""
        limit, offset = page_bounds(limit, offset, state.settings)
        row = await service.load_visible(db, caller(request), agreement_id)
        rows, total = await agreement_db.versions_page(
            db, row.lineage_id, limit=limit, offset=offset
        )
        return Page(items=await service.many_out(db, rows), total=total, limit=limit, offset=offset)
