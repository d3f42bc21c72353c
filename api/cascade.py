"""The cascade report: national → province → district → division, with its gaps.

Only active agreements count. The gap rules are pure (``scorecards.cascade``); this
module gathers the targets and populations and shapes the tree.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import asyncpg

from api import authz
from api.auth.principal import Principal
from api.errors import NotFound
from api.schemas.agreements import AgreementRef, Cascade, CascadeNode, FindingOut
from db import agreements as agreement_db
from db import areas as area_db
from db import divisions as division_db
from db import indicators as indicator_db
from scorecards import DistrictPlan, Finding, province_findings


def _ref(row: agreement_db.AgreementRow | None) -> AgreementRef | None:
    return None if row is None else AgreementRef(id=row.id, version=row.version, status=row.status)


def _finding(f: Finding) -> FindingOut:
    return FindingOut(
        code=f.code,
        area_code=f.area_code,
        indicator=f.indicator,
        target=f.target,
        reference=f.reference,
        detail=f.detail,
    )


async def _province_node(
    conn: asyncpg.Connection, year: int, code: str, name: str, polarity: dict[str, str]
) -> CascadeNode:
    active = await agreement_db.active_in_province(conn, year, code)
    targets = await agreement_db.targets_of(conn, [a.id for a in active])
    annual = {a.id: {t.indicator_code: float(t.annual) for t in targets[a.id]} for a in active}
    own = next((a for a in active if a.level == "national_province"), None)
    by_district = {a.second_area: a for a in active if a.level == "province_district"}
    by_division: dict[str, list[agreement_db.AgreementRow]] = defaultdict(list)
    for a in active:
        if a.level == "district_division":
            by_division[a.second_area].append(a)
    districts = await area_db.districts_in(conn, [code])
    plans = []
    for d in districts:
        agreement = by_district.get(d.code)
        covered = frozenset(
            indicator for a in by_division.get(d.code, []) for indicator in annual[a.id]
        )
        plans.append(
            DistrictPlan(
                code=d.code,
                population=int(d.population),
                targets=None if agreement is None else annual[agreement.id],
                division_indicators=covered,
            )
        )
    findings = province_findings(
        code,
        None if own is None else annual[own.id],
        plans,
        polarity,  # type: ignore[arg-type]
    )
    children = []
    for d in districts:
        agreement = by_district.get(d.code)
        divisions = {v.id: v for v in await division_db.list_divisions(conn, d.code)}
        division_nodes = []
        for a in sorted(by_division.get(d.code, []), key=lambda a: str(a.second_division_id)):
            division = divisions.get(a.second_division_id) if a.second_division_id else None
            division_nodes.append(
                CascadeNode(
                    kind="division",
                    code=division.code if division else str(a.second_division_id),
                    name=division.name if division else "",
                    agreement=_ref(a),
                    targets=annual[a.id],
                    findings=[],
                    children=[],
                )
            )
        children.append(
            CascadeNode(
                kind="district",
                code=d.code,
                name=d.name,
                agreement=_ref(agreement),
                targets={} if agreement is None else annual[agreement.id],
                findings=[_finding(f) for f in findings if f.area_code == d.code],
                children=division_nodes,
            )
        )
    return CascadeNode(
        kind="province",
        code=code,
        name=name,
        agreement=_ref(own),
        targets={} if own is None else annual[own.id],
        findings=[_finding(f) for f in findings if f.area_code == code],
        children=children,
    )


def _all_findings(node: CascadeNode) -> list[FindingOut]:
    found = list(node.findings)
    for child in node.children:
        found.extend(_all_findings(child))
    return found


async def cascade(conn: asyncpg.Connection, caller: Principal, year: int, area: str) -> Cascade:
    """The tree below ``area`` (the country, a province or a district) for ``year``."""
    target = await area_db.get_area(conn, area)
    if target is None:
        raise NotFound(f"No area has the code {area!r}.")
    if target.kind == "country":
        if not authz.is_national(caller):
            raise NotFound("That area is outside your scope.")
    elif not await authz.area_in_scope(conn, caller, area, year=year):
        raise NotFound("That area is outside your scope.")
    polarity = {i.code: i.polarity for i in await indicator_db.list_indicators(conn)}
    if target.kind == "country":
        provinces = await area_db.names_of_kind(conn, ["province"])
        children = [
            await _province_node(conn, year, code, name, polarity)
            for code, name in provinces.items()
        ]
        root = CascadeNode(
            kind="country",
            code=target.code,
            name=target.name,
            agreement=None,
            targets={},
            findings=[],
            children=children,
        )
    else:
        province = target if target.kind == "province" else None
        if province is None and target.parent_code is not None:
            province = await area_db.get_area(conn, target.parent_code)
        assert province is not None  # a district's parent is a province
        root = await _province_node(conn, year, province.code, province.name, polarity)
        if target.kind == "district":
            root = next(c for c in root.children if c.code == area)
    return Cascade(
        year=year,
        area=area,
        root=root,
        findings=_all_findings(root),
        generated_at=datetime.now(UTC),
    )
