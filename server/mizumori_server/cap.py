"""Flood alerts as CAP 1.2 (OASIS Common Alerting Protocol) messages and an Atom index of
the active ones, for public alerting systems (docs/alerts.md, "CAP feed").

Only the public's alerts go out: river levels and rate of rise. A device's battery, faults
or silence are the operators' business, not the public's. Each change of an alert is a new
message (identifier = alert and version); later versions reference the first, and a closed
alert is a Cancel."""

import datetime as dt
from typing import Any
from xml.etree import ElementTree as ET

from mizumori_server.alerts import LEVELS
from mizumori_server.models import Alert, Station

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS = "http://www.w3.org/2005/Atom"
PUBLIC_TYPES = ("level", "rise")
# By river level: severity, urgency, response (CAP's value lists).
LEVEL_CAP = {1: ("Minor", "Future", "Monitor"), 2: ("Moderate", "Expected", "Prepare"),
             3: ("Severe", "Expected", "Evacuate"), 4: ("Extreme", "Immediate", "Evacuate")}
TEXT: dict[str, dict[str, Any]] = {
    "ja-JP": {"event": "河川水位", "rise": "水位の急上昇",
              "reached": "{name}で{level}に達しました（水位 {m} m）。",
              "rising": "{name}で水位が急上昇しています（毎時 {rate} m）。",
              "instruction": {1: "今後の情報に注意してください。",
                              2: "河川に近づかないでください。避難の準備をしてください。",
                              3: "危険な場所から避難してください。",
                              4: "直ちに身の安全を確保してください。"},
              "cleared": "{name}の警報を解除しました。"},
    "en-US": {"event": "River water level", "rise": "Rapid rise of river water",
              "reached": "{name}: {level} reached (water level {m} m).",
              "rising": "{name}: the water is rising fast ({rate} m/h).",
              "instruction": {1: "Stay informed.",
                              2: "Keep away from the river and prepare to evacuate.",
                              3: "Evacuate from dangerous places.",
                              4: "Secure your safety immediately."},
              "cleared": "{name}: the alert is over."},
}


def cap_time(t: int) -> str:
    """CAP's date-time: no fraction, an explicit offset (not Z)."""
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def identifier(alert: Alert, version: int) -> str:
    return f"mizumori-alert-{alert.id}-{version}"


def message(alert: Alert, station: Station, sender: str, url: str) -> bytes:
    """The CAP message for the alert's current version."""
    first = identifier(alert, alert.opened_at)
    closed = alert.state == "closed"
    version = alert.closed_at if closed and alert.closed_at else alert.updated_at
    root = ET.Element(f"{{{CAP_NS}}}alert")
    sub(root, "identifier", identifier(alert, version))
    sub(root, "sender", sender)
    sub(root, "sent", cap_time(version))
    sub(root, "status", "Actual")
    sub(root, "msgType", "Cancel" if closed else "Alert" if version == alert.opened_at
        else "Update")
    sub(root, "scope", "Public")
    if version != alert.opened_at:
        sub(root, "references", f"{sender},{first},{cap_time(alert.opened_at)}")
    level = alert.level if alert.type == "level" else 2
    severity, urgency, response = LEVEL_CAP[level or 1]
    for lang, text in TEXT.items():
        info = sub(root, "info")
        sub(info, "language", lang)
        sub(info, "category", "Met")  # CAP files floods under meteorological
        sub(info, "event", text["event"] if alert.type == "level" else text["rise"])
        sub(info, "responseType", "AllClear" if closed else response)
        sub(info, "urgency", "Past" if closed else urgency)
        sub(info, "severity", "Minor" if closed else severity)
        sub(info, "certainty", "Observed")
        sub(info, "senderName", "Mizumori")
        sub(info, "headline", headline(alert, station, lang, closed)[:160])
        sub(info, "description", headline(alert, station, lang, closed))
        if not closed:
            sub(info, "instruction", text["instruction"][level or 1])
        sub(info, "web", url)
        area = sub(info, "area")
        sub(area, "areaDesc", station.name)
        sub(area, "circle", f"{station.latitude:.5f},{station.longitude:.5f} 1.0")
    return document(root, CAP_NS)


def headline(alert: Alert, station: Station, lang: str, closed: bool) -> str:
    text = TEXT[lang]
    if closed:
        return text["cleared"].format(name=station.name)
    if alert.type == "level":
        en, ja = LEVELS[alert.level]
        m = "" if alert.value is None else f"{alert.value / 1000:.2f}"
        return text["reached"].format(name=station.name, level=ja if lang == "ja-JP" else en,
                                      m=m)
    return text["rising"].format(name=station.name, rate=f"{(alert.value or 0) / 1000:.2f}")


def feed(entries: list[tuple[Alert, Station]], self_url: str, message_url: Any,
         now: int) -> bytes:
    """An Atom index of the active public alerts, each linking to its CAP message."""
    root = ET.Element(f"{{{ATOM_NS}}}feed")
    sub(root, "id", self_url, ns=ATOM_NS)
    sub(root, "title", "Mizumori flood alerts", ns=ATOM_NS)
    sub(root, "updated", cap_time(max([now] + [a.updated_at for a, _ in entries])),
        ns=ATOM_NS)
    ET.SubElement(root, f"{{{ATOM_NS}}}link", rel="self", href=self_url)
    author = sub(root, "author", ns=ATOM_NS)
    sub(author, "name", "Mizumori", ns=ATOM_NS)
    for alert, station in entries:
        entry = sub(root, "entry", ns=ATOM_NS)
        sub(entry, "id", f"urn:mizumori:alert:{alert.id}:{alert.updated_at}", ns=ATOM_NS)
        sub(entry, "title", headline(alert, station, "ja-JP", False), ns=ATOM_NS)
        sub(entry, "updated", cap_time(alert.updated_at), ns=ATOM_NS)
        sub(entry, "summary", headline(alert, station, "en-US", False), ns=ATOM_NS)
        ET.SubElement(entry, f"{{{ATOM_NS}}}link", rel="alternate",
                      type="application/cap+xml", href=message_url(alert.id))
    return document(root, ATOM_NS)


def document(root: ET.Element, ns: str) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(
        root, encoding="utf-8", xml_declaration=False, default_namespace=ns)


def sub(parent: ET.Element, tag: str, text: str | None = None,
        ns: str = CAP_NS) -> ET.Element:
    el = ET.SubElement(parent, f"{{{ns}}}{tag}")
    if text is not None:
        el.text = text
    return el
