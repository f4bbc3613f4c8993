"""LoRaWAN airtime (part of `make bench`): time on air per reading at AS923 DR2, DR3 and DR5,
readings per uplink, and what the station's schedule costs per day against the budgets a
deployment must live within. Computed with the firmware's own LoRa time-on-air formula
(firmware/station/lorawan.py) and packing rules, not measured on a radio."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "firmware"))
from station import batch, config, lorawan, schedule  # noqa: E402

DAY = 86400
FULL, LEVEL, STATUS = batch.FULL_LEN, batch.LEVEL_LEN, batch.STATUS_LEN
BUDGETS = (("TTN fair use (30 s uplink / day)", 30.0),
           ("1 % duty cycle (864 s / day)", 864.0))
TTN_DOWNLINKS = 10  # TTN fair use: downlinks (acknowledgements included) per device per day


def downlinks(interval_s: int, flood: bool) -> tuple[int, int]:
    """(probe and link-check answers, delivery reports) per day under the station's delivery
    policy (firmware/station/lorawan.py): a probe every PROBE_S, a link check a day, a report
    every REPORT_EVERY_S or every REPORT_READINGS readings sent, whichever comes first. A
    frame lost in the air adds one resend request."""
    checks = DAY // lorawan.PROBE_S[1 if flood else 0] + 1
    reports = max(DAY // lorawan.REPORT_EVERY_S, (DAY // interval_s) // lorawan.REPORT_READINGS)
    return checks, reports


def per_uplink(dr: int, readings: int) -> tuple[int, int]:
    """(readings carried, payload bytes) of one uplink of `readings` queued readings, as
    lorawan.pack sends them: full records while they fit, else level records; the status
    record when it fits too."""
    limit = lorawan.max_payload(dr)
    n = size = 0
    for _ in range(readings):
        rec = FULL if size + FULL <= limit else LEVEL
        if size + rec > limit:
            break
        size += rec
        n += 1
    if size + STATUS <= limit:
        size += STATUS
    return max(n, 1), size


def day(dr: int, interval_s: int, per_upload: int) -> tuple[int, float]:
    """(uplinks, seconds on air) per day for a reading every interval_s, uploaded every
    per_upload readings."""
    readings = DAY // interval_s
    uploads = readings // per_upload
    n, size = per_uplink(dr, per_upload)
    uplinks_per_upload = -(-per_upload // n)
    uplinks = uploads * uplinks_per_upload
    return uplinks, uplinks * lorawan.airtime_ms(size, dr) / 1000


def watch_day(dr: int) -> tuple[int, float, float]:
    """A day of the MLIT profile's watch mode (a reading every WATCH_MAX_S, one heartbeat):
    (uplinks and seconds on air when the day's readings went, seconds on air of the daily
    digest and the delivery-report request its readings call for, REPORT_READINGS)."""
    readings = DAY // schedule.WATCH_MAX_S
    uplinks, before = day(dr, schedule.WATCH_MAX_S, readings)
    ask = readings >= lorawan.REPORT_READINGS
    after = lorawan.airtime_ms(batch.DIGEST_LEN, dr) + ask * lorawan.airtime_ms(6, dr)
    return uplinks, before, after / 1000


def main() -> None:
    cfg = config.DEFAULTS
    print("LoRaWAN airtime, AS923 with dwell time (LoRa formula, coding rate 4/5)")
    for dr in (2, 3, 5):
        sf = lorawan.SPREADING[dr]
        one = lorawan.airtime_ms(LEVEL, dr)
        n, size = per_uplink(dr, 100)
        print(f"  DR{dr} (SF{sf}/125 kHz, {lorawan.max_payload(dr)} B max): one reading "
              f"{one} ms ({LEVEL} B level record); a full uplink carries {n} reading(s) "
              f"({size} B) in {lorawan.airtime_ms(size, dr)} ms = "
              f"{lorawan.airtime_ms(size, dr) / n:.0f} ms per reading")
    print("  uplinks are unconfirmed; a downlink (an empty one is "
          f"{lorawan.airtime_ms(0, 2)} ms at DR2) answers only link checks, delivery-report "
          "requests and gaps")
    schedules = (("normal, every 10 min, upload every 3", cfg["interval_normal_s"],
                  cfg["upload_every"], False),
                 ("flood, every 2 min, upload each", cfg["interval_flood_s"], 1, True))
    for name, interval, per, flood in schedules:
        checks, reports = downlinks(interval, flood)
        for dr in (2, 3, 5):
            uplinks, seconds = day(dr, interval, per)
            verdicts = ", ".join(f"{seconds / budget:.0%} of {label}"
                                 for label, budget in BUDGETS)
            default = " (the default)" if dr == cfg["lora_dr"] else ""
            print(f"  {name}, DR{dr}{default}: {uplinks} uplinks, {seconds:6.1f} s on air per "
                  f"day ({verdicts})")
        total = checks + reports
        print(f"  {name}: {total} downlinks per day ({checks} probe and link-check answers, "
              f"{reports} "
              f"delivery reports; + 1 per frame lost in the air) = "
              f"{total / TTN_DOWNLINKS:.0%} of TTN's {TTN_DOWNLINKS} (confirmed uplinks cost "
              "one acknowledgement per uplink)")
    for dr in (2, 3, 5):
        uplinks, before, after = watch_day(dr)
        print(f"  MLIT watch mode (a reading every 10 min, a heartbeat a day), DR{dr}: one "
              f"{batch.DIGEST_LEN} B digest and a report request, {after:.2f} s on air per day "
              f"({after / BUDGETS[0][1]:.0%} of TTN fair use; the day's readings: {uplinks} "
              f"uplinks, {before:.1f} s)")
    print("  Japan (ARIB STD-T108): carrier sense before each transmission and at most 4 s "
          "per transmission; AS923's 400 ms dwell time caps a DR2 uplink at 11 bytes")


if __name__ == "__main__":
    main()
