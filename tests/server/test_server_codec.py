"""The server's decoder against the shared vectors file."""

import json
from pathlib import Path

import pytest
from mizumori_server import codec

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "codec-v1.json").read_text())
RESOLUTION = {"temperature_c": 0.01, "humidity_pct": 0.5, "pressure_hpa": 0.1, "rain_mm": 0.1}


def same(got: dict[str, object], want: dict[str, object]) -> None:
    assert got.keys() == want.keys()
    for k, w in want.items():
        g = got[k]
        if k in RESOLUTION and w is not None:
            assert isinstance(g, float) and isinstance(w, int | float)
            assert round(g / RESOLUTION[k]) == round(w / RESOLUTION[k]), k
        else:
            assert g == w, k


@pytest.mark.parametrize("v", VECTORS["records"], ids=lambda v: v["name"])
def test_record_vectors(v: dict[str, object]) -> None:
    (rec,) = codec.decode(bytes.fromhex(str(v["hex"])))
    same(rec.fields(), v["fields"])  # type: ignore[arg-type]


@pytest.mark.parametrize("v", VECTORS["batches"], ids=lambda v: v["name"])
def test_batch_vectors(v: dict[str, object]) -> None:
    recs = codec.decode(bytes.fromhex(str(v["hex"])))
    assert len(recs) == len(v["records"])  # type: ignore[arg-type]
    for r, w in zip(recs, v["records"], strict=True):  # type: ignore[call-overload]
        same(r.fields(), w)


@pytest.mark.parametrize("v", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_vectors(v: dict[str, str]) -> None:
    with pytest.raises(codec.CodecError) as e:
        codec.decode(bytes.fromhex(v["hex"]))
    assert str(e.value).startswith("record ")


def test_sequence_extension_across_the_24_bit_wrap() -> None:
    assert codec.extend_seq(5, 0) == 5
    assert codec.extend_seq(0xFFFFFF, 0xFFFFF0) == 0xFFFFFF
    assert codec.extend_seq(3, 0xFFFFF0) == 0x1000003  # wrapped forward
    assert codec.extend_seq(0xFFFFF8, 0x1000002) == 0xFFFFF8  # a late older one
    assert codec.extend_seq(7, 0x5000010) == 0x5000007


def test_the_quality_flags_are_named_as_the_firmware_names_them() -> None:
    from station import codec as fw  # the firmware's (firmware/ is on the path)

    assert codec.QUALITY_NAMES == fw.QUALITY_NAMES
    level = bytes.fromhex("1100000100000004d2b900")
    # bit 4: a short watch-mode burst (MLIT profile); bits 5-7 reserved, ignored
    (_, q) = codec.decode(level + bytes([0x14, 0xF4, 3, 0, 1]))
    assert q.fields()["flags"] == ["noisy", "short_window"] and q.quality == 0x14
    (_, q) = codec.decode(level + bytes([0x14, 0xE0, 3, 0, 1]))
    assert q.fields()["flags"] == [] and q.quality == 0
