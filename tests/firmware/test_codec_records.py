# The quality (0x14) and digest (0x15) records: the shared vectors, how the cycle stores a
# reading's quality, how the uplinks send it, and a watch-mode day over LoRaWAN as one digest.
# Runs under CPython and MicroPython.
import struct

import test_codec as codec_tests
from records import decode
from station import batch, codec, config, cycle, lorawan, signed, state, uplink
from station.flashqueue import FlashQueue
from station.hw import sim
from support import load_json, raises, tempdir
from test_lorawan import CREDS, Network, add_reading, rig, station

VECTORS = load_json("tests/vectors/codec-v1-quality-digest.json")


def encode(f):
    t = f["type"]
    if t == "quality":
        return codec.encode_quality(codec.flags_from_names(f["flags"], codec.QUALITY_NAMES),
                                    f["spread_mm"], f["calibration_version"])
    if t == "digest":
        return batch.encode_digest(f["seq"], f["readings"], f["level_min_mm"],
                                   f["level_max_mm"], f["battery_mv"],
                                   codec.flags_from_names(f.get("flags", [])))
    return codec_tests.encode(f)


def test_record_vectors_encode_and_decode():
    for v in VECTORS["records"]:
        assert encode(v["fields"]).hex() == v["hex"], v["name"]
        [got] = decode(bytes.fromhex(v["hex"]))
        codec_tests.same_fields(got, v["fields"])


def test_batch_vectors_encode_and_decode():
    for v in VECTORS["batches"]:
        assert b"".join(encode(f) for f in v["records"]).hex() == v["hex"], v["name"]
        got = decode(bytes.fromhex(v["hex"]))
        assert len(got) == len(v["records"]), v["name"]
        for g, w in zip(got, v["records"]):
            codec_tests.same_fields(g, w)


def test_invalid_vectors_are_refused_with_their_reason():
    for v in VECTORS["invalid"]:
        e = raises(batch.CodecError, decode, bytes.fromhex(v["hex"]))
        assert v["error"] in str(e), (v["name"], str(e))


def test_quality_reserved_bits_are_not_sent_and_not_read():
    rec = codec.encode_quality(0xFF, 12, 0x12345)
    assert rec == bytes([0x14, 0x1F, 12, 0x23, 0x45])
    body = codec.encode_level(1, 0, 100, 3700, 0) + bytes([0x14, 0xE4, 3, 0, 1])
    assert decode(body)[1]["flags"] == ["noisy"]
    body = codec.encode_level(1, 0, 100, 3700, 0) + bytes([0x14, 0xF4, 3, 0, 1])
    assert decode(body)[1]["flags"] == ["noisy", "short_window"]
    assert codec.QUALITY_NAMES[4] == "short_window" and codec.SHORT_WINDOW == 0x10


def test_levels_and_spread_clamp_instead_of_wrapping():
    d = decode(batch.encode_digest(5, 999, -40000, 40000, 9000, 0))[0]
    assert (d["readings"], d["level_min_mm"], d["level_max_mm"], d["battery_mv"]) == (
        255, -32767, 32767, 5100)
    q = decode(codec.encode_level(1, 0, 1, 1, 0) + codec.encode_quality(0, 900, 1))[1]
    assert q["spread_mm"] == 254


def test_a_digest_sums_up_stored_readings():
    recs = [codec.encode_full(1, 0, 812, 3700, 0, 20.0, 50.0, 1000.0, 0.0) +
            codec.encode_quality(codec.NOISY, 40, 2),
            codec.encode_level(2, 0, None, None, codec.NO_ECHO),
            codec.encode_full(3, 0, 845, 3660, codec.CLOCK_UNSYNCED, None, None, None, None),
            codec.encode_level(4, 0, 790, None, 0)]
    d = decode(batch.digest(4, 4, recs))[0]
    assert (d["seq"], d["readings"], d["level_min_mm"], d["level_max_mm"]) == (4, 4, 790, 845)
    assert d["battery_mv"] == 3660  # the newest reading that knew its battery
    assert d["flags"] == ["no_echo", "clock_unsynced"]
    d = decode(batch.digest(9, 1, [codec.encode_level(9, 0, None, None, 0)]))[0]
    assert (d["level_min_mm"], d["level_max_mm"], d["battery_mv"]) == (None, None, None)


def test_lorawan_sends_a_quality_record_only_with_a_flag_and_never_at_dr2():
    full = codec.encode_full(7, 0, 1500, 3700, 0, 21.5, 40.0, 1000.1, 0.2)
    assert batch.lean(full + codec.encode_quality(0, 3, 9)) == full
    # a watch-mode burst's flag alone does not earn the airtime either
    assert batch.lean(full + codec.encode_quality(codec.SHORT_WINDOW, 3, 9)) == full
    flagged = full + codec.encode_quality(codec.TEMP_HELD, 3, 9)
    assert batch.lean(flagged) == flagged
    both = full + codec.encode_quality(codec.TEMP_HELD | codec.SHORT_WINDOW, 3, 9)
    assert batch.lean(both) == both
    assert batch.to_level(flagged) == codec.encode_level(7, 0, 1500, 3700, 0)
    aged = batch.with_age(flagged, 600)
    assert decode(aged)[0]["age_s"] == 600 and aged[18:] == flagged[18:]


def test_a_servers_422_names_a_record_the_station_finds_its_reading():
    r = codec.encode_full(1, 0, 1, 3700, 0, 20.0, 50.0, 1000.0, 0.0)
    q = codec.encode_quality(0, 2, 1)
    body = r + q + r + q + batch.encode_status(2, 0, 0, 4, None)
    assert [batch.reading_at(body, i) for i in range(5)] == [0, 0, 1, 1, 1]
    old = r + r + batch.encode_status(2, 0, 0, 4, None)  # no quality records: as before
    assert [batch.reading_at(old, i) for i in range(2)] == [0, 1]


# --- the cycle stores a quality record with every reading -----------------------------------

def stored_pair(q, seq=None):
    """(reading, quality) as stored for seq (default the newest)."""
    got = q.peek(1000, 100000)
    payload = got[-1][1] if seq is None else [p for s, p in got if s == seq][0]
    reading, quality = decode(payload[4:])
    return reading, quality


def test_every_reading_is_stored_with_its_spread_and_calibration_version():
    w = sim.World()
    cfg, _ = config.merge(config.DEFAULTS, {"cal_version": 70000, "cal_offset_mm": 12})
    q = FlashQueue(tempdir())
    r = cycle.run(sim.Board(w), cfg, config.pins(cfg), state.defaults(), q)
    reading, quality = stored_pair(q)
    assert reading["level_mm"] == r["level_mm"] and r["quality"] == 0
    assert quality == {"type": "quality", "flags": [], "spread_mm": r["spread_mm"],
                       "calibration_version": 70000 & 0xFFFF}
    assert len(q.peek(1)[0][1]) == 4 + batch.FULL_LEN + batch.QUALITY_LEN


def test_a_noisy_burst_is_flagged_on_its_reading():
    w = sim.World()
    w.noise_mm = 80  # spray, waves: +-80 mm
    cfg, _ = config.merge(config.DEFAULTS, {})
    q = FlashQueue(tempdir())
    r = cycle.run(sim.Board(w), cfg, config.pins(cfg), state.defaults(), q)
    _, quality = stored_pair(q)
    assert quality["flags"] == ["noisy"] and quality["spread_mm"] == r["spread_mm"] > 30


def test_a_held_then_missing_temperature_is_flagged_on_each_reading():
    w = sim.World()
    w.level_mm, w.air_temp_c, w.noise_mm = 1000, -10.0, 0
    cfg, _ = config.merge(config.DEFAULTS, {})
    q = FlashQueue(tempdir())
    st = state.defaults()
    cycle.run(sim.Board(w), cfg, config.pins(cfg), st, q)
    w.faults.add("env_missing")
    for _ in range(2):
        w.now += 2 * 3600
        cycle.run(sim.Board(w), cfg, config.pins(cfg), st, q)
    assert [stored_pair(q, s)[1]["flags"] for s in (1, 2, 3)] == [
        [], ["temp_held"], ["no_temp_correction"]]
    assert abs(stored_pair(q, 2)[0]["level_mm"] - 1000) <= 2  # held: still corrected
    w.faults.add("missing")  # no level at all: nothing was corrected or not
    w.now += 600
    cycle.run(sim.Board(w), cfg, config.pins(cfg), st, q)
    reading, quality = stored_pair(q)
    assert reading["level_mm"] is None and quality["flags"] == [] and \
        quality["spread_mm"] is None


def test_a_loop_current_over_range_is_flagged():
    w = sim.World()
    w.loop_ua = 21000  # a transmitter past its range (NAMUR NE 43: above 20.5 mA)
    cfg, _ = config.merge(config.DEFAULTS, {"level_sensor": "current_loop"})
    q = FlashQueue(tempdir())
    cycle.run(sim.Board(w), cfg, config.pins(cfg), state.defaults(), q)
    reading, quality = stored_pair(q)
    assert reading["level_mm"] is None and "out_of_range" in reading["flags"]
    assert quality["flags"] == ["loop_over_range"]
    w.loop_ua = 12000  # mid-range: a level, nothing to say
    cycle.run(sim.Board(w), cfg, config.pins(cfg), state.defaults(), q)
    reading, quality = stored_pair(q)
    assert reading["level_mm"] is not None and quality["flags"] == []


# --- Wi-Fi: every quality record goes; a refused one gives up its own reading ----------------

class Refusing:
    """An ingest that refuses the record at index `bad` of every batch holding reading
    `seq` (422, as server/mizumori_server/api/ingest.py names it), and stores the rest."""

    def __init__(self, seq):
        self.seq = seq
        self.stored = []
        self.bodies = []

    def post(self, board, creds, st, path, body, content_type=None, feed=None, conn=None):
        st["counter"] += 1
        self.bodies.append(body)
        recs = decode(body)
        for i, r in enumerate(recs):
            if r["type"] == "quality" and recs[i - 1]["seq"] == self.seq:
                return 422, {"code": "bad_record", "record": i, "detail": "bad quality"}
        seqs = [r["seq"] for r in recs if r["type"] in ("level", "full")]
        self.stored += seqs
        return 200, {"ack_upto": max(seqs) if seqs else None}


def test_wifi_sends_each_quality_record_and_a_refused_one_costs_only_its_reading():
    cfg, errors = config.merge(config.DEFAULTS, {"batch_records": 4, "batches_per_wake": 8})
    assert errors == []
    q = FlashQueue(tempdir())
    for seq in range(1, 7):
        q.append(struct.pack(">I", 1000 + seq) + codec.encode_full(
            seq, 0, 1000 + seq, 3700, 0, 20.0, 50.0, 1000.0, 0.0) +
            codec.encode_quality(0, seq, 3))
    board = sim.Board(sim.World())
    creds = {"device_id": 1, "key": b"k" * 32, "server": "http://x",
             "wifi": {"ssid": sim.SIM_SSID, "password": "pw"}}
    st = state.defaults()
    server = Refusing(3)
    real = signed.post_signed
    signed.post_signed = server.post
    try:
        assert uplink.send(board, cfg, tempdir() + "/c.json", creds, st, q) is not None
    finally:
        signed.post_signed = real
    first = decode(server.bodies[0])
    assert [r["type"] for r in first] == ["full", "quality"] * 4 + ["status"]
    assert [r["spread_mm"] for r in first if r["type"] == "quality"] == [1, 2, 3, 4]
    # record 5 (reading 3's quality) refused: 1, 2 went alone, then 3 was given up
    assert server.stored == [1, 2, 4, 5, 6] and st["poisoned"] == 1 and q.depth() == 0


def test_readings_stored_before_the_update_go_on_as_they_are():
    """A queue written by firmware without quality records, then with: both uplinks send
    each reading as stored (the server takes a reading without its quality record)."""
    q = FlashQueue(tempdir())
    old = codec.encode_full(1, 0, 1001, 3700, 0, 20.0, 50.0, 1000.0, 0.0)
    new = codec.encode_full(2, 0, 1002, 3700, 0, 20.0, 50.0, 1000.0, 0.0) + \
        codec.encode_quality(codec.NOISY, 44, 2)
    q.append(struct.pack(">I", 1000) + old)
    q.append(struct.pack(">I", 1600) + new)
    body, seqs = uplink.build_body(q, state.defaults(), 2200, b"", 10, 4096)
    assert seqs == [1, 2] and [(r["type"], r.get("age_s")) for r in decode(body)] == [
        ("full", 1200), ("full", 600), ("quality", None)]
    payload, seqs = lorawan.pack(q, state.defaults(), 2200, 53)
    assert seqs == [1, 2] and [r["type"] for r in decode(payload)] == [
        "full", "full", "quality"]
    payload, _ = lorawan.pack(q, state.defaults(), 2200, 11, after=1)  # DR2: a level record
    assert payload == batch.with_age(batch.to_level(new), 600)


# --- LoRaWAN: a watch-mode day is one digest --------------------------------------------------

class Fleet(Network):
    """The fleet server behind the network as server/mizumori_server/api/lorawan.py answers
    now: a digest holds the readings it stands for (they stay on the station)."""

    def fleet(self, port, payload):
        body = payload[6:] if port == lorawan.REPORT_PORT else payload
        if self.heard:
            for r in decode(body) if body else []:
                if r["type"] == "digest":
                    self.stored.update(range(r["seq"] - r["readings"] + 1, r["seq"]))
        Network.fleet(self, port, payload)


def watch_station(n, **changes):
    """A station of the MLIT profile in watch mode at its daily heartbeat: n readings stored
    since the last one (the cycle set beat_seq to this wake's reading)."""
    clock, net, module, modem = rig()
    net = module.network = Fleet()
    d, cfg, board, q, st = station(n, profile="mlit", **changes)
    st["beat_seq"] = q.next_seq - 1
    return net, modem, d, cfg, board, q, st


def send(modem, d, cfg, board, q, st):
    return lorawan.send(modem, board, cfg, d + "/config.json", CREDS, st, q, "deepsleep")


def readings_sent(net):
    """The reading and digest records of the frames the fleet server got, in order."""
    out = []
    for port, payload, _, _, _ in net.frames:
        records = payload[6:] if port == lorawan.REPORT_PORT else payload
        if records:
            out += [r for r in decode(records) if r["type"] != "status"]
    return out


def test_a_watch_day_over_lorawan_is_one_11_byte_digest():
    net, modem, d, cfg, board, q, st = watch_station(144, lora_dr=2)
    assert send(modem, d, cfg, board, q, st)
    [dig] = readings_sent(net)  # one record where 144 uplinks went before
    assert (dig["type"], dig["seq"], dig["readings"]) == ("digest", 144, 144)
    assert (dig["level_min_mm"], dig["level_max_mm"], dig["battery_mv"]) == (1000, 1143, 3700)
    port, payload, confirmed, dr, _ = net.frames[0]
    assert (port, confirmed, dr, len(payload)) == (1, False, 2, batch.DIGEST_LEN)
    # with the delivery report it asks for (the 144 readings count as sent): under a second
    # on air, where the day's readings took ~53 s
    assert sum(lorawan.airtime_ms(len(f[1]), 2) for f in net.frames) < 1000
    assert st["lora_sent"] == 144 and q.depth() == 144  # held until reported stored
    # the next day's heartbeat: the report (HAVE: all 144 held) comes down with an uplink
    # and the station lets them go (kept in flash for queue_keep)
    add_reading(board, q)
    st["beat_seq"] = q.next_seq - 1
    assert send(modem, d, cfg, board, q, st)
    assert q.acked == 144 and st["lora_sent"] == 145
    assert [(r["type"], r["readings"]) for r in readings_sent(net)[1:]] == [("digest", 1)]


def test_a_lost_digest_is_asked_for_and_sent_again_as_a_digest():
    net, modem, d, cfg, board, q, st = watch_station(100, lora_dr=2)
    net.lose = {1}  # the digest reaches no gateway; the report request after it does
    assert send(modem, d, cfg, board, q, st)
    assert net.stored == set() and st["lora_sent"] == 100
    # the next heartbeat: MISSING 1 comes down, and the readings from 1 on go again as one
    # digest (not as 101 uplinks)
    add_reading(board, q)
    st["beat_seq"] = q.next_seq - 1
    assert send(modem, d, cfg, board, q, st)
    sent = readings_sent(net)
    assert [r["type"] for r in sent] == ["digest"] * len(sent)
    assert (sent[-1]["seq"], sent[-1]["readings"]) == (101, 101)
    assert net.stored == set(range(1, 102)) and st["lora_sent"] == 101


def test_a_change_in_watch_mode_sends_the_backlog_as_a_digest_and_the_news_as_itself():
    net, modem, d, cfg, board, q, st = watch_station(30, lora_dr=3)
    st["lora_sent"] = st["beat_seq"] = 10  # today's heartbeat went out at reading 10 ...
    q.ack(10)  # ... and the server reported it stored
    assert send(modem, d, cfg, board, q, st)
    recs = readings_sent(net)
    assert [(r["type"], r["seq"]) for r in recs] == [("digest", 29), ("full", 30)]
    assert recs[0]["readings"] == 19 and st["lora_sent"] == 30


def test_observation_mode_and_flood_send_every_reading():
    for mode in ("obs", "flood"):
        net, modem, d, cfg, board, q, st = watch_station(3, lora_dr=2)
        st[mode] = True
        assert send(modem, d, cfg, board, q, st)
        assert [r["type"] for r in readings_sent(net)] == ["level"] * 3


def test_more_than_a_digest_can_hold_goes_as_several():
    net, modem, d, cfg, board, q, st = watch_station(300, lora_dr=3)
    assert send(modem, d, cfg, board, q, st)
    assert [(r["type"], r["seq"], r["readings"]) for r in readings_sent(net)] == [
        ("digest", 255, 255), ("digest", 300, 45)]
    assert net.stored == set(range(1, 301))
