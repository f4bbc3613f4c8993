"""OGC API – Features, Part 1: Core (OGC 17-069r4) at /ogc, for the city's GIS (QGIS,
ArcGIS, GDAL): collections `stations` (latest state) and `observations` (readings), with
bbox, datetime, limit and paging, in GeoJSON (docs/gis.md)."""

import datetime as dt
import re
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import HTTPException, Path, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, or_, select

from mizumori_server import clock, features, queries
from mizumori_server.api.stations import latest_of
from mizumori_server.deps import DB, OpenData
from mizumori_server.inputs import INT64_MAX, bounded_router, error
from mizumori_server.models import Reading, Station, StationLatest
from mizumori_server.queries import AnySelect

router = bounded_router("/ogc", "OGC API - Features",
                        {406: error("Neither JSON nor GeoJSON")})
# The media types an answer comes in (f= or Accept): features as GeoJSON or JSON.
FEATURES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/geo+json": {}, "application/json": {}},
          "description": "GeoJSON (f=geojson, the default) or JSON (f=json)"}}
CollectionId = Annotated[str, Path(max_length=64)]
FeatureId = Annotated[str, Path(max_length=64)]
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
]
GEOJSON = "application/geo+json"
DEFAULT_LIMIT, MAX_LIMIT = 100, 10000
COLLECTIONS = {
    "stations": ("Water-level stations", "Every station with its latest level, river level "
                 "reached (0-4), status (online, late, offline, unseen) and last report."),
    "observations": ("Observations", "Every reading: water level, battery and environment, "
                     "at its station's position; time is when it was measured."),
}
ITEM_PARAMS = {"bbox", "bbox-crs", "datetime", "limit", "offset", "f"}
EXTRA_PARAMS = {"observations": {"station"}}


def problem(status: int, message: str) -> HTTPException:
    return HTTPException(status, message)


# --- formats -----------------------------------------------------------------------------

def media_type(request: Request, items: bool) -> str:
    """f= first, then the Accept header (the standard's two ways of choosing)."""
    f = request.query_params.get("f")
    if f is not None:
        if f == "json":
            return "application/json"
        if f == "geojson" and items:
            return GEOJSON
        raise problem(400, f"unsupported format f={f}: use "
                           + ("geojson or json" if items else "json"))
    accept = request.headers.get("accept", "")
    if not accept.strip():
        return GEOJSON if items else "application/json"
    kinds = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if items and GEOJSON in kinds:
        return GEOJSON
    if "application/json" in kinds:
        return "application/json"
    if any(k in ("*/*", "application/*") for k in kinds):
        return GEOJSON if items else "application/json"
    raise problem(406, "this API answers in JSON and GeoJSON only")


def reply(request: Request, body: dict[str, Any], items: bool = False) -> JSONResponse:
    return JSONResponse(body, media_type=media_type(request, items))


def base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/ogc"


def link(href: str, rel: str, type_: str = "application/json", title: str = "") -> dict:
    out = {"href": href, "rel": rel, "type": type_}
    if title:
        out["title"] = title
    return out


# --- query parameters --------------------------------------------------------------------

def check_params(request: Request, allowed: set[str]) -> None:
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise problem(400, f"unknown query parameter {unknown[0]}")


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """minLon,minLat,maxLon,maxLat (or with heights: 6 numbers), in CRS84."""
    if text is None:
        return None
    try:
        nums = [float(x) for x in text.split(",")]
    except ValueError:
        raise problem(400, f"bbox {text!r}: four (or six) comma-separated numbers") from None
    if len(nums) == 6:
        nums = [nums[0], nums[1], nums[3], nums[4]]
    if len(nums) != 4:
        raise problem(400, f"bbox {text!r}: four (or six) comma-separated numbers")
    x1, y1, x2, y2 = nums
    if not (-180 <= x1 <= 180 and -180 <= x2 <= 180 and -90 <= y1 <= 90 and -90 <= y2 <= 90):
        raise problem(400, f"bbox {text!r}: longitude -180..180, latitude -90..90")
    if y1 > y2:
        raise problem(400, f"bbox {text!r}: the lower latitude comes first")
    return x1, y1, x2, y2


def parse_instant(text: str) -> tuple[int, int]:
    """[start, end) in Unix seconds: a date is its whole UTC day, a date-time its second."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.UTC)
            start = int(day.timestamp())
            return start, start + 86400
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})",
                            text):
            raise ValueError
        start = int(dt.datetime.fromisoformat(text.upper()).timestamp())
    except (ValueError, OverflowError):
        raise problem(400, f"datetime {text!r}: RFC 3339, e.g. 2026-07-01T09:00:00Z, "
                           "2026-07-01, or an interval a/b with .. for an open end") from None
    return start, start + 1


def parse_datetime(text: str | None) -> tuple[int | None, int | None]:
    if text is None:
        return None, None
    if "/" not in text:
        return parse_instant(text)
    a, b = text.split("/", 1)
    lo = None if a in ("", "..") else parse_instant(a)[0]
    hi = None if b in ("", "..") else parse_instant(b)[1]
    if lo is None and hi is None:
        raise problem(400, f"datetime {text!r}: an interval needs at least one end")
    if lo is not None and hi is not None and lo >= hi:
        raise problem(400, f"datetime {text!r}: the interval ends before it starts")
    return lo, hi


def parse_int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not re.fullmatch(r"[0-9]{1,12}", text) or not lo <= int(text) <= hi:
        raise problem(400, f"{name} {text!r}: an integer from {lo} to {hi}")
    return int(text)


def spatial(bbox: tuple[float, float, float, float] | None) -> list[Any]:
    if bbox is None:
        return []
    x1, y1, x2, y2 = bbox
    lon = (Station.longitude.between(x1, x2) if x1 <= x2  # else it crosses 180°
           else or_(Station.longitude >= x1, Station.longitude <= x2))
    return [lon, Station.latitude.between(y1, y2)]


def temporal(column: Any, span: tuple[int | None, int | None]) -> list[Any]:
    lo, hi = span
    return ([column >= lo] if lo is not None else []) + ([column < hi] if hi is not None
                                                          else [])


# --- resources ---------------------------------------------------------------------------

@router.get("", include_in_schema=False)
@router.get("/")
def landing(request: Request, _: OpenData) -> JSONResponse:
    check_params(request, {"f"})
    b = base(request)
    return reply(request, {
        "title": "Mizumori water levels",
        "description": "Water-level stations for municipal flood prevention: the latest "
                       "state of every station and every observation.",
        "links": [
            link(b, "self", title="this document"),
            link(b + "/api", "service-desc", "application/vnd.oai.openapi+json;version=3.0",
                 "the API definition"),
            link(b + "/conformance", "conformance", title="conformance classes"),
            link(b + "/collections", "data", title="collections"),
        ]})


@router.get("/conformance")
def conformance(request: Request, _: OpenData) -> JSONResponse:
    check_params(request, {"f"})
    return reply(request, {"conformsTo": CONFORMANCE})


@router.get("/api", responses={200: {
    "content": {"application/vnd.oai.openapi+json;version=3.0": {}},
    "description": "OpenAPI 3.0 of /ogc"}})
def api_definition(request: Request, _: OpenData) -> JSONResponse:
    check_params(request, {"f"})
    return JSONResponse(openapi(base(request)),
                        media_type="application/vnd.oai.openapi+json;version=3.0")


@router.get("/collections")
def collections(request: Request, session: DB, _: OpenData) -> JSONResponse:
    check_params(request, {"f"})
    b = base(request)
    return reply(request, {
        "links": [link(b + "/collections", "self")],
        "collections": [collection_json(session, b, cid) for cid in COLLECTIONS]})


@router.get("/collections/{cid}")
def collection(cid: CollectionId, request: Request, session: DB,
               _: OpenData) -> JSONResponse:
    check_params(request, {"f"})
    known(cid)
    return reply(request, collection_json(session, base(request), cid))


def known(cid: str) -> None:
    if cid not in COLLECTIONS:
        raise problem(404, f"no collection {cid}: there are {', '.join(COLLECTIONS)}")


def collection_json(session: DB, b: str, cid: str) -> dict[str, Any]:
    title, description = COLLECTIONS[cid]
    x1, y1, x2, y2, newest = session.execute(
        select(func.min(Station.longitude), func.min(Station.latitude),
               func.max(Station.longitude), func.max(Station.latitude),
               select(func.max(StationLatest.t)).scalar_subquery())).one()
    extent: dict[str, Any] = {"spatial": {"bbox": [[x1, y1, x2, y2]] if x1 is not None
                                          else [[-180, -90, 180, 90]], "crs": CRS84}}
    if newest is not None:  # open start: the first reading is not worth a full scan
        extent["temporal"] = {"interval": [[None, queries.iso(newest)]],
                              "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}
    here = f"{b}/collections/{cid}"
    return {"id": cid, "title": title, "description": description, "itemType": "feature",
            "crs": [CRS84], "extent": extent,
            "links": [link(here, "self"),
                      link(here + "/items", "items", GEOJSON, f"{title} (GeoJSON)")]}


@router.get("/collections/{cid}/items", responses=FEATURES)
def items(cid: CollectionId, request: Request, session: DB, _: OpenData) -> JSONResponse:
    known(cid)
    q = request.query_params
    check_params(request, ITEM_PARAMS | EXTRA_PARAMS.get(cid, set()))
    crs = q.get("bbox-crs")
    if crs is not None and crs != CRS84:
        raise problem(400, f"bbox-crs {crs!r}: only {CRS84}")
    media_type(request, items=True)  # a bad f= or Accept fails before any query
    bbox = parse_bbox(q.get("bbox"))
    span = parse_datetime(q.get("datetime"))
    limit = parse_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = parse_int(request, "offset", 0, 0, 10**9)
    if cid == "stations":
        where = spatial(bbox) + temporal(StationLatest.t, span)
        st = request.app.state.settings
        t = clock.now()
        page = [station_feature(queries.state(r, t, st.late_after_intervals,
                                              st.offline_after_intervals, session))
                for r in session.execute(queries.latest_query(*where)
                                         .limit(limit).offset(offset))]
        matched: int | None = session.scalar(count(
            select(Station.id).outerjoin(StationLatest, StationLatest.station_id ==
                                         Station.id).where(*where)))
    else:
        where = spatial(bbox) + temporal(Reading.t, span)
        if "station" in q:
            where.append(Station.code == q["station"])
        rows = session.execute(features.observations_query().where(*where)
                               .order_by(Reading.id).limit(limit + 1).offset(offset)).all()
        page = [features.observation_feature(r) for r in rows[:limit]]
        # numberMatched is optional: counting millions of readings per page is not worth it
        matched = None if len(rows) > limit else offset + len(page)
    return reply(request, collection_page(request, cid, page, matched, limit, offset,
                                          more=len(page) == limit and (
                                              matched is None or offset + limit < matched)),
                 items=True)


def station_feature(st: dict[str, Any]) -> dict[str, Any]:
    """features.station_feature with the station's observation mode (profile.py): standard,
    or under the MLIT profile watch or observation."""
    feature = features.station_feature(st)
    feature["properties"]["observation_mode"] = st["observation_mode"]
    return feature


def count(query: AnySelect) -> AnySelect:
    return select(func.count()).select_from(query.subquery())


def collection_page(request: Request, cid: str, page: list[dict[str, Any]],
                    matched: int | None, limit: int, offset: int,
                    more: bool) -> dict[str, Any]:
    here = f"{base(request)}/collections/{cid}/items"
    params = {k: v for k, v in request.query_params.items() if k not in ("offset", "f")}
    kind = media_type(request, items=True)
    f = "geojson" if kind == GEOJSON else "json"

    def at(o: int, fmt: str = f) -> str:
        return here + "?" + urlencode({**params, "limit": limit, "offset": o, "f": fmt})

    links = [link(at(offset), "self", kind),
             link(at(offset, "json" if f == "geojson" else "geojson"), "alternate",
                  "application/json" if f == "geojson" else GEOJSON),
             link(f"{base(request)}/collections/{cid}", "collection")]
    if more:
        links.append(link(at(offset + limit), "next", kind, "next page"))
    if offset > 0:
        links.append(link(at(max(0, offset - limit)), "prev", kind, "previous page"))
    out: dict[str, Any] = {"type": "FeatureCollection", "features": page,
                           "timeStamp": queries.iso(clock.now()), "numberReturned": len(page),
                           "links": links}
    if matched is not None:
        out["numberMatched"] = matched
    return out


@router.get("/collections/{cid}/items/{fid}", responses=FEATURES)
def item(cid: CollectionId, fid: FeatureId, request: Request, session: DB,
         _: OpenData) -> JSONResponse:
    known(cid)
    check_params(request, {"f"})
    media_type(request, items=True)
    if cid == "stations":
        rows = latest_of(session, request, Station.code == fid)
        feature = station_feature(rows[0]) if rows else None
    else:
        row = session.execute(features.observations_query().where(
            Reading.id == int(fid))).first() if reading_id(fid) else None
        feature = features.observation_feature(row) if row else None
    if feature is None:
        raise problem(404, f"no feature {fid} in {cid}")
    here = f"{base(request)}/collections/{cid}"
    feature["links"] = [link(f"{here}/items/{fid}", "self", GEOJSON),
                        link(here, "collection")]
    return reply(request, feature, items=True)


def reading_id(fid: str) -> bool:
    """Whether a feature id can be a reading's (readings.id is a 64-bit integer)."""
    return bool(re.fullmatch(r"[0-9]{1,19}", fid)) and int(fid) <= INT64_MAX


# --- the API definition ------------------------------------------------------------------

def openapi(b: str) -> dict[str, Any]:
    """OpenAPI 3.0 of this part of the server (FastAPI's own /openapi.json is 3.1 and
    describes everything else)."""
    def param(name: str, schema: dict[str, Any], text: str, style: str = "form",
              explode: bool = False) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "schema": schema,
                "style": style, "explode": explode, "description": text}

    common = [
        param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                        "default": DEFAULT_LIMIT}, "features per page"),
        param("offset", {"type": "integer", "minimum": 0, "default": 0},
              "features to skip (the next link carries it)"),
        param("bbox", {"type": "array", "minItems": 4, "maxItems": 6,
                       "items": {"type": "number"}},
              "minLon,minLat,maxLon,maxLat in CRS84"),
        param("datetime", {"type": "string"}, "RFC 3339 instant or interval (a/b, ../b, a/..)"),
        param("f", {"type": "string", "enum": ["geojson", "json"]}, "format"),
    ]

    def get(summary: str, params: list[dict[str, Any]] | None = None,
            media: str = "application/json") -> dict[str, Any]:
        return {"get": {"summary": summary, "parameters": params or [],
                        "responses": {"200": {"description": "OK",
                                              "content": {media: {}}},
                                      "400": {"description": "bad query parameter"},
                                      "404": {"description": "not found"}}}}

    paths = {"/": get("landing page"), "/conformance": get("conformance classes"),
             "/api": get("this document"), "/collections": get("the collections")}
    for cid, (title, _) in COLLECTIONS.items():
        extra = [param("station", {"type": "string"}, "one station's code")] \
            if cid == "observations" else []
        paths[f"/collections/{cid}"] = get(f"{title}: metadata")
        paths[f"/collections/{cid}/items"] = get(title, common + extra, GEOJSON)
        paths[f"/collections/{cid}/items/{{featureId}}"] = get(
            f"one of {title}", [{"name": "featureId", "in": "path", "required": True,
                                 "schema": {"type": "string"}}], GEOJSON)
    return {"openapi": "3.0.3",
            "info": {"title": "Mizumori OGC API - Features", "version": "1.0"},
            "servers": [{"url": b}], "paths": paths}
