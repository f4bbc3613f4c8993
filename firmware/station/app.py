# What main.py runs at every wake: a maintenance window after power-on (so mpremote can reach
# the board), then one cycle under a watchdog, then deep sleep until the next reading.
import time

from station import VERSION, config, cycle, lorawan, ota, uplink
from station import state as state_mod
from station.flashqueue import FlashQueue

QUEUE_DIR = "queue"


def maintenance_window(board, seconds):
    """True when someone pressed Ctrl-C (mpremote does): stay awake in the REPL."""
    print("mizumori: maintenance window %d s, Ctrl-C for the REPL" % seconds)
    try:
        for _ in range(seconds * 10):
            time.sleep_ms(100)
    except KeyboardInterrupt:
        print("mizumori: maintenance mode, station loop stopped")
        return True
    return False


def update(board, creds, st, reply, result, wdt):
    """After a successful upload: confirm a trial, take an offer, report what changed, and
    advance a pending update (not during a flood: the station's job comes first).
    True when an update was installed and the station must reboot."""
    now = board.time()
    ota.accept(reply.get("ota"), now)
    ota.confirm(now)
    events = ota.pending_events()
    if events or st["fw_reported"] != VERSION:
        if uplink.report_ota(creds, st, VERSION, ota.running_slot(), events):
            ota.events_sent(len(events))
            st["fw_reported"] = VERSION
    if result["flood"]:
        return False
    return ota.work(board, creds, result["battery_mv"], now, wdt.feed)


def deliver(board, cfg, cfg_path, pins, creds, st, queue, cause):
    """Send the queue over the configured transports in order of preference, the next when
    one fails: the fleet server's reply over Wi-Fi, {} after LoRaWAN uplinks (the network
    server answers nothing), None when every transport failed."""
    for name in cfg["transport"].split(","):
        if name == "wifi" and creds.get("server"):
            reply = uplink.send(board, cfg, cfg_path, creds, st, queue, cause, board.rssi())
            if reply is not None:
                return reply
        elif name == "lorawan" and creds.get("lorawan"):
            if lorawan.send(lorawan.modem(board, pins), board, cfg, cfg_path, creds, st,
                            queue, cause):
                return {}
    return None


def main(board=None, cfg_path=config.PATH, queue_dir=QUEUE_DIR, uploader=None,
         creds_path=uplink.CREDENTIALS):
    """One wake. Ends in board.deepsleep(); returns only for the REPL or in the sim.
    Uploads go through the Wi-Fi uplink once the station is provisioned (creds_path);
    `uploader(queue, result) -> bool` replaces it in tests."""
    if board is None:
        from station.hw import default_board

        board = default_board()
    woke = time.ticks_ms()
    cfg, cfg_errors = config.load(cfg_path)
    pins = config.pins(cfg)
    st = state_mod.load(board)
    cause = board.reset_cause()
    if cause in ("power_on", "hard") or board.service_held(pins["service"]):
        if maintenance_window(board, cfg["maintenance_s"]):
            return None
    if board.woke_by_rain():
        # A tip woke us: count it and sleep on to the scheduled wake.
        st["rain"] += 1
        state_mod.save(board, st)
        board.deepsleep(max(100, (st["next_wake"] - board.time()) * 1000), pins["rain"])
        return None
    wdt = board.watchdog(cfg["wdt_ms"])
    st["wakes"] += 1
    result = None
    reboot = False
    try:
        ota.after_boot(board.time())
        queue = FlashQueue(queue_dir, max_records=cfg["queue_max"])
        result = cycle.run(board, cfg, pins, st, queue, wdt, board.sleep_tips())
        if cfg_errors:
            st["err"] = "; ".join(cfg_errors)
        if uploader is not None:
            if result["upload"] and uploader(queue, result):
                st["since_upload"] = 0
        elif result["upload"] or ota.busy():
            creds = uplink.load_credentials(creds_path)
            if creds is not None:
                reply = deliver(board, cfg, cfg_path, pins, creds, st, queue, cause)
                if reply:
                    reboot = update(board, creds, st, reply, result, wdt)
                elif reply is not None:  # over LoRaWAN: no offers, but a trial is good
                    ota.confirm(board.time())
    except Exception as e:  # never die awake: record it and try again next wake
        st["err"] = "cycle: %r" % e
        st["next_wake"] = board.time() + cfg["interval_normal_s"]
    wdt.feed()
    state_mod.save(board, st)
    if reboot:  # into the trial of the update just installed (boot.py picks its slot)
        print("mizumori: update installed, rebooting into its trial")
        board.deepsleep(1000, pins["rain"])
        return result
    if result is not None:
        print("mizumori: seq %d level %s flags %s next %d s" % (
            result["seq"], result["level_mm"], result["flags"], result["interval_s"]))
    awake_ms = time.ticks_diff(time.ticks_ms(), woke)
    board.deepsleep(max(1000, (st["next_wake"] - board.time()) * 1000 - awake_ms),
                    pins["rain"])
    return result
