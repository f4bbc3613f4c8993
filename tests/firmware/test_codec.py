from records import decode
from station import batch, codec
from support import load_json, raises

VECTORS = load_json("tests/vectors/codec-v1.json")
RESOLUTION = {"temperature_c": 0.01, "humidity_pct": 0.5, "pressure_hpa": 0.1, "rain_mm": 0.1}


def encode(f):
    flags = codec.flags_from_names(f.get("flags", []))
    if f["type"] == "level":
        return codec.encode_level(f["seq"], f["age_s"], f["level_mm"], f["battery_mv"], flags)
    if f["type"] == "full":
        return codec.encode_full(f["seq"], f["age_s"], f["level_mm"], f["battery_mv"], flags,
                                 f["temperature_c"], f["humidity_pct"], f["pressure_hpa"],
                                 f["rain_mm"])
    return batch.encode_status(f["queue_depth"], f["dropped"], f["config_version"],
                               batch.RESET_CAUSES.index(f["reset_cause"]), f["rssi_dbm"])


def same_fields(got, want):
    assert sorted(got.keys()) == sorted(want.keys()), (got, want)
    for k in want:
        if k in RESOLUTION and want[k] is not None:
            assert got[k] is not None and round(got[k] / RESOLUTION[k]) == round(
                want[k] / RESOLUTION[k]), (k, got[k], want[k])
        else:
            assert got[k] == want[k], (k, got[k], want[k])


def test_every_record_vector_encodes_to_its_hex():
    for v in VECTORS["records"]:
        assert encode(v["fields"]).hex() == v["hex"], v["name"]


def test_every_record_vector_decodes_to_its_fields():
    for v in VECTORS["records"]:
        recs = decode(bytes.fromhex(v["hex"]))
        assert len(recs) == 1, v["name"]
        same_fields(recs[0], v["fields"])


def test_batches_are_records_end_to_end():
    for v in VECTORS["batches"]:
        data = b"".join(encode(f) for f in v["records"])
        assert data.hex() == v["hex"], v["name"]
        got = decode(bytes.fromhex(v["hex"]))
        assert len(got) == len(v["records"])
        for g, w in zip(got, v["records"]):
            same_fields(g, w)


def test_invalid_vectors_are_refused_with_a_reason():
    for v in VECTORS["invalid"]:
        e = raises(batch.CodecError, decode, bytes.fromhex(v["hex"]))
        msg = str(e)
        assert msg, v["name"]
        want = {"empty": "empty", "version": "version", "type": "type",
                "truncated": "truncated", "range": "range"}[v["error"]]
        assert want in msg, (v["name"], msg)


def test_level_record_fits_lorawan_as923_dr2():
    rec = codec.encode_level(0xFFFFFF, batch.AGE_MAX, -32767, 5100, 0xFF)
    assert len(rec) == batch.LEVEL_LEN == 11
    full = codec.encode_full(1, 0, 1, 3700, 0, 20.0, 50.0, 1000.0, 0.0)
    assert len(full) == batch.FULL_LEN == 18


def test_age_is_set_at_transmission_and_saturates():
    full = codec.encode_full(5, 0, 1500, 3700, 0, 21.5, 40.0, 1000.1, 0.2)
    aged = batch.with_age(full, 3600)
    assert decode(aged)[0]["age_s"] == 3600
    assert decode(batch.with_age(full, 10 ** 9))[0]["age_s"] == batch.AGE_MAX
    # everything else untouched
    assert aged[:4] == full[:4] and aged[7:] == full[7:]


def test_full_record_downgrades_to_level_record():
    full = codec.encode_full(77, 30, 1500, 3700, codec.FLOOD_MODE, 21.5, 40.0, 1000.1, 0.2)
    lv = batch.to_level(full)
    assert lv == codec.encode_level(77, 30, 1500, 3700, codec.FLOOD_MODE)
    raises(batch.CodecError, batch.to_level, batch.encode_status(1, 0, 0, 0, None))


def test_sequence_is_sent_as_its_low_24_bits():
    rec = codec.encode_level(0x1234567, 0, 0, None, 0)
    assert decode(rec)[0]["seq"] == 0x234567


def test_out_of_range_values_clamp_instead_of_wrapping():
    rec = decode(codec.encode_full(1, -5, 99999, 9000, 0, 400.0, 150.0, 99999.0, 1e6))[0]
    assert rec["age_s"] == 0
    assert rec["level_mm"] == 32767
    assert rec["battery_mv"] == 5100
    assert rec["temperature_c"] == 327.67
    assert rec["humidity_pct"] == 100.0
    assert rec["rain_mm"] == 6553.4
