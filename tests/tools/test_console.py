"""`mizumori device console` (issue 18, the technician's tools): the station's lines decoded
(the level with its unit, the flags by name), no MicroPython banner, prompt or ROM
bootloader noise between wakes, everything with --raw; on a canned byte stream and on the
rig."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from mizumori_tools.console import Decoder, decode_line
from mizumori_tools.rig import SerialRig
from mizumori_tools.virtual import VirtualStation

# What the rig's board printed over five wakes, as read from its port (its banner and
# prompt at each sleep; the fourth went to sleep in the middle of its banner).
RIG_STREAM = (
    b'mizumori: maintenance window 1 s, Ctrl-C for the REPL\n'
    b'mizumori: seq 1 level 1801 flags 128 next 60 s\n'
    b'MicroPython 9458e3a23f on 2026-07-05; linux [GCC 14.2.1] version\r\n'
    b'Type "help()" for more information.\r\n>>> '
    b'mizumori: seq 2 level 1800 flags 128 next 60 s\n'
    b'MicroPython 9458e3a23f on 2026-07-05; linux [GCC 14.2.1] version\r\n'
    b'Type "help()" for more information.\r\n>>> '
    b'mizumori: seq 3 level 1801 flags 128 next 60 s\n'
    b'MicroPython 9458e3a23f on 2026-07-05'
    b'mizumori: seq 4 level 1800 flags 160 next 120 s\n'
    b'MicroPython 9458e3a23f on 2026-07-05; linux [GCC 14.2.1] version\r\n'
    b'Type "help()" for more information.\r\n>>> '
    b'mizumori: seq 5 level None flags 17 next 600 s\n'
    b'MicroPython 9458e3a23f on 2026-07-05; linux [GCC 14.2.1] version\r\n'
    b'Type "help()" for more information.\r\n>>> '
)

# A real ESP32 waking from deep sleep (ROM bootloader at 115200), then a brownout restart.
ESP32_STREAM = (
    b"ets Jul 29 2019 12:21:46\r\n\r\n"
    b"rst:0x5 (DEEPSLEEP_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
    b"configsip: 0, SPIWP:0xee\r\n"
    b"clk_drv:0x00,q_drv:0x00,d_drv:0x00,cs0_drv:0x00,hd_drv:0x00,wp_drv:0x00\r\n"
    b"mode:DIO, clock div:2\r\nload:0x3fff0030,len:4728\r\nho 0 tail 12 room 4\r\n"
    b"load:0x40078000,len:14888\r\nload:0x40080400,len:3368\r\nentry 0x400805cc\r\n"
    b"mizumori: seq 431 level 2250 flags 32 next 120 s\r\n"
    b"ets Jul 29 2019 12:21:46\r\n\r\n"
    b"rst:0xf (RTCWDT_BROWN_OUT_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
    b"entry 0x400805cc\r\n"
    b"mizumori: maintenance window 5 s, Ctrl-C for the REPL\r\n"
    b"MPY: soft reboot\r\n"
    b"Traceback (most recent call last):\r\n"
    b'  File "main.py", line 20, in <module>\r\n'
    b"OSError: [Errno 5] EIO\r\n"
)


def decoded(stream: bytes, chunk: int) -> list[str]:
    """The console's lines for a stream arriving `chunk` bytes at a time, idle in between
    (the worst case for lines cut short), without their time stamps."""
    d = Decoder(clock=lambda: 0)
    out = b""
    for i in range(0, len(stream), chunk):
        out += d.feed(stream[i:i + chunk])
        out += d.idle()
    stamp = time.strftime("%H:%M:%S", time.localtime(0)) + "  "
    lines = out.decode().splitlines()
    assert all(line.startswith(stamp) for line in lines), lines
    return [line[len(stamp):] for line in lines]


def test_the_rig_stream_decoded_without_banners() -> None:
    for chunk in (len(RIG_STREAM), 1, 7, 64):
        assert decoded(RIG_STREAM, chunk) == [
            "mizumori: maintenance window 1 s, Ctrl-C for the REPL",
            "reading 1: water level 1.801 m (1801 mm above the station datum); flags: "
            "clock_unsynced (the clock has not been set by the server yet); next wake in 60 s",
            "reading 2: water level 1.800 m (1800 mm above the station datum); flags: "
            "clock_unsynced (the clock has not been set by the server yet); next wake in 60 s",
            "reading 3: water level 1.801 m (1801 mm above the station datum); flags: "
            "clock_unsynced (the clock has not been set by the server yet); next wake in 60 s",
            "reading 4: water level 1.800 m (1800 mm above the station datum); flags: "
            "flood_mode (reporting faster), clock_unsynced (the clock has not been set by the "
            "server yet); next wake in 2 min",
            "reading 5: no water level (no good sample); flags: no_echo (nothing under the "
            "sensor), sensor_missing (the level sensor does not answer); next wake in 10 min",
        ], chunk


def test_an_esp32_wake_without_its_bootloader_lines() -> None:
    assert decoded(ESP32_STREAM, 5) == [
        "reading 431: water level 2.250 m (2250 mm above the station datum); flags: "
        "flood_mode (reporting faster); next wake in 2 min",
        "the board restarted: brownout: the supply dipped (battery, connector, solar "
        "regulator) (RTCWDT_BROWN_OUT_RESET)",
        "mizumori: maintenance window 5 s, Ctrl-C for the REPL",
        "Traceback (most recent call last):",
        '  File "main.py", line 20, in <module>',
        "OSError: [Errno 5] EIO",
    ]


def test_raw_shows_every_byte() -> None:
    d = Decoder(raw=True)
    assert b"".join(d.feed(RIG_STREAM[i:i + 9]) + d.idle()
                    for i in range(0, len(RIG_STREAM), 9)) == RIG_STREAM


def test_typing_shows_the_repl_until_the_board_restarts() -> None:
    d = Decoder(clock=lambda: 0)
    out = d.feed(RIG_STREAM[:RIG_STREAM.index(b">>> ") + 4])
    assert b"MicroPython" not in out and d.idle() == b""  # the prompt is held back
    assert d.typed() == b">>> "  # the technician typed: the prompt they type at
    assert d.feed(b"1+1\r\n2\r\n>>> ") == b"1+1\r\n2\r\n>>> "
    assert d.feed(b"\r\nmizumori: maintenance window 5 s, Ctrl-C for the REPL\r\n") \
        .endswith(b"maintenance window 5 s, Ctrl-C for the REPL\r\n")  # shown as it came
    later = d.feed(b"mizumori: seq 9 level 1200 flags 0 next 600 s\r\n"
                   b"MicroPython 1.29.0 on 2026-07-05; linux version\r\n>>> ").decode()
    assert "reading 9: water level 1.200 m" in later and "flags: none" in later
    assert "MicroPython" not in later  # decoded again since it restarted


def test_other_lines_pass_unchanged() -> None:
    assert decode_line("boot.py: OSError(2,)") == "boot.py: OSError(2,)"
    assert decode_line(">>> ") is None and decode_line("") is None
    assert decode_line("mizumori: seq 2 level 1800 flags 256 next 7260 s") == (
        "reading 2: water level 1.800 m (1800 mm above the station datum); flags: unknown "
        "bits 0x100; next wake in 2 h 1 min")


# --- on the rig ---------------------------------------------------------------------------------

def test_console_on_the_rig(tmp_path: Path) -> None:
    """The real console on the rig's port through wakes: decoded readings, no banner or
    prompt; --raw shows them; SIGTERM ends it with exit status 0."""
    station = VirtualStation(tmp_path / "flash")
    (station.flash / "config.json").write_text(json.dumps({"maintenance_s": 0,
                                                           "interval_normal_s": 60}))
    rig = SerialRig(station, tmp_path / "port", world=lambda: {"level_mm": 1800,
                                                               "realtime": True},
                    time_scale=60, run_from_flash=False)
    try:
        rig.start()
        outputs = {}
        for mode in ((), ("--raw",)):
            con = subprocess.Popen(
                [sys.executable, "-m", "mizumori_tools.cli", "device", "console", "--port",
                 str(rig.port), *mode], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
            assert con.stdout is not None
            os.set_blocking(con.stdout.fileno(), False)
            out = b""
            deadline = time.monotonic() + 40
            while out.count(b"seq ") + out.count(b"reading ") < 3 \
                    and time.monotonic() < deadline and con.poll() is None:
                out += con.stdout.read() or b""
                time.sleep(0.1)
            time.sleep(0.5)  # what follows the third reading (a banner on the rig)
            out += con.stdout.read() or b""
            con.send_signal(signal.SIGTERM)
            rest, err = con.communicate(timeout=10)
            assert con.returncode == 0, err
            outputs[mode] = (out + (rest or b"")).decode()
            assert "Traceback" not in err.decode()
        text = outputs[()]
        readings = re.findall(r"^\d\d:\d\d:\d\d  reading \d+: water level (1\.\d{3}) m "
                              r"\(\d+ mm above the station datum\); flags: (.*); next wake "
                              r"in 60 s$", text, re.M)
        assert len(readings) >= 3, text
        assert all(abs(float(level) - 1.8) < 0.01 for level, _ in readings), text
        assert all(flags.startswith("clock_unsynced (") for _, flags in readings), text
        assert "MicroPython" not in text and ">>>" not in text and "help()" not in text
        raw = outputs[("--raw",)]
        # --raw shows the banner too (cut short when the board sleeps mid-line, on a busy
        # host before its ">>> ")
        assert "mizumori: seq" in raw and "MicroPython" in raw, raw
    finally:
        rig.stop()
