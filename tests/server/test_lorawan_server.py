"""LoRaWAN network-server webhooks (ChirpStack v4, The Things Stack v3), on SQLite and
PostgreSQL: real sample bodies, per-integration secrets, deduplication, link metadata,
refusals that store nothing, and config downlinks queued through a fake of each network
server's API."""

import base64
import copy
import datetime as dt
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_user
from device import batch, codec
from fastapi.testclient import TestClient
from mizumori_server import clock, lorawan
from mizumori_server.app import create_app
from mizumori_server.settings import Settings
from mizumori_tools.netserver import NetworkServer
from receiver import receiver

FIXTURES = Path(__file__).parent / "fixtures"
CHIRPSTACK = json.loads((FIXTURES / "chirpstack_up.json").read_text())
TTS = json.loads((FIXTURES / "tts_uplink.json").read_text())
SENT = int(dt.datetime(2026, 7, 25, 17, 0, 2, tzinfo=dt.UTC).timestamp())  # in the bodies
EUI = "ac1f09fffe0a1b2c"


@pytest.fixture(autouse=True)
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "now", lambda: SENT + 3)  # the webhook arrives 3 s later


@pytest.fixture
def lora_device(app_client: TestClient, admin: dict[str, str],
                station: dict[str, object]) -> dict[str, Any]:
    r = app_client.post("/api/devices/provision", headers=admin, json={
        "hardware_id": "esp32-lora-03", "station": "taku-01", "transport": "lorawan",
        "dev_eui": EUI.upper()})
    assert r.status_code in (200, 201), r.text
    body: dict[str, Any] = r.json()
    return body


def integration(client: TestClient, admin: dict[str, str], kind: str,
                **extra: str) -> dict[str, Any]:
    r = client.post("/api/lorawan/integrations", headers=admin,
                    json={"name": f"city-{kind}", "kind": kind, **extra})
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def chirpstack(payload: bytes | None = None, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(CHIRPSTACK)
    if payload is not None:
        body["data"] = base64.b64encode(payload).decode()
    body.update(changes)
    return body


def tts(payload: bytes | None = None) -> dict[str, Any]:
    body = copy.deepcopy(TTS)
    if payload is not None:
        body["uplink_message"]["frm_payload"] = base64.b64encode(payload).decode()
    return body


def post(client: TestClient, integ: dict[str, Any], body: Any, secret: str | None = None,
         **params: str) -> Any:
    return client.post(f"/api/lorawan/{integ['name']}", params=params or None,
                       content=body if isinstance(body, bytes) else json.dumps(body),
                       headers={"X-Mizumori-Secret": secret or integ["secret"],
                                "Content-Type": "application/json"})


def readings(client: TestClient, admin: dict[str, str]) -> list[dict[str, Any]]:
    r = client.get("/api/stations/taku-01/readings", headers=admin,
                   params={"start": SENT - 86400, "end": SENT + 60, "max_points": 1000})
    points: list[dict[str, Any]] = r.json()["points"]
    return points


def stored_links(client: TestClient) -> list[tuple[Any, ...]]:
    from sqlalchemy import text

    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        return [tuple(r) for r in s.execute(text(
            "SELECT seq, t, link_rssi, link_snr, link_gateways, link_dr FROM readings "
            "ORDER BY seq"))]


def test_chirpstack_uplink_is_stored_once_with_its_link(app_client: TestClient,
                                                         admin: dict[str, str],
                                                         lora_device: dict[str, Any]) -> None:
    integ = integration(app_client, admin, "chirpstack")
    assert integ["endpoint"].endswith("/api/lorawan/city-chirpstack")
    r = post(app_client, integ, CHIRPSTACK, event="up")
    assert r.status_code == 200, r.text
    assert r.json()["acked"] == [70000]
    # measured 3 h before the network server received it (not before our own clock)
    assert stored_links(app_client) == [(70000, SENT - 10800, -96, 4.25, 2, 2)]
    # the same frame again (a retried webhook, a second network path): stored once
    assert post(app_client, integ, CHIRPSTACK, event="up").status_code == 200
    assert len(stored_links(app_client)) == 1
    [point] = readings(app_client, admin)
    assert point["level_mm"] == 4521
    # other events are taken and not stored
    for event in ("join", "status", "ack", "txack", "log"):
        assert post(app_client, integ, {"deviceInfo": {"devEui": EUI}},
                    event=event).status_code == 204
    assert post(app_client, integ, chirpstack(fPort=0, data="")).status_code == 204


def test_tts_uplink_is_stored_with_its_device_id(app_client: TestClient,
                                                  admin: dict[str, str],
                                                  lora_device: dict[str, Any]) -> None:
    integ = integration(app_client, admin, "tts")
    r = app_client.post(f"/api/lorawan/{integ['name']}/uplink", content=json.dumps(TTS),
                        headers={"X-Mizumori-Secret": integ["secret"]})
    assert r.status_code == 200, r.text
    assert stored_links(app_client) == [(70000, SENT - 10800, -101, 1.5, 1, 2)]
    join = {"end_device_ids": TTS["end_device_ids"], "join_accept": {"session_key_id": "x"}}
    assert post(app_client, integ, join).status_code == 204
    r = app_client.get(f"/api/devices/{lora_device['device_id']}", headers=admin)
    assert r.status_code == 200


@pytest.mark.parametrize(("case", "status"), [
    ("wrong secret", 401), ("no secret", 401), ("unknown integration", 404),
    ("malformed JSON", 400), ("not an object", 400), ("no deviceInfo", 400),
    ("bad base64", 400), ("unknown DevEUI", 404), ("payload fails decoding", 422),
])
def test_bad_input_is_refused_and_stores_nothing(app_client: TestClient,
                                                 admin: dict[str, str],
                                                 lora_device: dict[str, Any], case: str,
                                                 status: int) -> None:
    integ = integration(app_client, admin, "chirpstack")
    other = {**integ, "name": "nobody"}
    r = {
        "wrong secret": lambda: post(app_client, integ, CHIRPSTACK, secret="guess" * 8),
        "no secret": lambda: app_client.post(f"/api/lorawan/{integ['name']}",
                                             json=CHIRPSTACK),
        "unknown integration": lambda: post(app_client, other, CHIRPSTACK),
        "malformed JSON": lambda: post(app_client, integ, b'{"deviceInfo": '),
        "not an object": lambda: post(app_client, integ, [CHIRPSTACK]),
        "no deviceInfo": lambda: post(app_client, integ, TTS),
        "bad base64": lambda: post(app_client, integ, chirpstack(data="%%%")),
        "unknown DevEUI": lambda: post(app_client, integ, chirpstack(
            deviceInfo={**CHIRPSTACK["deviceInfo"], "devEui": "0011223344556677"})),
        "payload fails decoding": lambda: post(app_client, integ, chirpstack(b"\x21" * 11)),
    }[case]()
    assert r.status_code == status, r.text
    assert r.json()["detail"]
    assert stored_links(app_client) == []
    metrics = app_client.get("/metrics").text
    assert f'mizumori_ingest_rejects_total{{reason="lorawan_{r.json()["code"]}"}}' in metrics


def test_integrations_are_for_admins(app_client: TestClient, admin: dict[str, str]) -> None:
    operator = make_user(app_client, admin, "ops", "operator")
    r = app_client.post("/api/lorawan/integrations", headers=operator,
                        json={"name": "x", "kind": "chirpstack"})
    assert r.status_code == 403
    integ = integration(app_client, admin, "chirpstack")
    listed = app_client.get("/api/lorawan/integrations", headers=admin).json()
    assert [i["name"] for i in listed] == ["city-chirpstack"]
    assert "secret" not in listed[0] and "secret_hash" not in listed[0]
    assert app_client.post("/api/lorawan/integrations", headers=admin, json={
        "name": "city-chirpstack", "kind": "chirpstack"}).status_code == 409
    assert app_client.post("/api/lorawan/integrations", headers=admin, json={
        "name": "tts2", "kind": "tts", "api_url": "http://ns.example", "api_token": "t" * 20,
    }).status_code == 422  # downlinks on TTS need the application and webhook ids
    assert app_client.delete(f"/api/lorawan/integrations/{integ['name']}",
                             headers=admin).status_code == 204
    assert post(app_client, integ, CHIRPSTACK).status_code == 404


def status_record(config_version: int) -> bytes:
    return batch.encode_status(0, 0, config_version, 4, -100)


def decode_frames(frames: list[bytes]) -> tuple[int, dict[int, int], bool]:
    """(version, items, complete) of queued config downlinks."""
    items: dict[int, int] = {}
    version, complete = -1, False
    for f in frames:
        version = int.from_bytes(f[1:3], "big")
        for i in range(3, len(f), 4):
            value = int.from_bytes(f[i + 1:i + 4], "big", signed=True)
            items[f[i]] = value
        complete = not f[0] & lorawan.MORE
        assert len(f) <= lorawan.MAX_DOWNLINK
    return version, items, complete


@pytest.mark.parametrize("kind", ["chirpstack", "tts"])
def test_config_changes_go_out_as_downlinks_once(app_client: TestClient,
                                                 admin: dict[str, str],
                                                 lora_device: dict[str, Any],
                                                 kind: str) -> None:
    with receiver() as ns:
        api = ns.url.removesuffix("/hook")
        integ = integration(app_client, admin, kind, api_url=api, api_token="ns-api-token-1",
                            **({"application_id": "taku-water-levels",
                                "webhook_id": "mizumori"} if kind == "tts" else {}))
        seq = iter(range(1, 100))

        def uplink(*extra: bytes) -> None:
            payload = codec.encode_level(next(seq), 0, 1200, 3700, 0) + b"".join(extra)
            body = chirpstack(payload) if kind == "chirpstack" else tts(payload)
            assert post(app_client, integ, body).status_code == 200

        uplink(status_record(0))  # the device runs config 0; the server wants 1
        first = ns.wait_for(1, 5)
        r = app_client.patch("/api/stations/taku-01", headers=admin,
                             json={"caution_mm": 1600, "interval_flood_s": 60})
        assert r.status_code == 200, r.text
        uplink()
        uplink()  # queued once per version, not at every uplink
        requests = list(ns.requests)
        frames = frames_of(kind, requests)
        version, items, complete = decode_frames(frames)
        assert complete and version >= 1
        assert items[3] == 1600 and items[9] == 60 and items[2] == 1000  # caution, flood, standby
        assert items[1] == 5000  # mount height
        assert all(r["headers"]["authorization"] == "Bearer ns-api-token-1" for r in requests)
        path = (f"/api/devices/{EUI}/queue" if kind == "chirpstack" else
                "/api/v3/as/applications/taku-water-levels/webhooks/mizumori/devices/"
                "taku-03/down/push")
        assert {r["path"] for r in requests} == {path}
        n = len(requests)
        assert first  # the first uplink already queued config 1
        uplink(status_record(version))  # applied: nothing more to send
        uplink()
        assert len(ns.requests) == n

        # the network server's API fails: the version is tried again at the next uplink
        ns.status = 500
        app_client.patch("/api/stations/taku-01", headers=admin, json={"danger_mm": 2600})
        uplink()
        ns.status = 200
        uplink()
        version2, items2, _ = decode_frames(frames_of(kind, ns.requests[n:]))
        assert version2 == version + 1 and items2[5] == 2600



class Station:
    """A LoRaWAN station as the rig's network server hears it (ChirpStack's queue API, one
    downlink in each uplink's receive window, FPending while more wait). Each uplink: a level
    reading and the status record of the config it runs, built before the uplink's downlinks
    come; then the downlinks it fetches (FPending), unless `deaf` (its downlinks never
    arrive, though the network server sends them)."""

    def __init__(self, ns: NetworkServer, monkeypatch: pytest.MonkeyPatch):
        self.ns, self.monkeypatch = ns, monkeypatch
        self.version = self.seq = self.fcnt = 0
        self.deaf = False
        self.config_frames = 0  # config downlinks it received

    def uplink(self, at: int) -> None:
        """An uplink at SENT + at s, handled by the fleet server before it returns."""
        self.monkeypatch.setattr(clock, "now", lambda: SENT + at)
        self.seq += 1
        got = self.send(lorawan.READINGS_PORT, codec.encode_level(self.seq, 0, 1200, 3700, 0)
                        + status_record(self.version))
        for _ in range(8):  # the firmware's MAX_FETCHES
            for port, data in [] if self.deaf else got:
                if port == lorawan.CONFIG_PORT:
                    self.config_frames += 1
                    if not data[0] & lorawan.MORE:
                        self.version = int.from_bytes(data[1:3], "big")
            if self.deaf or not self.ns.pending(EUI):
                break
            got = self.send(0, b"")  # RUI3 fetches the next one by itself
        self.ns.settle()

    def send(self, port: int, payload: bytes) -> list[tuple[int, bytes]]:
        self.fcnt += 1
        return self.ns.uplink(EUI, port, payload, False, 3, self.fcnt)[1]

    def queued(self) -> list[tuple[int, bytes]]:
        return list(self.ns.queues.get(EUI, []))


@pytest.fixture
def rig(app_client: TestClient, admin: dict[str, str], lora_device: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Station]:
    """A station on the rig's network server, whose uplinks (each one twice: two gateways)
    go to this app through a ChirpStack integration with downlinks."""
    ns = NetworkServer("", "", "ns-api-token-1", now=lambda: clock.now())
    integ = integration(app_client, admin, "chirpstack", api_url=ns.api_url,
                        api_token="ns-api-token-1")
    own, ns.http = ns.http, app_client
    ns.webhook_url, ns.secret = integ["endpoint"], integ["secret"]
    ns.register(EUI)
    assert ns.join(EUI, "", "")
    try:
        yield Station(ns, monkeypatch)
        assert ns.refused == []
    finally:
        ns.http = own
        ns.close()


def downlink_state(client: TestClient) -> tuple[Any, ...]:
    from sqlalchemy import text

    with client.app.state.sessions() as s:  # type: ignore[attr-defined]
        return tuple(s.execute(text("SELECT downlink_version, downlink_at, downlink_tries "
                                    "FROM devices WHERE dev_eui = :e"), {"e": EUI}).one())


def test_a_station_uplinking_every_6_hours_gets_its_config_once(
        app_client: TestClient, rig: Station) -> None:
    """The MLIT watch mode: a daily digest and a probe every 6 hours. The uplink that
    fetches the config reports the old version (built before); the next reports the new
    one. Nothing is queued again (it was: every fetch queued a second copy)."""
    rig.uplink(0)  # the device runs config 0; the server wants 1: queued
    frames = len(rig.queued())
    assert frames >= 2 and rig.config_frames == 0
    for hours in range(6, 4 * 24, 6):
        rig.uplink(hours * 3600)
    assert rig.version == downlink_state(app_client)[0] >= 1
    assert rig.config_frames == frames and rig.queued() == []
    assert downlink_state(app_client)[1:] == (SENT, 1)  # queued once, at the first uplink


def test_a_config_whose_downlinks_never_arrive_goes_again_bounded_and_backing_off(
        app_client: TestClient, rig: Station) -> None:
    """Hourly uplinks heard, their downlinks lost: the config goes again after two uplinks
    and 1, 2, 4, 8, 16 hours, then daily, each time in place of the copy still queued (it
    was added hourly: the queue grew by a config an hour against one frame sent an hour)."""
    rig.deaf = True
    rig.uplink(0)
    frames = len(rig.queued())
    times, longest = [downlink_state(app_client)[1]], 0  # when it was queued
    for hours in range(1, 5 * 24):
        rig.uplink(hours * 3600)
        longest = max(longest, len(rig.queued()))
        if (at := downlink_state(app_client)[1]) != times[-1]:
            times.append(at)
    gaps = [(b - a) // 3600 for a, b in zip(times, times[1:], strict=False)]
    assert gaps == [2, 2, 4, 8, 16, 24, 24, 24]  # the first: two uplinks (1 h each)
    assert longest == frames  # replaced: never more than one config waiting
    assert downlink_state(app_client)[2] == 9
    assert rig.queued() == []  # the last try went out in the hours after it
    rig.deaf = False  # the downlinks come through again: the next try (a day after the
    for hours in range(5 * 24, 8 * 24):  # last) is applied and reported; no more tries
        rig.uplink(hours * 3600)
    version, at, tries = downlink_state(app_client)
    assert rig.version == version and tries == 10 and at == times[-1] + 24 * 3600


def test_a_config_goes_again_on_the_things_stack_by_replacing_its_queue(
        app_client: TestClient, admin: dict[str, str], lora_device: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The Things Stack: a second try is a down/replace (ChirpStack's flush: the rig test
    above); a try that fails goes again at the next uplink."""
    with receiver() as ns:
        integ = integration(app_client, admin, "tts", api_url=ns.url.removesuffix("/hook"),
                            api_token="ns-api-token-1", application_id="taku-water-levels",
                            webhook_id="mizumori")
        seq = iter(range(1, 100))

        def uplink(at: int) -> list[str]:
            monkeypatch.setattr(clock, "now", lambda: SENT + at)
            n = len(ns.requests)
            f_cnt = next(seq)
            body = tts(codec.encode_level(f_cnt, 0, 1200, 3700, 0) + status_record(0))
            body["uplink_message"]["f_cnt"] = f_cnt
            assert post(app_client, integ, body).status_code == 200
            return [r["path"].rsplit("/", 1)[1] for r in ns.requests[n:]]

        assert uplink(0) == ["push"]
        assert uplink(3600) == []  # one uplink since: it may have fetched it
        ns.status = 500
        assert uplink(3600 + 1) == [] and downlink_state(app_client)[2] == 1  # failed
        ns.status = 200
        assert uplink(3600 + 2) == ["replace"] and downlink_state(app_client)[2] == 2
        assert frames_of("tts", ns.requests[1:]) == frames_of("tts", ns.requests[:1])
        assert uplink(3 * 3600) == []  # the next try waits 2 hours


def frames_of(kind: str, requests: list[dict[str, Any]]) -> list[bytes]:
    out = []
    for r in requests:
        body = json.loads(r["body"])
        if kind == "chirpstack":
            assert body["queueItem"]["fPort"] == lorawan.CONFIG_PORT
            out.append(base64.b64decode(body["queueItem"]["data"]))
        else:
            for d in body["downlinks"]:
                assert d["f_port"] == lorawan.CONFIG_PORT
                out.append(base64.b64decode(d["frm_payload"]))
    return out


def test_delivery_reports_answer_requests_and_gaps(app_client: TestClient,
                                                  admin: dict[str, str],
                                                  lora_device: dict[str, Any]) -> None:
    with receiver() as ns:
        integ = integration(app_client, admin, "chirpstack",
                            api_url=ns.url.removesuffix("/hook"), api_token="ns-api-token-1")

        def uplink(seqs: list[int], oldest: int | None = None, newest: int = 0) -> Any:
            payload = b"".join(codec.encode_level(q, 0, 1200, 3700, 0) for q in seqs)
            if oldest is not None:
                payload = oldest.to_bytes(3, "big") + newest.to_bytes(3, "big") + payload
            body = chirpstack(payload, fPort=lorawan.REPORT_PORT if oldest else 1)
            return post(app_client, integ, body)

        def reports() -> list[bytes]:
            out = []
            for r in ns.requests:
                item = json.loads(r["body"])["queueItem"]
                if item["fPort"] == lorawan.DELIVERY_PORT:
                    out.append(base64.b64decode(item["data"]))
            return out

        assert uplink([1]).status_code == 200 and uplink([2]).status_code == 200
        assert reports() == []  # no gap, nobody asked
        assert uplink([4]).status_code == 200  # 3 was lost in the air
        assert uplink([4]).status_code == 200  # a second gateway's copy: asked once
        assert ns.wait_for(1, 5) and reports() == [b"\x02\x00\x00\x03"]  # RESEND from 3
        r = uplink([5], oldest=1, newest=5)  # "I hold 1 and on, sent up to 5: have you?"
        assert r.status_code == 200 and r.json()["acked"] == [5]
        assert ns.wait_for(2, 5) and reports()[-1] == b"\x03\x00\x00\x03"  # MISSING 3
        assert uplink([3]).status_code == 200  # sent again
        assert uplink([], oldest=3, newest=5).status_code == 200  # DR2: no record
        assert ns.wait_for(3, 5) and reports()[-1] == b"\x01\x00\x00\x06"  # HAVE: below 6
        assert uplink([7]).status_code == 200  # 6 was lost: RESEND 6 ...
        assert uplink([8]).status_code == 200
        assert ns.wait_for(4, 5) and len(reports()) == 4
        assert uplink([7, 8]).status_code == 200  # ... and its resend too: asked again
        assert ns.wait_for(5, 5) and reports()[-2:] == [b"\x02\x00\x00\x06"] * 2
        assert uplink([6, 7]).status_code == 200 and uplink([9]).status_code == 200
        assert len(reports()) == 5  # no hole left
        assert [r[0] for r in stored_links(app_client)] == list(range(1, 10))
        for bad, why in ((b"", "shorter"), (b"\x00\x00\x01\x00\x00", "shorter"),
                         (b"\x00\x00\x00\x00\x00\x05", "does not fit"),
                         (b"\x00\x00\x09\x00\x00\x05", "does not fit")):
            r = post(app_client, integ, chirpstack(bad, fPort=lorawan.REPORT_PORT))
            assert r.status_code == 400 and why in r.json()["detail"], r.text
        assert len(reports()) == 5 and len(stored_links(app_client)) == 9  # nothing changed



def test_copies_of_one_uplink_in_two_workers_ask_once(app_client: TestClient,
                                                       settings: Settings,
                                                       admin: dict[str, str],
                                                       lora_device: dict[str, Any]) -> None:
    """Two gateways' copies of a frame reach two workers (two apps on one database): the
    station gets one RESEND, not two (each would count towards its give-up rule)."""
    with receiver() as ns:
        integ = integration(app_client, admin, "chirpstack",
                            api_url=ns.url.removesuffix("/hook"), api_token="ns-api-token-1")
        with TestClient(create_app(settings)) as worker2:
            def uplink(client: TestClient, seq: int) -> None:
                body = chirpstack(codec.encode_level(seq, 0, 1200, 3700, 0), fPort=1)
                assert post(client, integ, body).status_code == 200

            uplink(app_client, 1)
            uplink(app_client, 3)  # 2 was lost in the air
            uplink(worker2, 3)  # the second gateway's copy, in the other worker
            assert ns.wait_for(1, 5)
            uplink(worker2, 4)
            reports = [json.loads(r["body"])["queueItem"] for r in ns.requests]
            assert [base64.b64decode(i["data"]) for i in reports
                    if i["fPort"] == lorawan.DELIVERY_PORT] == [b"\x02\x00\x00\x02"]

def test_copies_posted_at_the_same_time_to_two_workers_ask_once(
        app_client: TestClient, settings: Settings, admin: dict[str, str],
        lora_device: dict[str, Any]) -> None:
    """The two gateways' copies of a frame reach two workers (two apps on one database) at
    the same moment, in two threads: one report is queued per frame, whichever claims it."""
    with receiver() as ns:
        integ = integration(app_client, admin, "chirpstack",
                            api_url=ns.url.removesuffix("/hook"), api_token="ns-api-token-1")
        with TestClient(create_app(settings)) as worker2:
            body = chirpstack(codec.encode_level(1, 0, 1200, 3700, 0), fPort=1, fCnt=1)
            assert post(app_client, integ, body).status_code == 200
            for n in range(1, 6):  # each frame 2 above the last: a hole, RESEND
                body = chirpstack(codec.encode_level(1 + 2 * n, 0, 1200, 3700, 0), fPort=1,
                                  fCnt=1 + n)
                start, answers = threading.Barrier(2), list[int]()

                def copy(client: TestClient, body: dict[str, Any] = body,
                         start: threading.Barrier = start, answers: list[int] = answers
                         ) -> None:
                    start.wait()
                    answers.append(post(client, integ, body).status_code)

                threads = [threading.Thread(target=copy, args=(c,))
                           for c in (app_client, worker2)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(30)
                assert answers == [200, 200]
            reports = [json.loads(r["body"])["queueItem"] for r in ns.requests]
            assert [base64.b64decode(i["data"]) for i in reports
                    if i["fPort"] == lorawan.DELIVERY_PORT] == [
                lorawan.encode_delivery(lorawan.RESEND, 2 * n) for n in range(1, 6)]


def test_a_station_asking_again_byte_for_byte_is_answered_each_time(
        app_client: TestClient, admin: dict[str, str], lora_device: dict[str, Any]) -> None:
    """A report uplink at DR2 is often its 6-byte header alone: a station asking again
    after a lost answer sends the same bytes in its next frame. Each frame (frame counter)
    is answered, each once however many copies of it come (was: one answer for all)."""
    with receiver() as ns:
        integ = integration(app_client, admin, "chirpstack",
                            api_url=ns.url.removesuffix("/hook"), api_token="ns-api-token-1")
        body = chirpstack(codec.encode_level(1, 0, 1200, 3700, 0), fPort=1, fCnt=1)
        assert post(app_client, integ, body).status_code == 200
        ask = (1).to_bytes(3, "big") + (1).to_bytes(3, "big")  # "I hold 1 on, sent up to 1"
        for f_cnt in (2, 2, 3, 4, 4):
            body = chirpstack(ask, fPort=lorawan.REPORT_PORT, fCnt=f_cnt)
            assert post(app_client, integ, body).status_code == 200
        reports = [r["queueItem"] for r in ns.bodies()
                   if r["queueItem"]["fPort"] == lorawan.DELIVERY_PORT]
        assert [base64.b64decode(r["data"]) for r in reports] == [
            lorawan.encode_delivery(lorawan.HAVE, 2)] * 3


def test_frame_counters_are_read_when_the_event_has_them() -> None:
    assert lorawan.chirpstack_uplink(CHIRPSTACK).f_cnt == 12
    assert lorawan.tts_uplink(TTS).f_cnt == 12
    # both leave a zero out of their JSON (protobuf's default): no counter, no refusal
    assert lorawan.chirpstack_uplink({**CHIRPSTACK, "fCnt": None}).f_cnt is None
    assert lorawan.tts_uplink(tts_with(["uplink_message", "f_cnt"], None)).f_cnt is None


def test_data_rates_from_modulation() -> None:
    assert lorawan.as923_dr(10, 125000) == 2
    assert lorawan.as923_dr(7, 125000) == 5
    assert lorawan.as923_dr(7, 250000) == 6
    assert lorawan.as923_dr(13, 125000) is None


def tts_with(path: list[str], value: Any) -> dict[str, Any]:
    """The TTS sample uplink with one field (by its path) replaced."""
    body = tts()
    at = body
    for key in path[:-1]:
        at = at[key]
    at[path[-1]] = value
    return body


WRONG_TYPES = [
    ("chirpstack", chirpstack(fPort="abc")), ("chirpstack", chirpstack(fPort=[1])),
    ("chirpstack", chirpstack(fPort=1.5)), ("chirpstack", chirpstack(fPort=2**70)),
    ("chirpstack", chirpstack(dr=2**40)), ("chirpstack", chirpstack(dr="5")),
    ("chirpstack", chirpstack(fCnt="12")), ("chirpstack", chirpstack(fCnt=-1)),
    ("chirpstack", chirpstack(fCnt=2**32)),
    ("chirpstack", chirpstack(deviceInfo={"devEui": "0x" + EUI[2:]})),
    ("tts", tts_with(["uplink_message", "settings"], "x")),
    ("tts", tts_with(["uplink_message", "settings", "data_rate"], [])),
    ("tts", tts_with(["uplink_message", "settings", "data_rate", "lora"], 7)),
    ("tts", tts_with(["uplink_message", "f_port"], "1")),
    ("tts", tts_with(["uplink_message", "f_cnt"], 1.5)),
    ("tts", tts_with(["end_device_ids", "device_id"], "x" * 300)),
    ("tts", tts_with(["end_device_ids", "device_id"], {"id": 1})),
]


@pytest.mark.parametrize("kind,body", WRONG_TYPES)
def test_wrong_json_types_are_a_400(app_client: TestClient, admin: dict[str, str],
                                    lora_device: dict[str, Any], kind: str,
                                    body: dict[str, Any]) -> None:
    """Fields of the wrong type (a text port, settings that are no object, ...) were a
    500 (ValueError, AttributeError, an overflowing column): now 400 and nothing stored."""
    integ = integration(app_client, admin, kind)
    r = post(app_client, integ, body)
    assert r.status_code == 400 and r.json()["code"] == "malformed", r.text
    assert stored_links(app_client) == []


def test_implausible_link_values_are_left_out(app_client: TestClient, admin: dict[str, str],
                                              lora_device: dict[str, Any]) -> None:
    integ = integration(app_client, admin, "tts")
    body = tts_with(["uplink_message", "settings", "data_rate"], None)
    body["uplink_message"]["rx_metadata"][0].update(rssi=1e300, snr=-1e300)
    raw = json.dumps(body).encode()
    for constant in (b"NaN", b"Infinity"):  # not JSON, though Python's parser takes them
        r = post(app_client, integ, raw.replace(b'"rssi": ', b'"rssi": ' + constant + b", "
                                                  b'"x": '))
        assert r.status_code == 400 and r.json()["code"] == "malformed", r.text
    assert post(app_client, integ, raw).status_code == 200
    assert stored_links(app_client) == [(70000, SENT - 10800, None, None, 1, None)]


@pytest.mark.parametrize("depth", [33, 1000, 100000])
def test_deeply_nested_json_is_a_400(app_client: TestClient, admin: dict[str, str],
                                     lora_device: dict[str, Any], depth: int) -> None:
    integ = integration(app_client, admin, "chirpstack")
    body = b'{"deviceInfo": {"devEui": "' + EUI.encode() + b'"}, "x": ' + b"[" * depth + \
        b"]" * depth + b"}"
    r = post(app_client, integ, body[:60000] if depth > 1000 else body)
    assert r.status_code == 400 and "nested deeper" in r.json()["detail"], r.text
    assert stored_links(app_client) == []
