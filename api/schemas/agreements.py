"""Request and response bodies for indicators, divisions, regions and agreements."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from api.schemas.identity import AreaCode
from api.schemas.patterns import VISIBLE_TEXT, described, whole

Level = Literal["national_province", "province_district", "district_division"]
Status = Literal["draft", "signed_by_second", "active", "superseded", "closed"]
AmendmentReason = Literal["mutasi_pejabat", "perubahan_strategi", "perubahan_prioritas"]
Acting = Literal["plt", "plh"]
YEAR_MIN, YEAR_MAX = 2000, 2100
Year = Annotated[int, msgspec.Meta(ge=YEAR_MIN, le=YEAR_MAX)]
#: Targets are positive: achievement divides by them (a zero target has no achievement).
#: Targets are stored with two decimals: anything below 0.01 would be stored as 0.
Percent = Annotated[float, msgspec.Meta(ge=0.01, le=1000)]
Code = Annotated[
    str,
    msgspec.Meta(
        pattern=described(
            whole(r"[a-z][a-z0-9_]{1,31}"),
            "a code of 2 to 32 lower-case letters, digits and _, starting with a letter",
        )
    ),
]
#: PostgreSQL text cannot hold NUL: refuse it here (400) rather than at the INSERT (500).
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=VISIBLE_TEXT)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=2000, pattern=VISIBLE_TEXT)]


# -- indicators ------------------------------------------------------------------------


class IndicatorCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    code: Code
    name_id: Name
    name_en: Name
    polarity: Literal["higher", "lower"]
    numerator_definition: Name
    denominator_definition: Name
    # Something visible, as a name: a unit or age band of spaces says nothing.
    unit: Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=VISIBLE_TEXT)] = (
        "percent"
    )
    # numeric(6, 2): anything below 0.01 would be stored as 0.
    cap: Annotated[float, msgspec.Meta(ge=0.01, le=1000)] = 120.0
    age_band: Annotated[str, msgspec.Meta(max_length=64, pattern=VISIBLE_TEXT)] | None = None


class Indicator(msgspec.Struct, kw_only=True):
    code: str
    name_id: str
    name_en: str
    unit: str
    polarity: str
    cap: float
    numerator_definition: str
    denominator_definition: str
    age_band: str | None
    core: bool


# -- divisions -------------------------------------------------------------------------


class DivisionCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    code: Code
    name: Name


class Division(msgspec.Struct, kw_only=True):
    id: UUID
    district_code: str
    code: str
    name: str


# -- regions ---------------------------------------------------------------------------


class RegionIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    districts: Annotated[list[AreaCode], msgspec.Meta(max_length=100)]
    coordinator_id: UUID | None = None


class RegionsPut(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    regions: Annotated[list[RegionIn], msgspec.Meta(max_length=50)]


class AreaRef(msgspec.Struct, kw_only=True):
    code: str
    name: str


class Coordinator(msgspec.Struct, kw_only=True):
    id: UUID
    username: str
    full_name: str


class Region(msgspec.Struct, kw_only=True):
    id: UUID
    name: str
    coordinator: Coordinator | None
    districts: list[AreaRef]


class Regions(msgspec.Struct, kw_only=True):
    province: str
    year: int
    #: The year these regions were drawn for: ``year``, or an earlier one they carry
    #: over from until the province draws new ones (None: never drawn).
    drawn_for: int | None
    regions: list[Region]
    unassigned: list[AreaRef]


# -- agreements ------------------------------------------------------------------------


class TargetIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    indicator: Code
    annual: Percent
    quarterly: Annotated[list[Percent], msgspec.Meta(min_length=4, max_length=4)] | None = None
    # Stored with six decimals (and must stay above 0 there).
    weight: Annotated[float, msgspec.Meta(ge=0.000001, le=1000)] | None = None


class FirstPartyIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """In an edit or an amendment, a title left out is kept (``null`` removes it): it names
    the office, which a change of official does not change. ``acting`` (PLT/PLH) describes
    the official: a new one named is not acting unless it says so; left out with no new
    official, it is kept."""

    official: Name | None = None
    title: Name | msgspec.UnsetType | None = msgspec.UNSET
    acting: Acting | msgspec.UnsetType | None = msgspec.UNSET


class SecondPartyIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """As ``FirstPartyIn`` for the title; ``acting`` (PLT/PLH) describes the official
    named, so it is what the body says (left out: not acting)."""

    official: Name
    area_code: AreaCode | None = None
    division_id: UUID | None = None
    title: Name | msgspec.UnsetType | None = msgspec.UNSET
    acting: Acting | None = None


class AgreementCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    year: Year
    level: Level
    second_party: SecondPartyIn
    targets: Annotated[list[TargetIn], msgspec.Meta(min_length=1, max_length=50)]
    first_party: FirstPartyIn | None = None


class AgreementPatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Only a draft nobody has signed can change."""

    first_party: FirstPartyIn | None = None
    second_party: SecondPartyIn | None = None
    targets: Annotated[list[TargetIn], msgspec.Meta(min_length=1, max_length=50)] | None = None


class AmendmentCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    reason: AmendmentReason
    note: Text
    first_party: FirstPartyIn | None = None
    second_party: SecondPartyIn | None = None
    targets: Annotated[list[TargetIn], msgspec.Meta(min_length=1, max_length=50)] | None = None


class CloseIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Why the agreement ends before its year does (kept with it)."""

    reason: Text


class SignatureIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``jws``: compact JWS (EdDSA or ES256, typ ``kinerja-agreement-signature+jwt``) over
    ``{"agreement_id", "document_sha256", "party", "iat"}``."""

    jws: Annotated[str, msgspec.Meta(max_length=8192)]


class SignaturePayload(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    agreement_id: UUID
    document_sha256: Annotated[
        str, msgspec.Meta(pattern=described(whole(r"[0-9a-f]{64}"), "64 lower-case hex digits"))
    ]
    party: Literal["first", "second"]
    iat: int


class TargetOut(msgspec.Struct, kw_only=True):
    indicator: str
    annual: float
    quarterly: list[float] | None
    weight: float | None


class Party(msgspec.Struct, kw_only=True):
    area_code: str
    division_id: UUID | None
    official: str
    title: str | None
    acting: str | None


class SignatureOut(msgspec.Struct, kw_only=True):
    party: str
    signer_id: UUID
    kid: str
    document_sha256: str
    signed_at: datetime
    jws: str


class Amendment(msgspec.Struct, kw_only=True):
    of: UUID
    reason: str
    note: str | None


class Agreement(msgspec.Struct, kw_only=True):
    id: UUID
    lineage_id: UUID
    version: int
    year: int
    level: str
    status: str
    first_party: Party
    second_party: Party
    targets: list[TargetOut]
    amendment: Amendment | None
    document_sha256: str
    signatures: list[SignatureOut]
    created_at: datetime
    activated_at: datetime | None
    ended_at: datetime | None
    closed: Closed | None = None


class Closed(msgspec.Struct, kw_only=True):
    """Who closed the agreement, and why; it stopped applying at ``ended_at``."""

    by: UUID
    reason: str


# -- cascade ---------------------------------------------------------------------------


class FindingOut(msgspec.Struct, kw_only=True):
    code: str
    area_code: str
    indicator: str | None
    target: float | None
    reference: float | None
    detail: str


class AgreementRef(msgspec.Struct, kw_only=True):
    id: UUID
    version: int
    status: str


class CascadeNode(msgspec.Struct, kw_only=True):
    kind: Literal["country", "province", "district", "division"]
    code: str
    name: str
    agreement: AgreementRef | None
    targets: dict[str, float]
    findings: list[FindingOut]
    children: list[CascadeNode]


class Cascade(msgspec.Struct, kw_only=True):
    year: int
    area: str
    root: CascadeNode
    findings: list[FindingOut]
    generated_at: datetime
