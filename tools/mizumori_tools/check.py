"""`mizumori device check`: the acceptance check of a new board, through mpremote like the
other device commands. A pass/fail table a technician can act on: the heap at each stage of
a wake (boot, the application imported, Wi-Fi up, the TLS handshake), the sensor rail and
each sensor, the rain gauge at rest, the 4-20 mA loop at a calibrator's points, and one
upload from a cold power-on. docs/technician.md, "Acceptance check of a new board".

The board must be in its maintenance window after a power-on (so the upload starts cold:
the clock and RTC memory as after a power loss). Nothing is written on the board but what a
wake writes (and a check.json it removes); the board stays at the REPL: press reset after."""

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from mizumori_tools.device import Board, DeviceError

# Below these, a wake risks MemoryError or failed network allocations. From the firmware
# review's estimates (shared/reviews/firmware-on-esp32.md §1: a wake with upload peaks near
# 88 KB of live Python objects; Wi-Fi and mbedTLS take theirs from the IDF heap): to be
# replaced by what healthy boards measure.
MIN_PY_FREE = 32 * 1024
MIN_IDF_FREE = 20 * 1024
BATTERY_MV = (3300, 4250)  # Li-ion: empty below ~3.3 V under load, full 4.2 V
LOOP_POINTS_MA = (4.0, 12.0, 20.0)
# How far a healthy loop reading may be off, per converter (firmware config loop_converter):
# the ESP32 ADC's calibrated error, +-60 mV at 11 dB (ESP32 datasheet, ADC calibration
# results; the sim board draws each board's error within it), across the shunt; the
# ADS1115's gain error (0.15 % + 0.1 % between ranges, TI SBAS444) and the shunt's 0.1 %.
ADC_ERROR_MV = 60
ADS1115_ERROR = 0.0035


def loop_tolerance_ma(got: dict[str, Any]) -> float:
    if got.get("converter") == "ads1115":
        return ADS1115_ERROR * got["ua"] / 1000 + 0.01
    return ADC_ERROR_MV / got["shunt_ohm"]

Ask = Callable[[str], None]  # shows a prompt and returns when the technician is ready


@dataclass
class Row:
    check: str
    result: str
    status: str  # PASS, FAIL, INFO (nothing to judge) or SKIP (not applicable)
    advice: str = ""


# --- on the board (MicroPython) ---

_MEM = """
import gc, json, sys
def _mz_mem():
    gc.collect()
    m = {'py_free': gc.mem_free(), 'py_used': gc.mem_alloc()}
    try:
        import esp32
    except ImportError:
        return m
    h = esp32.idf_heap_info(esp32.HEAP_DATA)
    m['idf_free'] = sum(x[1] for x in h)
    m['idf_largest'] = max(x[2] for x in h)
    return m
"""

# The REPL a technician reaches has run main.py, which imported part of the station package
# (its guard and the board): unload it to see the heap as at boot (the names it interned
# stay, so a little is counted as used). The virtual board's hardware (station.hw.sim and
# its part models, station.hw.sim_*) is its ROM, not the flash's (virtual_station.py): it
# stays.
_START = _MEM + """
for _k in [k for k in sys.modules if k == 'station' or k.startswith('station.')]:
    if not _k.startswith('station.hw.sim'):
        del sys.modules[_k]
globals().pop('app', None)
out = {'heap_boot': _mz_mem(), 'machine': getattr(sys.implementation, '_machine', '?'),
       'micropython': '.'.join(str(x) for x in sys.implementation.version[:3]),
       'code_in_flash': '/rom' in sys.path}
try:
    with open('fs_reformatted') as f:
        out['marker'] = json.loads(f.read())
except (OSError, ValueError):
    out['marker'] = None
try:
    from station import VERSION, app, config
    from station.hw import default_board
    out['heap_app'] = _mz_mem()
    b = default_board()
    cfg, errors = config.load()
    out.update(version=VERSION, board=b.name, reset_cause=b.reset_cause(), errors=errors,
               level_sensor=cfg['level_sensor'], env_sensor=cfg['env_sensor'],
               radio_min_mv=cfg.get('radio_min_mv', 0), pins=config.pins(cfg))
except Exception as e:  # MemoryError included: the application does not fit
    out['app_error'] = repr(e)
print(json.dumps(out))
"""

_SENSORS = """
import json
from station import config, sensors
from station.hw import default_board
b = default_board()
cfg, _ = config.load()
pins = config.pins(cfg)
out = {}
on = getattr(sensors, 'rail_on', None)
if on:
    try:
        on(b, cfg, pins)
        out['rail'] = 'on'
    except Exception as e:
        out['rail'] = {'error': repr(e)}
try:
    kind, s = sensors.level_sensor(b, cfg, pins)
    good, faults = [], []
    for _ in range(5):
        try:
            good.append(s.read_mm())
        except Exception as e:
            faults.append([getattr(e, 'flag', 0), str(e)])
            if getattr(e, 'flag', 0) == 0x10:  # sensor_missing: no use asking again
                break
    out['level'] = {'kind': kind, 'mm': good, 'faults': faults}
except Exception as e:
    out['level'] = {'error': repr(e)}
if cfg['env_sensor']:
    try:
        out['env'] = list(sensors.env_sensor(b, pins).read())
    except Exception as e:
        out['env'] = {'error': str(e) or repr(e)}
try:
    out['battery_mv'] = sensors.battery(b, cfg, pins).read_mv()
except Exception as e:
    out['battery_mv'] = {'error': repr(e)}
try:
    out['rain'] = b.pin_in(pins['rain'], pull_up=True).value()
except Exception as e:
    out['rain'] = {'error': repr(e)}
if on:
    sensors.rail_off(b, pins)
print(json.dumps(out))
"""

_LOOP = """
import json
from station import config, sensors
from station.hw import default_board
b = default_board()
cfg, _ = config.load()
pins = config.pins(cfg)
on = getattr(sensors, 'rail_on', None)
if on:
    on(b, dict(cfg, level_sensor='current_loop'), pins)  # the loop's boost and warm-up
try:
    _, loop = sensors.level_sensor(b, dict(cfg, level_sensor='current_loop'), pins)
    r = sorted(loop.read_ua() for _ in range(5))  # through the converter the station uses
    out = {'ua': r[2], 'shunt_ohm': cfg['loop_shunt_ohm'],
           'converter': cfg.get('loop_converter', 'internal')}
except Exception as e:
    out = {'error': repr(e)}
if on:
    sensors.rail_off(b, pins)
print(json.dumps(out))
"""

# One wake as after the power-on (app.main on this board, its deep sleep caught, a watchdog
# that can be stopped: machine.WDT cannot, it would reset the board under the technician),
# then Wi-Fi and a TLS handshake to the provisioned server on the same board, with the
# clock the wake left.
_WAKE = _MEM + """
from station import app, config, http, state, uplink
from station.flashqueue import FlashQueue
from station.hw import default_board
b = default_board()
out = {'reset_cause': b.reset_cause(), 'queue_before': FlashQueue('queue').depth()}
class _Slept(BaseException):
    pass
def _sleep(ms, rain_pin=None):
    raise _Slept(ms)
class _Dog:
    def feed(self):
        pass
b.deepsleep = _sleep
b.watchdog = lambda ms: _Dog()
cfg, _ = config.load()
cfg['upload_every'] = 1
cfg['maintenance_s'] = 0
config.save(cfg, 'check.json')
try:
    app.main(b, cfg_path='check.json')
    out['slept_ms'] = None
except _Slept as e:
    out['slept_ms'] = e.args[0]
except Exception as e:
    out['wake_error'] = repr(e)
try:
    import os
    os.remove('check.json')
except OSError:
    pass
st = state.load(b)
out.update(uplink=st['uplink'], err=st['err'], queue_after=FlashQueue('queue').depth(),
           clock=b.time() + b.EPOCH_OFFSET)
creds = uplink.load_credentials()
if creds and creds.get('server') and 'wifi' in cfg['transport']:
    try:
        from station import wifi
        up = wifi.connect(b.wifi(), creds.get('wifi'), st, b)
        out['wifi'] = {'up': up, 'rssi': b.rssi() if up else None, 'heap': _mz_mem()}
    except Exception as e:
        out['wifi'] = {'error': repr(e)}
    scheme, host, port, _ = http.split_url(creds['server'])
    if scheme != 'https':
        out['tls'] = {'skip': creds['server']}
    elif not creds.get('ca'):
        out['tls'] = {'error': 'no CA certificate on the board'}
    elif out['wifi'].get('up'):
        try:
            s = b.net_tls(b.net_connect(host, port, 15), host, http.ca_der(creds['ca']))
            out['tls'] = {'heap': _mz_mem()}
            s.close()
        except Exception as e:
            out['tls'] = {'error': str(e) or repr(e)}
    b.wifi().active(False)
print(json.dumps(out))
"""


# --- on the host ---

def _kb(n: int) -> str:
    return f"{n / 1024:.1f} KB"


def heap_row(stage: str, mem: dict[str, int]) -> Row:
    idf = (f"IDF {_kb(mem['idf_free'])} free, largest block {_kb(mem['idf_largest'])}"
           if "idf_free" in mem else "IDF n/a (no esp32 module: a virtual board)")
    result = f"Python {_kb(mem['py_free'])} free ({_kb(mem['py_used'])} used); {idf}"
    low = []
    if mem["py_free"] < MIN_PY_FREE:
        low.append(f"Python heap under {_kb(MIN_PY_FREE)}")
    if mem.get("idf_free", MIN_IDF_FREE) < MIN_IDF_FREE:
        low.append(f"IDF heap under {_kb(MIN_IDF_FREE)}")
    if low:
        return Row(f"heap: {stage}", result, "FAIL",
                   f"{' and '.join(low)}: a wake may fail with MemoryError or a failed network "
                   "allocation. Report the board and these figures to the firmware team.")
    return Row(f"heap: {stage}", result, "PASS")


def _level_advice(name: str, flag: int, detail: str, pins: dict[str, int]) -> str:
    if flag == 0x10 and name == "current_loop":
        return ("The 4-20 mA loop is open: check the transducer's two wires, the loop supply "
                f"(boost converter on the sensor rail) and the shunt on GPIO {pins['loop_adc']}.")
    if flag == 0x10 and detail == "garbage":
        return ("The level sensor sends bytes but no valid frame: check its cable for a loose "
                "or swapped wire (sensor TX to the board's RX) and interference.")
    if flag == 0x10:
        where = (f"UART{pins['ultrasonic_uart']}: board TX {pins['ultrasonic_tx']}, RX "
                 f"{pins['ultrasonic_rx']}" if name == "a02yyuw" else
                 f"trigger GPIO {pins['jsn_trig']}, echo GPIO {pins['jsn_echo']}")
        return (f"The level sensor does not answer: check its cable and plug ({where}), its "
                f"supply from the sensor rail (GPIO {pins['sensor_power']}), and that "
                f"level_sensor ({name}) in the configuration is the sensor fitted.")
    if flag == 0x01:
        return ("The sensor answers but hears no echo: it must point straight down at open "
                "water with nothing in its beam, at 3 cm to 4.5 m.")
    if flag == 0x02:
        return ("The sensor reads outside its range: check the distance to the water and the "
                "mounting (A02YYUW 30-4500 mm).")
    return f"The level sensor fails ({detail}): check its cable, supply and configuration."


def sensor_rows(s: dict[str, Any], info: dict[str, Any]) -> list[Row]:
    pins, name = info["pins"], info["level_sensor"]
    rows = []
    rail = s.get("rail")
    if rail is None:
        rows.append(Row("sensor rail", "not switched", "SKIP",
                        "This firmware has no sensors.rail_on: the sensors were read without "
                        "switching the rail. Flash the current firmware."))
    elif rail == "on":
        rows.append(Row("sensor rail", f"on (GPIO {pins['sensor_power']}), warmed up", "PASS"))
    else:
        rows.append(Row("sensor rail", rail["error"], "FAIL",
                        f"Switching the rail failed: check GPIO {pins['sensor_power']} and the "
                        "load switch."))
    level = s["level"]
    if "error" in level:
        rows.append(Row(f"level sensor ({name})", level["error"], "FAIL",
                        "The level sensor could not be set up: check level_sensor and pins in "
                        "the configuration."))
    else:
        good, faults = level["mm"], level["faults"]
        what = "from the sensor face" if level["kind"] == "distance" else "above the transducer"
        if good:
            mid = sorted(good)[len(good) // 2]
            result = f"{len(good)} of {len(good) + len(faults)} samples, {mid} mm {what}"
        else:
            result = "no sample"
        if faults:
            result += "; " + ", ".join(sorted({f"{d or flag}" for flag, d in faults}))
        if len(good) >= 3:
            rows.append(Row(f"level sensor ({name})", result, "PASS"))
        else:
            flag, detail = faults[0] if faults else (0, "")
            rows.append(Row(f"level sensor ({name})", result, "FAIL",
                            _level_advice(name, flag, detail, pins)))
    if not info["env_sensor"]:
        rows.append(Row("air sensor (BME280)", "not fitted (env_sensor false)", "SKIP"))
    elif isinstance(s["env"], dict):
        rows.append(Row("air sensor (BME280)", s["env"]["error"], "FAIL",
                        f"The BME280 does not answer: check its I2C wiring (SDA GPIO "
                        f"{pins['i2c_sda']}, SCL GPIO {pins['i2c_scl']}), its address (0x76: "
                        "SDO to GND) and its supply from the sensor rail."))
    else:
        t, h, p = s["env"]
        rows.append(Row("air sensor (BME280)", f"{t:.1f} °C, {h:.0f} %, {p:.1f} hPa", "PASS"))
    mv = s["battery_mv"]
    low = max(BATTERY_MV[0], info["radio_min_mv"])
    if isinstance(mv, dict):
        rows.append(Row("battery", mv["error"], "FAIL",
                        f"The battery cannot be read: check the divider on GPIO "
                        f"{pins['battery_adc']}."))
    elif mv < low:
        rows.append(Row("battery", f"{mv} mV", "FAIL",
                        f"Under {low} mV the station keeps its radio off: charge or replace the "
                        "cells before deployment (or check the divider and battery_ratio)."))
    elif mv > BATTERY_MV[1]:
        rows.append(Row("battery", f"{mv} mV", "FAIL",
                        "More than a full Li-ion cell: check the divider's resistors and "
                        "battery_ratio in the configuration."))
    else:
        rows.append(Row("battery", f"{mv} mV", "PASS"))
    rain = s["rain"]
    if rain == 1:
        rows.append(Row("rain gauge at rest", "open (the pin reads high)", "PASS"))
    else:
        rows.append(Row("rain gauge at rest", "closed (the pin reads low)"
                        if rain == 0 else rain["error"], "FAIL",
                        f"The reed switch on GPIO {pins['rain']} is closed: the board would wake "
                        "again at once (ext0). Check that the bucket rests off the magnet, and "
                        "the cable and connector for water or a short."))
    return rows


def loop_row(ma: float, got: dict[str, Any], tolerance_ma: float | None = None) -> Row:
    """tolerance_ma: the technician's, else the converter's datasheet error."""
    name = f"loop at {ma:.2f} mA"
    if "error" in got:
        return Row(name, got["error"], "FAIL", "The loop cannot be read: check the shunt input.")
    if tolerance_ma is None:
        tolerance_ma = loop_tolerance_ma(got)
    read = got["ua"] / 1000
    result = f"reads {read:.3f} mA ({read - ma:+.3f})"
    if abs(read - ma) <= tolerance_ma:
        return Row(name, result, "PASS")
    if read < 3.6:
        why = ("The loop is open: check the calibrator's or transducer's wires and the loop "
               "supply on the sensor rail.")
    elif got["ua"] * got["shunt_ohm"] >= 2_400_000:
        why = (f"{read:.2f} mA across {got['shunt_ohm']} ohm is at the ESP32 ADC's 2.45 V limit: "
               "the shunt is too large (100 ohm keeps 21.5 mA at 2.15 V).")
    else:
        why = (f"More than {tolerance_ma:.2f} mA off: check the calibrator's setting, the shunt "
               "(loop_shunt_ohm) and, for a transducer, loop_zero_ua.")
    return Row(name, result, "FAIL", why)


def upload_row(w: dict[str, Any]) -> Row:
    name = "upload after a cold power-on"
    clock = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(w.get("clock", 0)))
    if "wake_error" in w:
        return Row(name, w["wake_error"], "FAIL",
                   "The wake itself failed: report it to the firmware team with `device info`.")
    parts = [f"{w['queue_after']} readings left", f"clock {clock}"]
    if w["queue_before"]:
        parts.append(f"{w['queue_before']} queued before (not the empty-queue case)")
    result = ", ".join(parts)
    if w["reset_cause"] != "power_on":
        return Row(name, result, "FAIL",
                   f"Not a cold start (reset cause {w['reset_cause']}): power-cycle the board "
                   "(battery and USB out, then in) and run the check within the window.")
    if w["uplink"] or w["queue_after"] or w["slept_ms"] is None:
        why = w["uplink"] or w["err"] or "the readings were not acknowledged"
        return Row(name, f"{result}; {why}", "FAIL",
                   "The board could not upload after a cold start. Check the Wi-Fi (SSID, "
                   "password, signal), the server URL and CA certificate (provision again), "
                   "and whether the message is about the certificate's dates: the clock after a "
                   "power-on.")
    return Row(name, result + ", last upload ok", "PASS")


def network_rows(w: dict[str, Any]) -> list[Row]:
    wifi = w.get("wifi")
    if wifi is None:
        return [Row("heap: Wi-Fi up", "not provisioned for Wi-Fi", "SKIP"),
                Row("heap: TLS handshake", "not provisioned for Wi-Fi", "SKIP")]
    rows = []
    if "error" in wifi or not wifi["up"]:
        rows.append(Row("heap: Wi-Fi up", wifi.get("error", "no connection"), "FAIL",
                        "Wi-Fi did not connect: check the SSID and password (provision again "
                        "with --wifi-ssid) and the signal where the board is."))
    else:
        row = heap_row("Wi-Fi up", wifi["heap"])
        row.result += f"; RSSI {wifi['rssi']} dBm"
        rows.append(row)
    tls = w.get("tls", {"error": "Wi-Fi is down"})
    if "skip" in tls:
        rows.append(Row("heap: TLS handshake", f"{tls['skip']} is not https://", "SKIP"))
    elif "error" in tls:
        rows.append(Row("heap: TLS handshake", tls["error"], "FAIL",
                        "No TLS session with the server: check its URL and the CA certificate "
                        "(provision again with --ca); a message about the certificate's dates "
                        "means the board's clock is wrong."))
    else:
        rows.append(heap_row("TLS handshake", tls["heap"]))
    return rows


def firmware_rows(info: dict[str, Any]) -> list[Row]:
    image = f"{info['machine']}, MicroPython {info['micropython']}"
    rows = [Row("firmware", f"station {info.get('version', '?')} on {image}", "INFO")]
    if "ESP32" in info["machine"] and "Mizumori" not in info["machine"]:
        rows.append(Row("firmware image", "stock MicroPython", "FAIL",
                        "A corrupt filesystem would keep this board awake until its battery "
                        "is flat: install the Mizumori image (firmware/board/README.md)."))
    if "Mizumori" in info["machine"]:  # boot.py: the slot's code image in the romfs partition
        rows.append(Row("application code", "runs in place from the romfs partition", "PASS")
                    if info.get("code_in_flash") else
                    Row("application code", "from the slot's .mpy files (heap: ~16 KiB more)",
                        "INFO", "The first boot after flashing or an update copies the code "
                        "image; from the next wake it normally runs from flash. If this "
                        "stays so, `mizumori device console` shows boot.py's reason after a "
                        "reset."))
    marker = info.get("marker")
    if marker:
        rows.append(Row("filesystem", f"formatted at boot ({marker.get('why')})", "INFO",
                        "The image formatted an unreadable filesystem: what it held was lost. "
                        "If it happens again, replace the board."))
    for e in info.get("errors", []):
        rows.append(Row("configuration", e, "FAIL", "Provision the board again."))
    return rows


def staff_rows(level: dict[str, Any], staff: int, tolerance_mm: int) -> list[Row]:
    """The commissioning check: the level the firmware computes (calibration applied)
    against the staff gauge reading the technician entered, and whether that level (over
    the MLIT window) is fit to judge or calibrate with (device.window_problems)."""
    from mizumori_tools.device import staff_check, window_problems

    ok, said = staff_check(level.get("level_mm"), staff, tolerance_mm, level.get("window"))
    problems = window_problems(level) if level.get("level_mm") is not None else []
    fit = [Row("staff gauge window", "; ".join(problems), "FAIL",
               "Do not calibrate with this level: fix what it says, then check again")
           ] if problems else []
    if ok:
        return [Row("staff gauge", said, "PASS"), *fit]
    return [Row("staff gauge", said, "FAIL",
                "Read the staff gauge again (to the cm, at the same moment); if it holds, "
                "calibrate: mizumori device calibrate --port … --staff-gauge "
                f"{staff / 1000:.2f} (and check mount_mm, and that the beam sees only water: "
                "hardware/installation.md)"), *fit]


def run(port: str, loop_points: list[float] | None = None,
        tolerance_ma: float | None = None, ask: Ask | None = None,
        staff_mm: int | None = None, staff_tolerance_mm: int = 20) -> list[Row]:
    """The table, for the board on port (in its maintenance window after a power-on).
    loop_points: mA to check the loop at (default 4, 12, 20 on a current_loop station);
    ask: shows a prompt and waits (None: measure at once); staff_mm: the staff gauge
    reading to compare the station's level with (fails beyond staff_tolerance_mm)."""
    board = Board(port, timeout_s=180)
    info = board.exec_json(_START)
    rows = firmware_rows(info) + [heap_row("boot", info["heap_boot"])]
    if "app_error" in info:
        return rows + [Row("heap: application imported", info["app_error"], "FAIL",
                           "The application cannot be imported on this board: report it, "
                           "with this table, to the firmware team.")]
    rows.append(heap_row("application imported", info["heap_app"]))

    def step(name: str, script: str) -> dict[str, Any] | None:
        try:
            return dict(board.exec_json(script))
        except DeviceError as e:  # an exception on the board, or it reset
            rows.append(Row(name, str(e), "FAIL", "The board stopped during this check: "
                            "report it, with this table, to the firmware team."))
            return None

    sensors = step("sensors", _SENSORS)
    if sensors is None:
        return rows
    rows += sensor_rows(sensors, info)
    if staff_mm is not None:
        from mizumori_tools.device import selftest_code

        level = step("staff gauge", selftest_code(True))  # the MLIT 20 s window
        if level is None:
            return rows
        rows += staff_rows(level, staff_mm, staff_tolerance_mm)
    if loop_points is None and info["level_sensor"] == "current_loop":
        loop_points = list(LOOP_POINTS_MA)
    for ma in loop_points or []:
        if ask:
            ask(f"Set the loop calibrator to {ma:.2f} mA (in place of the transducer), then "
                "press Enter")
        got = step(f"loop at {ma:.2f} mA", _LOOP)
        if got is None:
            return rows
        rows.append(loop_row(ma, got, tolerance_ma))
    wake = step("upload after a cold power-on", _WAKE)
    if wake is not None:
        rows.append(upload_row(wake))
        rows += network_rows(wake)
    return rows


def table(rows: list[Row]) -> str:
    width = max(len(r.check) for r in rows)
    lines = []
    for r in rows:
        lines.append(f"  {r.status:4s}  {r.check:{width}s}  {r.result}")
        if r.advice:
            lines.append(f"  {'':4s}  {'':{width}s}  -> {r.advice}")
    failed = sum(r.status == "FAIL" for r in rows)
    lines.append(f"{failed} check(s) failed: see the arrows." if failed else
                 "All checks passed. Press reset (or power-cycle) to start measuring.")
    return "\n".join(lines)


def cli(port: str, loop_points: str | None, tolerance_ma: float | None, yes: bool,
        as_json: bool, staff_mm: int | None = None, staff_tolerance_mm: int = 20) -> int:
    """`mizumori device check`: 0 when every check passed, 1 when one failed."""
    try:
        points = [float(x) for x in loop_points.split(",")] if loop_points else None
    except ValueError:
        raise DeviceError("--loop-points takes currents in mA separated by commas, "
                          "e.g. 4,12,20") from None

    def prompt(text: str) -> None:
        try:
            input(text + ": ")
        except EOFError:
            raise DeviceError("no answer to the prompt: give --yes to measure at once") from None

    rows = run(port, points, tolerance_ma, None if yes else prompt, staff_mm,
               staff_tolerance_mm)
    if as_json:
        print(json.dumps({"passed": not any(r.status == "FAIL" for r in rows),
                          "checks": [asdict(r) for r in rows]}, ensure_ascii=False))
    else:
        print(table(rows))
    return 1 if any(r.status == "FAIL" for r in rows) else 0
