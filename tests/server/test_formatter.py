"""The LoRaWAN payload formatter (lorawan/formatter.js) against the shared vectors file,
under node and under QuickJS (the engine ChirpStack embeds)."""

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import need
from test_server_codec import RESOLUTION, VECTORS, same

FORMATTER = Path(__file__).parents[2] / "lorawan" / "formatter.js"
CASES = ([("record", v["hex"], [v["fields"]]) for v in VECTORS["records"]]
         + [("batch", v["hex"], v["records"]) for v in VECTORS["batches"]]
         + [("invalid", v["hex"], v["error"]) for v in VECTORS["invalid"]])
# One run decodes every case: what each engine returns for each hex string.
HARNESS = """
var cases = %s, out = [];
for (var i = 0; i < cases.length; i++) {
  var hex = cases[i], bytes = [];
  for (var j = 0; j < hex.length; j += 2) { bytes.push(parseInt(hex.substr(j, 2), 16)); }
  out.push(decodeUplink({bytes: bytes, fPort: 1, recvTime: new Date(0)}));
}
JSON.stringify(out);
"""


def harness() -> str:
    return FORMATTER.read_text() + HARNESS % json.dumps([hex_ for _, hex_, _ in CASES])


def under_node() -> list[dict[str, Any]]:
    need(shutil.which("node") is not None, "node")
    script = harness().rstrip().removesuffix("JSON.stringify(out);") + \
        "process.stdout.write(JSON.stringify(out));"
    done = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out: list[dict[str, Any]] = json.loads(done.stdout)
    return out


def under_quickjs() -> list[dict[str, Any]]:
    import quickjs

    out: list[dict[str, Any]] = json.loads(quickjs.Context().eval(harness()))
    return out


@pytest.mark.parametrize("engine", [under_node, under_quickjs], ids=["node", "quickjs"])
def test_formatter_decodes_every_vector(engine: Any) -> None:
    results = engine()
    for (kind, hex_, want), got in zip(CASES, results, strict=True):
        if kind == "invalid":
            assert "data" not in got and got["errors"], (hex_, got)
            assert got["errors"][0].startswith("record ") or hex_ == "", got
            continue
        assert "errors" not in got, got
        data = got["data"]
        readings = [r for r in want if r["type"] != "status"]
        status = [r for r in want if r["type"] == "status"]
        if status:
            same(data["status"], status[0])
        else:
            assert data["status"] is None
        assert len(data["readings"]) == len(readings)
        for r, w in zip(data["readings"], readings, strict=True):
            # JSON has one number type: 1000.0 comes back as 1000
            r.update({k: float(v) for k, v in r.items() if k in RESOLUTION and v is not None})
            level_m = r.pop("level_m")
            assert level_m == (None if w["level_mm"] is None else w["level_mm"] / 1000)
            same(r, w)


def test_formatter_is_plain_es5() -> None:
    """No syntax an older embedded engine lacks."""
    text = FORMATTER.read_text()
    for modern in ("=>", "let ", "const ", "class ", "`", "...", "?.", "??"):
        assert modern not in text, modern


def test_formatter_warns_of_dropped_readings() -> None:
    import quickjs

    ctx = quickjs.Context()
    ctx.eval(FORMATTER.read_text())
    got = json.loads(ctx.eval(
        "JSON.stringify(decodeUplink({bytes: [0x11,0,0,9,0,0,0,4,0xd2,0xb9,0x40], fPort: 1}))"))
    assert got["warnings"] == ["station dropped readings before seq 9"]
    assert got["data"]["readings"][0]["flags"] == ["queue_dropped"]


def test_formatter_reads_a_delivery_report_request() -> None:
    import quickjs

    ctx = quickjs.Context()
    ctx.eval(FORMATTER.read_text())

    def decode(data: list[int]) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(ctx.eval(
            f"JSON.stringify(decodeUplink({{bytes: {json.dumps(data)}, fPort: 2}}))"))
        return out

    level = [0x11, 0, 0, 9, 0, 0, 0, 4, 0xd2, 0xb9, 0]
    got = decode([0, 0, 3, 0, 0, 8] + level)
    assert got["data"]["oldest_seq"] == 3 and got["data"]["newest_sent_seq"] == 8
    assert got["data"]["readings"][0]["seq"] == 9
    assert decode([0, 1, 0, 0, 1, 2])["data"] == {
        "codec": 1, "readings": [], "status": None, "oldest_seq": 256, "newest_sent_seq": 258}
    assert decode([0, 1, 0, 0, 1])["errors"] == ["report uplink shorter than 6 bytes"]
