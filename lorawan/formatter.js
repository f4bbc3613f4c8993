// Mizumori reading codec v1: payload formatter for LoRaWAN network servers.
// Paste into ChirpStack v4 (device profile > Codec > JavaScript functions) or The Things
// Stack v3 (application or device > Payload formatters > Uplink > Custom Javascript).
// It follows the LoRaWAN Payload Codec API: decodeUplink(input) returns
// {data, warnings, errors}. Plain ES5 (var, function, no arrows, classes or template
// strings) so that any JavaScript engine a network server embeds runs it.
// The format: docs/protocol.md; test vectors: tests/vectors/codec-v1.json and
// codec-v1-quality-digest.json.

var MIZUMORI_LEVEL = 0x11, MIZUMORI_FULL = 0x12, MIZUMORI_STATUS = 0x13;
var MIZUMORI_QUALITY = 0x14, MIZUMORI_DIGEST = 0x15;
var MIZUMORI_LENGTHS = { 17: 11, 18: 18, 19: 9, 20: 5, 21: 11 };  // by header byte
var MIZUMORI_FLAGS = ["no_echo", "out_of_range", "stuck", "jump", "sensor_missing",
                      "flood_mode", "queue_dropped", "clock_unsynced"];
var MIZUMORI_QUALITY_FLAGS = ["no_temp_correction", "temp_held", "noisy", "loop_over_range",
                              "short_window"];  // bits 5-7 reserved: ignored
var MIZUMORI_RESETS = ["unknown", "power_on", "hard", "wdt", "deepsleep", "soft",
                       "brownout"];

function mizumoriU16(b, i) { return (b[i] << 8) | b[i + 1]; }
function mizumoriU24(b, i) { return (b[i] << 16) | (b[i + 1] << 8) | b[i + 2]; }
function mizumoriI16(b, i) {
  var v = mizumoriU16(b, i);
  return v >= 0x8000 ? v - 0x10000 : v;
}
function mizumoriHex2(n) { return (n < 16 ? "0" : "") + n.toString(16); }
function mizumoriFlags(bits, names) {
  var out = [];
  for (var k = 0; k < names.length; k++) { if (bits & (1 << k)) { out.push(names[k]); } }
  return out;
}
function mizumoriLevel(v) { return v === -32768 ? null : v; }

function mizumoriRecord(b, i) {
  var hdr = b[i];
  if ((hdr >> 4) !== 1) {
    throw new Error("record " + i + ": unsupported codec version " + (hdr >> 4));
  }
  var n = MIZUMORI_LENGTHS[hdr];
  if (!n) { throw new Error("record " + i + ": unknown record type 0x" + mizumoriHex2(hdr)); }
  if (i + n > b.length) {
    throw new Error("record " + i + ": truncated (" + (b.length - i) + " of " + n + " bytes)");
  }
  if (hdr === MIZUMORI_QUALITY) {
    return { length: n, record: {
      type: "quality", flags: mizumoriFlags(b[i + 1], MIZUMORI_QUALITY_FLAGS),
      spread_mm: b[i + 2] === 255 ? null : b[i + 2],
      calibration_version: mizumoriU16(b, i + 3) } };
  }
  if (hdr === MIZUMORI_DIGEST) {
    var count = b[i + 4], lo = mizumoriI16(b, i + 5), hi = mizumoriI16(b, i + 7);
    if (count === 0 || (lo === -32768) !== (hi === -32768) || lo > hi) {
      throw new Error("record " + i + ": digest of " + count + " readings, levels " + lo +
                      ".." + hi + " out of range");
    }
    return { length: n, record: {
      type: "digest", seq: mizumoriU24(b, i + 1), readings: count,
      level_min_mm: mizumoriLevel(lo), level_max_mm: mizumoriLevel(hi),
      battery_mv: b[i + 9] === 0 ? null : b[i + 9] * 20,
      flags: mizumoriFlags(b[i + 10], MIZUMORI_FLAGS) } };
  }
  if (hdr === MIZUMORI_STATUS) {
    var cause = b[i + 7], rssi = b[i + 8] >= 128 ? b[i + 8] - 256 : b[i + 8];
    return { length: n, record: {
      type: "status", queue_depth: mizumoriU16(b, i + 1), dropped: mizumoriU16(b, i + 3),
      config_version: mizumoriU16(b, i + 5),
      reset_cause: cause < MIZUMORI_RESETS.length ? MIZUMORI_RESETS[cause] : "unknown",
      rssi_dbm: rssi === -128 ? null : rssi } };
  }
  var battery = b[i + 9];
  var rec = {
    type: hdr === MIZUMORI_FULL ? "full" : "level", seq: mizumoriU24(b, i + 1),
    age_s: mizumoriU24(b, i + 4), level_mm: mizumoriLevel(mizumoriI16(b, i + 7)),
    battery_mv: battery === 0 ? null : battery * 20,
    flags: mizumoriFlags(b[i + 10], MIZUMORI_FLAGS) };
  if (hdr === MIZUMORI_FULL) {
    var t = mizumoriI16(b, i + 11), h = b[i + 13], p = mizumoriU16(b, i + 14),
        r = mizumoriU16(b, i + 16);
    if (h !== 255 && h > 200) { throw new Error("record " + i + ": humidity " + h + " out of range"); }
    rec.temperature_c = t === -32768 ? null : t / 100;
    rec.humidity_pct = h === 255 ? null : h / 2;
    rec.pressure_hpa = p === 0 ? null : p / 10;
    rec.rain_mm = r === 65535 ? null : r / 10;
  }
  return { length: n, record: rec };
}

// input: {bytes: byte array, fPort: n, recvTime: Date}. data.readings: level and full records,
// each with its quality (flags, spread_mm, calibration_version) when a quality record came
// after it; data.status: the status record (if any); data.digests: the daily digests, if
// any (watch mode: readings seq - readings + 1 .. seq in summary); level_m for dashboards
// that want metres. FPort 2 (a delivery-report request) starts with the oldest seq the
// station holds and the newest it sent: data.oldest_seq, data.newest_sent_seq.
function decodeUplink(input) {
  var b = input.bytes, readings = [], status = null, i = 0, asked = null, digests = [];
  var last = null;  // the reading a quality record may follow
  if (input.fPort === 2) {
    if (!b || b.length < 6) {
      return { errors: ["report uplink shorter than 6 bytes"], warnings: [] };
    }
    asked = [(b[0] << 16) | (b[1] << 8) | b[2], (b[3] << 16) | (b[4] << 8) | b[5]];
    b = b.slice(6);
    if (b.length === 0) {
      return { data: { codec: 1, readings: [], status: null, oldest_seq: asked[0],
                       newest_sent_seq: asked[1] }, warnings: [] };
    }
  }
  if (!b || b.length === 0) { return { errors: ["empty batch"], warnings: [] }; }
  try {
    while (i < b.length) {
      var one = mizumoriRecord(b, i), type = one.record.type;
      if (type === "quality") {
        if (last === null) {
          throw new Error("record " + i + ": record type 0x14 (quality) must follow a level " +
                          "or full record");
        }
        delete one.record.type;
        last.quality = one.record;
      } else if (type === "status") { status = one.record; } else if (type === "digest") {
        digests.push(one.record);
      } else {
        one.record.level_m = one.record.level_mm === null ? null : one.record.level_mm / 1000;
        readings.push(one.record);
      }
      last = type === "level" || type === "full" ? one.record : null;
      i += one.length;
    }
  } catch (e) {
    return { errors: [e.message], warnings: [] };
  }
  var warnings = [];
  for (var j = 0; j < readings.length; j++) {
    if (readings[j].flags.indexOf("queue_dropped") >= 0) {
      warnings.push("station dropped readings before seq " + readings[j].seq);
    }
  }
  var data = { codec: 1, readings: readings, status: status };
  if (digests.length) { data.digests = digests; }
  if (asked !== null) { data.oldest_seq = asked[0]; data.newest_sent_seq = asked[1]; }
  return { data: data, warnings: warnings };
}
