"""LoRaWAN through a network server (docs/lorawan.md): the uplink events of ChirpStack v4's
HTTP integration and The Things Stack v3's webhooks, read into one shape; the compact config
downlink; and the two network servers' APIs for queueing it.

The fleet server never talks to radios: the network server has decrypted and deduplicated
the frame (one event per frame, however many gateways heard it) before it calls us."""

import base64
import datetime as dt
import math
import re
import struct
from dataclasses import dataclass
from typing import Any

import httpx

from mizumori_server import devices

READINGS_PORT = 1  # uplinks: codec-v1 records (docs/protocol.md)
# Uplinks asking for a delivery report: the oldest reading the station still holds and the
# newest it sent (seq, u24 each), then records as on port 1. The answer goes down on
# DELIVERY_PORT. The station's side: firmware/station/lorawan.py.
REPORT_PORT = 2
CONFIG_PORT = 10  # downlinks: config changes (encode_config)
# Downlinks: a delivery report, kind u8 and seq u24 (docs/lorawan.md, "Delivery"):
HAVE = 1  # every reading asked about is stored (all below seq): drop them
RESEND = 2  # a gap: send again from seq on
MISSING = 3  # every reading below seq is stored, seq is not: drop those, send again from seq
DELIVERY_PORT = 11


class BadEvent(ValueError):
    """The body is not an event we understand (HTTP 400)."""


EUI = re.compile(r"[0-9A-Fa-f]{16}")
NS_DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # The Things Stack's device_id
MAX_FCNT = 0xFFFFFFFF  # FCnt up: 32 bits at the network server (16 of them on the air)


def _object(value: Any, what: str) -> dict[str, Any]:
    """A JSON object where the event has one, or {} where it has none; BadEvent for any
    other type (each field of an event is read through these, so a wrong type is a 400)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadEvent(f"{what}: expected an object")
    return value


def _int(value: Any, what: str, lo: int, hi: int) -> int | None:
    """An integer field lo..hi, or None where the event has none."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise BadEvent(f"{what}: expected an integer {lo}..{hi}")
    return value


def _number(value: Any, lo: float, hi: float) -> float | None:
    """A plausible measurement (RSSI, SNR), or None: an implausible one is left out."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and lo <= value <= hi else None


@dataclass
class Uplink:
    dev_eui: str  # 16 lower-case hex digits
    f_port: int
    payload: bytes
    received: int | None  # Unix s at the network server, if it said
    rssi: int | None  # best gateway's
    snr: float | None
    gateways: int
    dr: int | None
    ns_device_id: str | None  # The Things Stack's device_id (for downlinks)
    # The frame counter (FCnt up), if the event has it: the copies of one frame share it, a
    # frame sent again (a station asking again, byte for byte) has the next one.
    f_cnt: int | None = None

    def link(self) -> dict[str, Any]:
        return {"link_rssi": self.rssi, "link_snr": self.snr,
                "link_gateways": self.gateways, "link_dr": self.dr}


def _b64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise BadEvent("payload: expected base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise BadEvent("payload: not base64") from None


def _time(text: Any) -> int | None:
    """RFC 3339 with nanoseconds (both servers write them) to Unix seconds."""
    if not isinstance(text, str) or not text:
        return None
    head = text.replace("Z", "+00:00")
    if "." in head:  # Python takes at most microseconds: cut the fraction
        whole, rest = head.split(".", 1)
        zone = rest.lstrip("0123456789")
        head = whole + zone
    try:
        return int(dt.datetime.fromisoformat(head).timestamp())
    except (ValueError, OverflowError, OSError):
        raise BadEvent(f"time {text[:40]!r}: not RFC 3339") from None


def _eui(text: Any) -> str:
    if not isinstance(text, str) or not EUI.fullmatch(text):
        raise BadEvent("DevEUI: expected 16 hex digits")
    return text.lower()


def _best(rx: Any, rssi: str, snr: str) -> tuple[int | None, float | None, int]:
    if not isinstance(rx, list):
        return None, None, 0
    good = [g for g in rx if isinstance(g, dict)]
    rssis = [v for g in good if (v := _number(g.get(rssi), -200, 50)) is not None]
    snrs = [v for g in good if (v := _number(g.get(snr), -50, 50)) is not None]
    return (int(max(rssis)) if rssis else None, max(snrs) if snrs else None, len(good))


def as923_dr(spreading_factor: Any, bandwidth: Any) -> int | None:
    """AS923's data rate for a LoRa modulation: DR0 SF12/125 kHz ... DR5 SF7/125, DR6
    SF7/250."""
    if (not isinstance(spreading_factor, int) or isinstance(spreading_factor, bool)
            or not 7 <= spreading_factor <= 12):
        return None
    if bandwidth == 250000 and spreading_factor == 7:
        return 6
    return 12 - spreading_factor if bandwidth in (125000, None) else None


def chirpstack_uplink(body: dict[str, Any]) -> Uplink:
    """ChirpStack v4 HTTP integration, event=up (JSON marshaler)."""
    info = body.get("deviceInfo")
    if not isinstance(info, dict):
        raise BadEvent("deviceInfo missing: not a ChirpStack v4 up event")
    rssi, snr, gateways = _best(body.get("rxInfo"), "rssi", "snr")
    return Uplink(_eui(info.get("devEui")), _int(body.get("fPort"), "fPort", 0, 255) or 0,
                  _b64(body.get("data", "")), _time(body.get("time")), rssi, snr, gateways,
                  _int(body.get("dr"), "dr", 0, 15), None,
                  _int(body.get("fCnt"), "fCnt", 0, MAX_FCNT))


def tts_uplink(body: dict[str, Any]) -> Uplink:
    """The Things Stack v3 webhook, uplink_message."""
    ids, up = body.get("end_device_ids"), body.get("uplink_message")
    if not isinstance(ids, dict) or not isinstance(up, dict):
        raise BadEvent("end_device_ids or uplink_message missing")
    rssi, snr, gateways = _best(up.get("rx_metadata"), "rssi", "snr")
    rate = _object(_object(up.get("settings"), "settings").get("data_rate"), "data_rate")
    lora = _object(rate.get("lora"), "data_rate.lora")
    device_id = ids.get("device_id")
    if device_id is not None and not (isinstance(device_id, str)
                                      and NS_DEVICE_ID.fullmatch(device_id)):
        raise BadEvent("end_device_ids.device_id: expected a device id")
    return Uplink(_eui(ids.get("dev_eui")), _int(up.get("f_port"), "f_port", 0, 255) or 0,
                  _b64(up.get("frm_payload", "")),
                  _time(up.get("received_at") or body.get("received_at")), rssi, snr,
                  gateways, as923_dr(lora.get("spreading_factor"), lora.get("bandwidth")),
                  device_id, _int(up.get("f_cnt"), "f_cnt", 0, MAX_FCNT))


# --- delivery reports --------------------------------------------------------------------

def split_report(payload: bytes) -> tuple[tuple[int, int], bytes]:
    """A REPORT_PORT payload: ((the station's oldest held seq, the newest it sent), u24
    each; the records)."""
    if len(payload) < 6:
        raise BadEvent("report uplink: shorter than its two 3-byte sequence numbers")
    oldest, newest = int.from_bytes(payload[:3], "big"), int.from_bytes(payload[3:6], "big")
    if not 1 <= oldest <= newest + 1:
        raise BadEvent(f"report uplink: oldest seq {oldest} does not fit newest {newest}")
    return (oldest, newest), payload[6:]


def first_missing(stored: list[int], oldest: int) -> int:
    """The first sequence number from `oldest` on that is not in `stored` (ascending, all
    from `oldest` on)."""
    want = oldest
    for seq in stored:
        if seq != want:
            break
        want += 1
    return want


def encode_delivery(kind: int, seq: int) -> bytes:
    return bytes([kind]) + (seq & 0xFFFFFF).to_bytes(3, "big")


# --- config downlinks --------------------------------------------------------------------

# Settings a downlink can carry: the station's (devices.station_config); key id -> name
# (thresholds_mm[i] as its own key). Values are signed 24-bit (mm, s, counts), and only ever
# ones the station takes: every range in firmware/station/config.py fits in 24 bits.
CONFIG_KEYS = {1: "mount_mm", 2: "thresholds_mm.0", 3: "thresholds_mm.1",
               4: "thresholds_mm.2", 5: "thresholds_mm.3", 6: "hysteresis_mm",
               7: "rise_limit_mm_h", 8: "interval_normal_s", 9: "interval_flood_s",
               10: "upload_every"}
NO_VALUE = -(1 << 23)  # a threshold that is not set
MORE = 0x80
MAX_DOWNLINK = 11  # bytes: the smallest AS923 payload (DR2 with dwell time)


def config_items(cfg: dict[str, Any]) -> list[tuple[int, int]]:
    """(key id, value) of the CONFIG_KEYS settings in cfg; a setting the station would
    refuse (devices.check_setting) is left out rather than sent."""
    flat = {k: v for k, v in cfg.items()
            if k in devices.FIRMWARE_DEFAULTS and devices.check_setting(k, v) is None}
    for i, level in enumerate(flat.get("thresholds_mm") or []):
        flat[f"thresholds_mm.{i}"] = level
    return [(key, NO_VALUE if flat[name] is None else int(flat[name]))
            for key, name in CONFIG_KEYS.items() if name in flat]


def encode_config(version: int, cfg: dict[str, Any]) -> list[bytes]:
    """The config as downlinks of at most MAX_DOWNLINK bytes: header (0x80 = more follow,
    the low 7 bits the frame's index), version u16, then (key u8, value i24) items. The
    device applies the version with the last frame, and only when it had every frame
    before it (firmware/station/lorawan.py)."""
    items = config_items(cfg)
    per = (MAX_DOWNLINK - 3) // 4
    frames = []
    for i in range(0, len(items), per):
        more = MORE if i + per < len(items) else 0
        frame = struct.pack(">BH", more | (i // per), version & 0xFFFF)
        for key, value in items[i:i + per]:
            frame += struct.pack(">B", key) + (value & 0xFFFFFF).to_bytes(3, "big")
        frames.append(frame)
    return frames or [struct.pack(">BH", 0, version & 0xFFFF)]


# --- network-server APIs -----------------------------------------------------------------

def queue_downlinks(kind: str, api_url: str, token: str, dev_eui: str,
                    ns_device_id: str | None, application_id: str, webhook_id: str,
                    frames: list[bytes], client: httpx.Client,
                    port: int = CONFIG_PORT, replace: bool = False) -> None:
    """Queue frames on the network server for the device's next receive windows (`replace`:
    instead of whatever waits there); raises httpx.HTTPError. ChirpStack v4 REST API:
    POST /api/devices/{devEui}/queue, after DELETE on it (FlushQueue) to replace. The Things
    Stack: POST /api/v3/as/applications/{app}/webhooks/{webhook}/devices/{device}/down/push
    (down/replace to replace)."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    base = api_url.rstrip("/")
    if kind == "chirpstack":
        queue = f"{base}/api/devices/{dev_eui}/queue"
        if replace:
            client.delete(queue, headers=headers).raise_for_status()
        for frame in frames:
            r = client.post(queue, headers=headers, json={
                "queueItem": {"confirmed": False, "fPort": port,
                              "data": base64.b64encode(frame).decode()}})
            r.raise_for_status()
        return
    if not ns_device_id:
        raise httpx.HTTPError("no The Things Stack device_id seen yet for this device")
    r = client.post(f"{base}/api/v3/as/applications/{application_id}/webhooks/{webhook_id}"
                    f"/devices/{ns_device_id}/down/{'replace' if replace else 'push'}",
                    headers=headers, json={
                        "downlinks": [{"f_port": port, "priority": "NORMAL",
                                       "frm_payload": base64.b64encode(f).decode()}
                                      for f in frames]})
    r.raise_for_status()
