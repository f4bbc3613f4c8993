"""The operator dashboard (docs/operator.md): server-rendered pages (Jinja2) that a little
JavaScript (static/app.js) fills from the JSON API with the same session cookie. What a
role may not do is left out of the page here and refused by the API anyway."""

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Cookie, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from mizumori_server import i18n
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
        "config_json": json.dumps(config, ensure_ascii=False).replace("</", "<\\/"),
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
        "config_json": json.dumps({"lang": lang, "page": "login",
                                   "words": i18n.words(lang)}, ensure_ascii=False)})


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


