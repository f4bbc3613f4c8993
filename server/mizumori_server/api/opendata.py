"""Open data beside OGC API – Features: all stations as plain GeoJSON, readings as CSV, and
the CAP feed of flood alerts. Anonymous when MIZUMORI_OPEN_DATA is on (docs/gis.md)."""

from typing import Annotated

from fastapi import HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import func, select

from mizumori_server import cap, clock, features
from mizumori_server.api.stations import latest_of, time_range
from mizumori_server.deps import DB, OpenData
from mizumori_server.headers import attachment
from mizumori_server.inputs import Id, StationQuery, UnixTime, bounded_router
from mizumori_server.models import Alert, AlertEvent, Reading, Station

router = bounded_router("/open", "open data")
CAP_MEDIA = "application/cap+xml"


def _body(media: str, what: str) -> dict[int | str, dict[str, object]]:
    return {200: {"content": {media: {}}, "description": what}}


@router.get("/stations.geojson", response_class=Response,
            responses=_body("application/geo+json", "A GeoJSON FeatureCollection"))
def stations_geojson(request: Request, session: DB, _: OpenData) -> JSONResponse:
    """Every station with its latest state, as one RFC 7946 FeatureCollection."""
    return JSONResponse({"type": "FeatureCollection",
                         "features": [features.station_feature(r)
                                      for r in latest_of(session, request)]},
                        media_type="application/geo+json")


@router.get("/readings.csv", response_class=features.CSVResponse)
def readings_csv(request: Request, _: OpenData,
                 station: StationQuery = None,
                 start: UnixTime = None,
                 end: Annotated[UnixTime, Query(description="Unix s, exclusive")] = None,
                 ) -> StreamingResponse:
    """Readings of every station (or one) in [start, end), default the last 24 h, as CSV
    with UTC ISO 8601 times, streamed."""
    lo, hi = time_range(start, end, 86400)
    query = features.observations_query().where(Reading.t >= lo, Reading.t < hi)
    if station is not None:
        query = query.where(Station.code == station)
    return StreamingResponse(
        features.csv_chunks(request.app.state.sessions,
                            query.order_by(Station.code, Reading.t, Reading.seq)),
        media_type="text/csv", headers={
            "Content-Disposition": attachment(f"{station or 'readings'}.csv")})


def public_alerts(session: DB) -> list[tuple[Alert, Station, int]]:
    """The active public alerts, newest change first, with their latest version."""
    version = (select(func.max(AlertEvent.id)).where(
        AlertEvent.alert_id == Alert.id, AlertEvent.kind.in_(cap.VERSION_EVENTS))
        .scalar_subquery())
    return [(a, s, v) for a, s, v in session.execute(
        select(Alert, Station, version).join(Station, Station.id == Alert.station_id)
        .where(Alert.state != "closed", Alert.type.in_(cap.PUBLIC_TYPES))
        .order_by(Alert.updated_at.desc(), Alert.id.desc()))]


@router.get("/cap.atom", response_class=Response,
            responses=_body("application/atom+xml", "An Atom feed"))
def cap_feed(request: Request, session: DB, _: OpenData) -> Response:
    """An Atom feed of the active flood alerts, each entry linking to its CAP 1.2 message."""
    return Response(cap.feed(public_alerts(session), str(request.url),
                             lambda i: str(request.url_for("cap_message", alert_id=i)),
                             clock.now()),
                    media_type="application/atom+xml")


@router.get("/cap/{alert_id}.xml", response_class=Response,
            responses=_body(CAP_MEDIA, "A CAP 1.2 message"))
def cap_message(alert_id: Id, request: Request, session: DB, _: OpenData) -> Response:
    """One flood alert as a CAP 1.2 message (a closed one as a Cancel)."""
    row = session.execute(select(Alert, Station).join(Station, Station.id == Alert.station_id)
                          .where(Alert.id == alert_id, Alert.type.in_(cap.PUBLIC_TYPES))
                          ).first()
    if row is None:
        raise HTTPException(404, f"no public alert {alert_id}")
    alert, station = row
    versions = [(e.id, e.at) for e in session.execute(
        select(AlertEvent.id, AlertEvent.at).where(AlertEvent.alert_id == alert.id,
                                                   AlertEvent.kind.in_(cap.VERSION_EVENTS))
        .order_by(AlertEvent.id))]
    url = str(request.base_url) + f"ogc/collections/stations/items/{station.code}"
    return Response(cap.message(alert, station, versions,
                                request.app.state.settings.cap_sender, url),
                    media_type=CAP_MEDIA)
