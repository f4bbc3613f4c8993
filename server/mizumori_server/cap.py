"""Flood alerts as CAP 1.2 (OASIS Common Alerting Protocol) messages and an Atom index of
the active ones, for public alerting systems (docs/alerts.md, "CAP feed").

Only the public's alerts go out: river levels and rate of rise. A device's battery, faults
or silence are the operators' business, not the public's. Each public change of an alert
(opened, raised, lowered, closed: its events, not an operator's acknowledgement) is a new
message whose identifier names the alert and that event; later versions reference the
earlier ones, and a closed alert is a Cancel."""

import datetime as dt
from typing import Any
from xml.etree import ElementTree as ET

from mizumori_server.alerts import LEVELS
from mizumori_server.models import Alert, Station

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS = "http://www.w3.org/2005/Atom"
PUBLIC_TYPES = ("level", "rise")
VERSION_EVENTS = ("opened", "raised", "lowered", "closed")  # what changes a message
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


def identifier(alert: Alert, event_id: int) -> str:
    return f"mizumori-alert-{alert.id}-{event_id}"


def message(alert: Alert, station: Station, versions: list[tuple[int, int]], sender: str,
            url: str) -> bytes:
    """The CAP message for the alert's current version. versions: the (event id, time) of
    its VERSION_EVENTS, oldest first."""
    closed = alert.state == "closed"
    (event_id, sent), earlier = versions[-1], versions[:-1]
    root = ET.Element("alert")
    sub(root, "identifier", identifier(alert, event_id))
    sub(root, "sender", sender)
    sub(root, "sent", cap_time(sent))
    sub(root, "status", "Actual")
    sub(root, "msgType", "Cancel" if closed else "Update" if earlier else "Alert")
    sub(root, "scope", "Public")
    if earlier:
        sub(root, "references", " ".join(f"{sender},{identifier(alert, e)},{cap_time(t)}"
                                         for e, t in earlier))
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


def feed(entries: list[tuple[Alert, Station, int]], self_url: str, message_url: Any,
         now: int) -> bytes:
    """An Atom index of the active public alerts (with their latest version's event id),
    each linking to its CAP message."""
    root = ET.Element("feed")
    sub(root, "id", self_url)
    sub(root, "title", "Mizumori flood alerts")
    sub(root, "updated", cap_time(max([now] + [a.updated_at for a, _, _ in entries])))
    ET.SubElement(root, "link", rel="self", href=self_url)
    author = sub(root, "author")
    sub(author, "name", "Mizumori")
    for alert, station, version in entries:
        entry = sub(root, "entry")
        sub(entry, "id", f"urn:mizumori:{identifier(alert, version)}")
        sub(entry, "title", headline(alert, station, "ja-JP", False))
        sub(entry, "updated", cap_time(alert.updated_at))
        sub(entry, "summary", headline(alert, station, "en-US", False))
        ET.SubElement(entry, "link", rel="alternate",
                      type="application/cap+xml", href=message_url(alert.id))
    return document(root, ATOM_NS)


def document(root: ET.Element, ns: str) -> bytes:
    """The tree (plain tag names) with ns as its default namespace: unprefixed, as CAP and
    Atom readers expect to see it."""
    root.set("xmlns", ns)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(
        root, encoding="utf-8", xml_declaration=False)


def sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = text
    return el
