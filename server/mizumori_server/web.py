"""The operator dashboard (docs/operator.md): server-rendered pages (Jinja2) that a little
JavaScript (static/app.js) fills from the JSON API with the same session cookie. What a
role may not do is left out of the page here and refused by the API anyway."""

import json
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit, urlunsplit

from fastapi import APIRouter, Cookie, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from mizumori_server import headers, i18n
from mizumori_server.deps import DB, current_user
from mizumori_server.models import User

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
static = StaticFiles(directory=HERE / "static")
router = APIRouter(include_in_schema=False)
LANG_COOKIE = "mizumori_lang"
PAGES = ("map", "fleet", "alerts", "ota", "provision")
# Who may do what on a page: write controls are rendered only for these roles.
CAN = {"operate": ("admin", "operator"), "provision": ("admin", "operator", "technician"),
       "release": ("admin", "operator")}


def script_json(value: Any) -> str:
    """JSON to put inside a <script type="application/json"> block: no "<", ">" or "&"
    (escaped as \\u003c ...), so nothing in it can end the block or start a comment."""
    return (json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")
            .replace(">", "\\u003e").replace("&", "\\u0026"))


# What a browser drops from a URL before it reads it (tab, CR, LF anywhere; C0 controls and
# spaces at either end): "/\t/evil.example/" is read as "//evil.example/", another site.
_DROPPED = re.compile(r"[\x00-\x1f\x7f]")


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a path on this server, else "/". The value is cleaned
    as a browser would clean it, parsed, and rebuilt from its path, query and fragment; a
    path must start with one "/" (not "//", "/\\" or a backslash anywhere, which browsers
    read as "/")."""
    if not value:
        return "/"
    cleaned = _DROPPED.sub("", value).strip(" ")
    if "\\" in cleaned or not cleaned.startswith("/") or cleaned.startswith("//"):
        return "/"
    try:
        parts = urlsplit(cleaned)
    except ValueError:
        return "/"
    if parts.scheme or parts.netloc or not parts.path.startswith("/") \
            or parts.path.startswith("//"):
        return "/"
    rebuilt = urlunsplit(("", "", parts.path, parts.query, parts.fragment))
    return rebuilt if rebuilt.startswith("/") and not rebuilt.startswith("//") else "/"


def language(request: Request) -> str:
    lang = request.cookies.get(LANG_COOKIE) or request.app.state.settings.language
    return lang if lang in i18n.LANGUAGES else "ja"


def render(request: Request, user: User, page: str, **extra: Any) -> HTMLResponse:
    lang = language(request)
    st = request.app.state.settings
    can = {k: user.role in roles for k, roles in CAN.items()}
    words = i18n.words(lang)
    config = {"lang": lang, "tz": st.timezone, "page": page, "can": can,
              "tiles": {"url": st.tile_url, "attribution": st.tile_attribution},
              "words": words, **extra}
    return templates.TemplateResponse(request, f"{page}.html", {
        "t": words, "lang": lang, "user": user, "can": can, "page": page,
        "pages": [p for p in PAGES if p != "provision" or can["provision"]],
        "config_json": script_json(config),
        **extra})


def viewer(request: Request, session: DB,
           mizumori_session: Annotated[str | None, Cookie()] = None) -> User:
    """The logged-in person, or a redirect to the login page."""
    try:
        return current_user(session, None, mizumori_session)
    except HTTPException:
        raise HTTPException(303, headers={
            "Location": "/login?next=" + quote(request.url.path)}) from None


@router.get("/login")
def login_page(request: Request) -> HTMLResponse:
    lang = language(request)
    return templates.TemplateResponse(request, "login.html", {
        "t": i18n.words(lang), "lang": lang,
        "config_json": script_json({"lang": lang, "page": "login", "words": i18n.words(lang),
                                    "next": safe_next(request.query_params.get("next"))})})


@router.get("/docs")
def api_docs(request: Request) -> HTMLResponse:
    """Swagger UI, as FastAPI's own page but without inline script (static/docs.js)."""
    root = request.scope.get("root_path", "")
    return templates.TemplateResponse(request, "docs.html", {
        "title": request.app.title + " - Swagger UI", "css": headers.SWAGGER_CSS,
        "js": headers.SWAGGER_JS, "favicon": headers.SWAGGER_FAVICON,
        "openapi_url": root + (request.app.openapi_url or "/openapi.json")})


@router.get("/lang/{lang}")
def switch_language(lang: str, request: Request) -> Response:
    if lang not in i18n.LANGUAGES:
        raise HTTPException(404, f"no language {lang}")
    back = request.headers.get("referer") or "/"
    r = RedirectResponse(back if back.startswith(str(request.base_url)) else "/", 303)
    r.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax")
    return r


Viewer = Annotated[User, Depends(viewer)]


@router.get("/")
def map_page(request: Request, user: Viewer) -> Response:
    return render(request, user, "map")


@router.get("/fleet")
def fleet_page(request: Request, user: Viewer) -> Response:
    return render(request, user, "fleet")


@router.get("/stations/{code}")
def station_page(code: str, request: Request, user: Viewer) -> Response:
    return render(request, user, "station", station=code)


@router.get("/alerts")
def alerts_page(request: Request, user: Viewer) -> Response:
    return render(request, user, "alerts")


@router.get("/ota")
def ota_page(request: Request, user: Viewer) -> Response:
    return render(request, user, "ota")


@router.get("/provision")
def provision_page(request: Request, user: Viewer) -> Response:
    if user.role not in CAN["provision"]:
        raise HTTPException(403, "needs role technician, operator or admin")
    return render(request, user, "provision")


