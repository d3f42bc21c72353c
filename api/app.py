"""The one place the Litestar app is wired: routes, plugins, dependencies, limits."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Response
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, OAuthFlow, OAuthFlows, SecurityScheme
from litestar.plugins.problem_details import ProblemDetailsPlugin
from litestar.routes import HTTPRoute
from litestar.status_codes import HTTP_404_NOT_FOUND

from api.auth.middleware import auth_middleware
from api.authz import PUBLIC
from api.database import lifespan_for, provide_connection, record_writes_middleware
from api.errors import problem_details_config
from api.head import head_as_get
from api.header_section import check_header_section
from api.observability import configure_logging, request_id_middleware
from api.openapi_doc import (
    DescribedJsonRenderPlugin,
    DescribedScalarRenderPlugin,
    DescribedSwaggerRenderPlugin,
)
from api.paths import refuse_encoded_slashes
from api.query import refuse_repeated_parameters
from api.representation import ReportCache
from api.request import ApiRequest
from api.routes.agreements import AgreementController
from api.routes.areas import AreaController
from api.routes.auth import jwks, token
from api.routes.catalogue import DivisionController, IndicatorController
from api.routes.diagnostics import same_bytes
from api.routes.health import live, ready
from api.routes.keys import KeyController
from api.routes.regions import RegionController
from api.routes.scorecards import RankingController, ScorecardController, json_schema
from api.routes.submissions import SubmissionController, verify_ledger
from api.routes.users import UserController, create_service_account, me
from api.settings import Settings, get_settings
from api.submission_lane import submission_lane

API_VERSION = "0.1.0"
SCHEMA_PATH = "/schema"
TOKEN_URL = "/v1/auth/token"


def route_handlers(settings: Settings | None = None) -> list[object]:
    extra: list[object] = [same_bytes] if settings is not None and settings.bench_routes else []
    return [
        *extra,
        live,
        ready,
        AreaController,
        token,
        jwks,
        me,
        UserController,
        create_service_account,
        KeyController,
        SubmissionController,
        verify_ledger,
        IndicatorController,
        DivisionController,
        RegionController,
        AgreementController,
        ScorecardController,
        RankingController,
        json_schema,
    ]


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> Litestar:
    """Build the app for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()
    if configure_logs:
        configure_logging(settings.log_level)
    app = Litestar(
        route_handlers=route_handlers(settings),
        dependencies={
            "db": Provide(provide_connection),
        },
        middleware=[record_writes_middleware, auth_middleware, refuse_repeated_parameters],
        plugins=[ProblemDetailsPlugin(problem_details_config(settings.max_body_bytes))],
        lifespan=[lifespan_for(settings)],
        state=State(
            {
                "settings": settings,
                "report_cache": ReportCache(settings.report_cache_entries),
                "change_feed": None,
                "kept_values": None,
            }
        ),
        request_max_body_size=settings.max_body_bytes,
        request_class=ApiRequest,
        openapi_config=OpenAPIConfig(
            title="Kinerja API",
            version=API_VERSION,
            description=(
                "Performance agreements (perjanjian kinerja), signed progress reports and live "
                "rankings for Dukcapil offices. Errors are RFC 9457 problem+json."
            ),
            path=SCHEMA_PATH,
            # The first is the page at the schema path itself.
            render_plugins=[
                DescribedScalarRenderPlugin(),
                DescribedSwaggerRenderPlugin(path="/swagger"),
                DescribedJsonRenderPlugin(),
            ],
            components=Components(
                security_schemes={
                    "BearerToken": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        bearer_format="JWT",
                        description="EdDSA access token from POST /v1/auth/token",
                    ),
                    "OAuth2": SecurityScheme(
                        type="oauth2",
                        flows=OAuthFlows(
                            password=OAuthFlow(token_url=TOKEN_URL, scopes={}),
                            client_credentials=OAuthFlow(token_url=TOKEN_URL, scopes={}),
                        ),
                    ),
                }
            ),
            security=[{"BearerToken": []}, {"OAuth2": []}],
        ),
        logging_config=None,
        debug=False,
    )
    # Litestar's own handlers (the OpenAPI pages, automatic OPTIONS answers) are the only
    # routes not declared where they are defined: declare them public here.
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if route.path.startswith(SCHEMA_PATH) or set(handler.http_methods) == {"OPTIONS"}:
                handler.opt.setdefault("permission", PUBLIC)
            if set(handler.http_methods) == {"OPTIONS"} and isinstance(route, HTTPRoute):
                _allow_every_method(handler, route)
            if handler.opt.get("permission") == PUBLIC:
                handler.security = [{}]  # documented as needing no token
            if route.path == SCHEMA_PATH + "/{path:str}":
                handler.after_request = _not_found_page_as_problem
    if settings.submission_lane:
        app.asgi_handler = submission_lane(app, app.asgi_handler)
    app.asgi_handler = head_as_get(app.asgi_handler)
    app.asgi_handler = refuse_encoded_slashes(app.asgi_handler)
    app.asgi_handler = check_header_section(app.asgi_handler, settings.max_header_bytes)
    # Wrap outside Litestar's exception handling so 404/405/413 responses for unmatched
    # routes carry the request id too (route-level middleware never sees those).
    app.asgi_handler = request_id_middleware(app.asgi_handler)
    return app


async def _not_found_page_as_problem(response: Response[Any]) -> Response[Any]:
    """Litestar answers an unknown page under the schema path (``/schema/nope``) with an
    HTML "Error 404" of its own; here, as every other unknown path, it is problem+json."""
    if response.status_code == HTTP_404_NOT_FOUND:
        raise NotFoundException()
    return response


def _allow_every_method(handler: Any, route: HTTPRoute) -> None:
    """Litestar 2 answers OPTIONS with the ``Allow`` of the first handler registered at a
    path (litestar-org/litestar#4169, fixed only in 3): its automatic handler reads the
    methods of the route it was made for, before the path's other handlers joined it
    (``OPTIONS /v1/keys`` said GET only). Point it at the route they all joined."""
    for cell in getattr(handler.fn, "__closure__", None) or ():
        if isinstance(cell.cell_contents, HTTPRoute):
            cell.cell_contents = route


def create_app_from_env() -> Litestar:
    """Uvicorn factory entry point (one app per worker process)."""
    return create_app(get_settings())
