# What main.py runs at every wake, after station.guard's maintenance window: one cycle under
# a watchdog, the radio within a deadline, deep sleep until the next reading. Whatever
# happens, the state is saved before any radio work and the board ends asleep.
#
# RAM (docs/firmware.md, "RAM budget"): a module is imported by the function that uses it, on
# the wakes that use it. Every wake needs the cycle; the upload (uplink, http, wifi, HMAC)
# only wakes that send, LoRaWAN only its transport, and the update's installer with SHA-512
# and Ed25519 (station.ota_install) only the wake that works on an offer. A module imported
# stays in RAM for the rest of the wake: nothing here imports at module level what a plain
# wake does not run. On MicroPython, what a wake is done with is also let go before the next
# heavy part (release()): the cycle's code (drivers, filter, schedule) before the radio, the
# upload's before the update's installer.
import sys
import time

from station import VERSION, fsutil, running_slot
from station import state as state_mod
from station.flashqueue import FlashQueue

QUEUE_DIR = "queue"
CREDENTIALS = "secrets.json"  # = uplink.CREDENTIALS, without importing the uplink
CONFIG = "config.json"  # = config.PATH: the settings module is released after the cycle
CLOCK = "clock.json"  # = clock.PATH: clock.py comes in only where the clock is set
FS_MARKER = "fs_reformatted"  # written by the firmware image's _boot.py (firmware/board/)
# Where an update leaves news (= ota.POINTER, OFFER, EVENTS, TRUST_NEW): without any, a wake
# does not import ota at all (its names would stay in the heap through the upload).
OTA_FILES = ("slot.json", "ota/offer.json", "ota/events.json", "ota/trust.pem")
# The collector runs after every GC_THRESHOLD bytes allocated (gc.threshold), not only when
# the heap is full: the wake's short-lived objects are freed before its modules and data
# land beyond them, so they pack into less heap (docs/firmware.md, RAM budget: 109 -> 104
# KiB for a wake with an upload, with the sim board). On the ESP32 a full heap is not an
# error but grows into the RAM Wi-Fi and TLS need.
GC_THRESHOLD = 4096
# The code only the cycle runs: released before the radio work (the rain gauge's driver and
# station.drivers, with SensorFault, stay). The settings' defaults and checks (config.py)
# go as soon as the settings are read (an upload that brings a config change imports it
# again).
CYCLE_CODE = ("station.cycle", "station.schedule", "station.processing", "station.sensors",
              "station.drivers.a02yyuw", "station.drivers.jsnsr04t",
              "station.drivers.current_loop", "station.drivers.ads1115",
              "station.drivers.bme280", "station.drivers.battery",
              "station.drivers.pcf8583", "station.rainwake",  # read before the cycle
              "station.codec")  # a reading's encoders and flags (the radios use batch)
# The upload's code that the update's installer does not use (it has its own HTTP GETs; a
# config change in the reply imported config again, a clock set from it clock.py).
UPLOAD_CODE = ("station.uplink", "station.wifi", "station.hmac_sha256", "station.signed",
               "station.timesync", "station.config", "station.batch", "station.clock")


def release(names):
    """Let go of modules this wake is done with: MicroPython keeps an imported module's
    bytecode, constants and functions in the GC heap for as long as sys.modules (and the
    parent package's attribute) refer to it (docs/firmware.md, RAM budget). A later import
    loads it again. Only on MicroPython: the host's tests keep their module objects."""
    if sys.implementation.name != "micropython":
        return
    import gc

    for name in names:
        if sys.modules.pop(name, None) is not None:
            parent, _, leaf = name.rpartition(".")
            mod = sys.modules.get(parent)
            if mod is not None and leaf in mod.__dict__:
                delattr(mod, leaf)
    gc.collect()


def update(board, creds, st, reply, result, wdt, deadline, news):
    """After a successful upload: confirm a trial, take an offer, report what changed, and
    advance a pending update (not during a flood: the station's job comes first).
    True when an update was installed and the station must reboot. news: an update may
    have some (_ota_news); without it or an offer in the reply, ota is not imported.
    The upload's code and ota's bookkeeping are never in the heap together (each is let go
    before the other comes in): the report needs the upload's, the installer neither."""
    release(UPLOAD_CODE)
    now = board.time()
    offer = reply.get("ota")
    news = news or offer
    events = []
    if news:
        _call("ota", "accept", offer, now)
        _call("ota", "confirm", now)
        events = _call("ota", "pending_events")
        release(("station.ota",))
    if time.ticks_diff(deadline, board.ticks_ms()) <= 0:
        return False  # the radio time is used up: report and update at a later wake
    if events or st["fw_reported"] != VERSION or st["err_reported"] != st["err"]:
        sent = _call("signed", "report_ota", board, creds, st, VERSION, running_slot(),
                     events, wdt.feed)
        release(UPLOAD_CODE)
        if sent and events:
            _call("ota", "events_sent", len(events))
    events = None
    if not news or result["flood"] or time.ticks_diff(deadline, board.ticks_ms()) <= 0:
        return False
    # the installer, SHA-512 and Ed25519 come in here
    return _call("ota", "work", board, creds, result["battery_mv"], now, wdt.feed)


def deliver(board, cfg, cfg_path, pins, creds, st, queue, cause, wdt, deadline, clock_path,
            gauge=None):
    """Send the queue over the configured transports in order of preference, the next when
    one fails: the fleet server's reply over Wi-Fi, {} after LoRaWAN uplinks (the network
    server answers nothing), None when every transport failed. gauge: the rain gauge, for
    the tips in the LoRaWAN module's light sleeps (lorawan.modem)."""
    for name in cfg["transport"].split(","):
        if name == "wifi" and creds.get("server"):
            from station import uplink

            reply = uplink.send(board, cfg, cfg_path, creds, st, queue, cause, wdt.feed,
                                deadline, clock_path)
            if reply is not None:
                return reply
        elif name == "lorawan" and creds.get("lorawan"):
            from station import lorawan

            if lorawan.send(lorawan.modem(board, pins, wdt.feed, gauge), board, cfg, cfg_path,
                            creds, st, queue, cause, clock_path, deadline):
                return {}
    return None


def radio(board, cfg, cfg_path, pins, st, queue, result, cause, wdt, creds_path, clock_path,
          news, gauge=None):
    """Upload, then updates, within cfg["radio_budget_s"]. True when an update was
    installed and the board must reboot into it. news: an update may have some (_ota_news);
    gauge: the rain gauge (deliver)."""
    creds = _call("uplink", "load_credentials", creds_path)
    if creds is None:
        return False
    battery = result["battery_mv"]
    if battery is not None and battery < cfg["radio_min_mv"]:
        # A sagging cell (a brown-out reads as power-on): Wi-Fi's 300-400 mA peaks would
        # reset the board again. Keep the readings in flash and try at a later wake.
        st["uplink"] = "battery %d mV below %d mV: radio and updates skipped" % (
            battery, cfg["radio_min_mv"])
        return False
    deadline = time.ticks_add(board.ticks_ms(), cfg["radio_budget_s"] * 1000)
    # Kept in RTC memory while the radio works: a reset in the middle (the watchdog, a
    # panic) then backs off like a failed upload instead of trying again at once.
    st["radio_at"] = board.time()
    state_mod.save(board, st)
    reply = deliver(board, cfg, cfg_path, pins, creds, st, queue, cause, wdt, deadline,
                    clock_path, gauge)
    st["radio_at"] = 0
    if reply:
        return update(board, creds, st, reply, result, wdt, deadline, news)
    if reply is not None:  # over LoRaWAN: no offers, but a trial is good
        # nor any error text: what earlier wakes carried (state.note_after) was in this
        # wake's err, for `info`, and goes
        st["carry"] = ""
        if news:
            _call("ota", "confirm", board.time())
    return False


def _ota_news():
    """Whether an update may have news, without importing ota: a rollback boot.py made or
    a trial (in slot.json), an offer, events not yet reported, a CA bundle to adopt.
    ota.busy() decides whether to upload for it; ota.work() adopts the bundle."""
    pointer = fsutil.read_bytes(OTA_FILES[0]) or b""
    return (b"rolled_back" in pointer or b"trial" in pointer
            or any(fsutil.exists(f) for f in OTA_FILES[1:]))


def _text(raw):
    try:
        return raw.decode()
    except ValueError:  # UnicodeError: a damaged marker
        return "(unreadable marker)"


def _beside(path, name):
    return path.rsplit("/", 1)[0] + "/" + name if "/" in path else name


# A module imported in a function that runs on (main, radio) stays in the heap whatever
# release() does: the function's frame holds it (a name set to None may linger in the VM's
# value stack, which the GC scans whole). So they call a module they let go through _call(),
# whose frame is gone when it returns.

def _call(module, name, *args):
    """station.<module>.<name>(*args), the module imported (again) here."""
    return getattr(__import__("station." + module, None, None, (name,)), name)(*args)


def _cycle(board, cfg, pins, st, queue, wdt, gauge):
    return _call("cycle", "run", board, cfg, pins, st, queue, wdt, board.sleep_tips(), gauge)


def main(board=None, cfg_path=CONFIG, queue_dir=QUEUE_DIR, uploader=None,
         creds_path=CREDENTIALS):
    """One wake. Ends in board.deepsleep() (in the sim: raises or exits). Uploads go through
    the configured transports once the station is provisioned (creds_path);
    `uploader(queue, result) -> bool` replaces them in tests. The collector's threshold is
    GC_THRESHOLD while it runs (a host's test process, whose heap is large and full of live
    objects, gets its own back)."""
    if sys.implementation.name != "micropython":
        return _wake(board, cfg_path, queue_dir, uploader, creds_path)
    import gc

    before = gc.threshold()
    gc.threshold(GC_THRESHOLD)
    try:
        return _wake(board, cfg_path, queue_dir, uploader, creds_path)
    finally:
        gc.threshold(before)


def _wake(board, cfg_path, queue_dir, uploader, creds_path):
    if board is None:
        from station.hw import default_board

        board = default_board()
    cfg, cfg_errors = _call("config", "load", cfg_path)
    pins = _call("config", "pins", cfg)
    release(("station.config",))  # its checks and defaults: done with before the cycle
    st = state_mod.load(board)
    if board.woke_by_rain():
        return _call("rainwake", "tip_wake", board, pins, st)
    wdt = board.watchdog(cfg["wdt_ms"])
    cause = board.reset_cause()
    clock_path = _beside(cfg_path, CLOCK)
    if cause != "deepsleep":
        st["reset"] = cause
        st["err_reported"] = None  # tell the server why the board reset
    if st["radio_at"]:  # the last wake was reset in the middle of its radio work
        st["radio_at"] = 0
        _call("uplink", "back_off", st, board.time(),
              "radio work cut short by a %s reset" % cause)
    st["wakes"] += 1
    counted, rain_note = _call("rainwake", "counted", board, cfg, pins, st)
    # tips while awake: the counter's, else an IRQ's (on the real board)
    gauge = None if counted else _call("sensors", "rain_gauge", board, pins)
    result = None
    reboot = False
    try:
        # ota's bookkeeping only (the installer is ota_install): report a rollback boot.py
        # made; busy: an update is in progress or has news (upload this wake); news: ota
        # may have something to do after an upload. The cycle changes neither.
        news = busy = _ota_news()
        if news:
            _call("ota", "after_boot", board.time())
            busy = _call("ota", "busy")
            release(("station.ota",))  # out of the cycle's and the upload's heap
        queue = FlashQueue(queue_dir, max_records=cfg["queue_max"], keep=cfg["queue_keep"])
        if cause == "power_on":  # the RTC and its memory are gone (a brown-out too)
            _call("clock", "after_power_loss", board, st, queue, clock_path)
        result = _cycle(board, cfg, pins, st, queue, wdt, gauge)
        release(CYCLE_CODE)  # the radio's code comes in next
        notes = cfg_errors + ([rain_note] if rain_note else [])
        if notes:  # with the cycle's own notes (a stale temperature, a noisy burst)
            st["err"] = "; ".join(notes + ([st["err"]] if st["err"] else []))
        reformatted = fsutil.read_bytes(_beside(cfg_path, FS_MARKER))
        if reformatted:  # told to the server until a report with it gets through
            st["err"] = "filesystem reformatted %s; %s" % (_text(reformatted[:60]), st["err"])
        wdt.feed()
        # Saved before any radio work: a reset during it neither counts the rain again nor
        # reuses an upload counter (uplink saves each counter it spends).
        state_mod.save(board, st)
        if uploader is not None:
            if result["upload"] and uploader(queue, result):
                st["since_upload"] = 0
        elif result["upload"] or busy:
            reboot = radio(board, cfg, cfg_path, pins, st, queue, result, cause, wdt,
                           creds_path, clock_path, news, gauge)
        if reformatted and st["err_reported"] == st["err"]:
            fsutil.remove(_beside(cfg_path, FS_MARKER))
    except Exception as e:  # never die awake: record it and try again next wake
        state_mod.note_after(st, "cycle: %r" % e)
        st["next_wake"] = board.time() + cfg["interval_normal_s"]
    board.pin_out(pins["sensor_power"], 0)  # sensors.rail_off, not imported again this late
    if gauge is not None:
        st["rain"] += gauge.take()
    st["crashes"] = 0
    wdt.feed()
    try:  # loaded again this late: whatever fails, the state is still saved below
        arm = _call("rainwake", "pin", board, pins, st)  # a switch held closed: said either way
    except Exception:  # noqa: BLE001 - e.g. no heap left to load it (nor to say more)
        arm = None
        try:
            state_mod.note_after(st, "rain wake not armed")
        except MemoryError:  # not even for that: a constant
            st["err"] = st["carry"] = "rain wake not armed"
    if counted:
        arm = None  # no wake per tip: the counter has them
    state_mod.save(board, st)
    if reboot:  # into the trial of the update just installed (boot.py picks its slot)
        print("mizumori: update installed, rebooting into its trial")
        board.deepsleep(1000, arm)
        return result
    if result is not None:
        print("mizumori: seq %d level %s flags %s next %d s" % (
            result["seq"], result["level_mm"], result["flags"], result["interval_s"]))
    board.deepsleep(max(1000, (st["next_wake"] - board.time()) * 1000), arm)
    return result
