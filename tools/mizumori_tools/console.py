"""`mizumori device console`: a board's serial port as a technician wants to read it.

By default each line the station prints is decoded: a reading's line (`mizumori: seq 12
level 1801 flags 128 next 600 s`) becomes its water level with its unit, its flags by name
with what they mean, and when it wakes next; the noise between wakes is left out — the
MicroPython banner and `>>>` prompts (the rig's board prints them at each sleep, a real one
after a soft reboot), `MPY: soft reboot`, and the ESP32 ROM bootloader's lines at each wake
(a restart other than a wake from deep sleep — power-on, watchdog, brownout — is said in one
line). Every line shown gets the laptop's time. Anything else the board prints (a
traceback, the maintenance window) is shown as it is.

Keys go to the board as typed (Ctrl-C interrupts it). Once you type, the console shows the
board's output as it comes, so that you can use its REPL, until the board restarts (a wake,
a reset). `--raw` shows everything, byte for byte, from the start. Ctrl-] (or Ctrl-X) leaves.
"""

import os
import re
import select
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, BinaryIO

# The station's line for each reading (firmware/station/app.py).
READING = re.compile(r"^mizumori: seq (\d+) level (-?\d+|None) flags (\d+) next (\d+) s\s*$")
# The flags, by bit (firmware/station/codec.py FLAG_NAMES), in a few words.
FLAGS = (
    ("no_echo", "nothing under the sensor"),
    ("out_of_range", "outside level_min_mm..level_max_mm"),
    ("stuck", "the same value reading after reading"),
    ("jump", "jumped more than max_jump_mm"),
    ("sensor_missing", "the level sensor does not answer"),
    ("flood_mode", "reporting faster"),
    ("queue_dropped", "the queue was full and dropped readings"),
    ("clock_unsynced", "the clock has not been set by the server yet"),
)
# Lines of MicroPython's REPL and of the ESP32's ROM bootloader: noise between wakes.
NOISE = re.compile(
    r"^(MicroPython\b.*"  # the banner (also cut short: the board went to sleep mid-line)
    r"|Type \"help\(\)\" for more information\.?"
    r"|Use Ctrl-D to exit, Ctrl-E for paste mode"
    r"|MPY: soft reboot"
    r"|>>>\s*"
    r"|ets [A-Z][a-z]{2} +\d+ \d{4}.*"  # ROM: its build date
    r"|configsip: .*|clk_drv:.*|mode:[A-Z]+, clock div:.*|load:0x[0-9a-f]+,len:.*"
    r"|entry 0x[0-9a-f]+|ho \d+ tail \d+ room \d+|room \d+|waiting for download"
    r"|\s*)$")
ROM_RESET = re.compile(r"^rst:0x[0-9a-f]+ \((\w+)\)")
# The ESP32's reset reasons (the ROM's rst: line) other than a wake from deep sleep.
RESETS = (
    ("POWERON", "power-on"),
    ("BROWN_OUT", "brownout: the supply dipped (battery, connector, solar regulator)"),
    ("WDT", "watchdog: the firmware hung and was restarted"),
    ("SW", "software reset"),
    ("EXT", "reset (EN button)"),
)
# Lines that say the board has (re)started: the console goes back to decoding.
RESTARTED = re.compile(r"^(rst:0x|mizumori: maintenance window|mizumori: seq |ets [A-Z])")
PROMPT = re.compile(r"^(>>> ?)+")
# How the lines the console decodes or leaves out begin: a line cut short that could still
# become one of them is held back until its end (idle()).
STARTS = ("mizumori: ", "MicroPython", 'Type "help()"', "Use Ctrl-D", "MPY: soft reboot",
          ">>>", "ets ", "rst:", "configsip:", "clk_drv:", "mode:", "load:0x", "entry 0x",
          "ho ", "room ", "waiting for download")
LEAVE = (b"\x1d", b"\x18")  # Ctrl-], Ctrl-X (as mpremote)


def flag_words(flags: int) -> str:
    names = [f"{name} ({words})" for bit, (name, words) in enumerate(FLAGS)
             if flags & (1 << bit)]
    unknown = flags >> len(FLAGS)
    if unknown:
        names.append(f"unknown bits 0x{unknown << len(FLAGS):x}")
    return ", ".join(names) or "none"


def duration(s: int) -> str:
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min" + (f" {s % 60} s" if s % 60 else "")
    return f"{s // 3600} h" + (f" {s % 3600 // 60} min" if s % 3600 // 60 else "")


def decode_line(line: str) -> str | None:
    """What the console shows for one whole line the board printed (without its line end);
    None for noise."""
    line = PROMPT.sub("", line)
    if not line.startswith("mizumori: ") and "mizumori: " in line:
        before, _, after = line.partition("mizumori: ")
        if NOISE.match(PROMPT.sub("", before)):  # a banner cut short, then the next wake
            line = "mizumori: " + after
    m = READING.match(line)
    if m:
        seq, level, flags, nxt = m.groups()
        shown = "no water level (no good sample)" if level == "None" else \
            f"water level {int(level) / 1000:.3f} m ({level} mm above the station datum)"
        return (f"reading {seq}: {shown}; flags: {flag_words(int(flags))}; next wake in "
                f"{duration(int(nxt))}")
    reset = ROM_RESET.match(line)
    if reset:
        cause = reset.group(1)
        if cause.startswith("DEEPSLEEP"):
            return None  # a wake: the reading says it
        words = next((w for key, w in RESETS if key in cause), cause)
        return f"the board restarted: {words} ({cause})"
    if line.startswith("rst:") or NOISE.match(line):
        return None
    return line


class Decoder:
    """Bytes from the board in, text for the technician out (feed, idle)."""

    def __init__(self, raw: bool = False, clock: Callable[[], float] = time.time):
        self.raw = raw
        self.clock = clock
        self.buf = b""  # the line being received, not shown yet
        self.midline = False  # part of the current line was shown as it came
        self.passthrough = raw  # showing everything as it comes (--raw, or the user typed)

    def stamp(self) -> str:
        return time.strftime("%H:%M:%S", time.localtime(self.clock())) + "  "

    def typed(self) -> bytes:
        """The technician typed: show what the board says as it comes (its REPL), starting
        with what is held back (a prompt), until it restarts."""
        if self.passthrough:
            return b""
        self.passthrough, out = True, self.buf
        self.midline = bool(self.buf) and not self.buf.endswith(b"\n")
        self.buf = b""
        return out

    def feed(self, data: bytes) -> bytes:
        if self.raw:
            return data
        out = b""
        if self.passthrough:  # shown as it comes; scanned for a restart
            *lines, self.buf = (self.buf + data).split(b"\n")
            if any(RESTARTED.match(PROMPT.sub("", _text(x))) for x in lines):
                self.passthrough = False  # decoded again from the next line on
                self.midline = bool(self.buf)  # the start of which was shown already
                self.buf = b""
            return data
        *lines, self.buf = (self.buf + data).split(b"\n")
        for raw_line in lines:
            if self.midline:  # the start of this line was shown already
                out += raw_line + b"\n"
                self.midline = False
                continue
            shown = decode_line(_text(raw_line))
            if shown is not None:
                out += (self.stamp() + shown + "\n").encode()
        return out

    def idle(self) -> bytes:
        """Nothing came for a while: a line without its end that is not noise is shown as
        far as it goes (a board that prints a question and waits); noise is held back."""
        if self.raw or self.passthrough or not self.buf:
            return b""
        text = PROMPT.sub("", _text(self.buf)).lstrip("\r")
        if NOISE.match(text) or any(p.startswith(text) or text.startswith(p)
                                    for p in STARTS):
            return b""  # a prompt or banner (dropped with its line), or a line coming
        out = (b"" if self.midline else self.stamp().encode()) + text.encode()
        self.buf, self.midline = b"", True
        return out


def _text(b: bytes) -> str:
    return b.decode("utf-8", "replace").rstrip("\r")


def run(port: str, raw: bool = False, stdin: BinaryIO | None = None,
        stdout: BinaryIO | None = None) -> int:
    """The console on `port` until Ctrl-] (or Ctrl-X), SIGTERM, or the port goes away."""
    import serial  # type: ignore[import-untyped]  # pyserial, which mpremote brings

    from mizumori_tools.device import DeviceError

    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    try:
        ser = serial.Serial(port, 115200, timeout=0, exclusive=True)
    except (serial.SerialException, OSError) as e:
        raise DeviceError(f"{port}: port busy or not permitted (close other consoles; add "
                          f"yourself to the dialout group): {e}") from None
    decoder = Decoder(raw)
    in_fd = stdin.fileno()
    tty_attrs = _raw_terminal(in_fd)
    print(f"console on {port}: "
          + ("everything the board prints" if raw else
             "the station's lines decoded, the REPL's banner and prompts left out (--raw: "
             "everything)") + "; type to talk to the board; Ctrl-] leaves",
          file=sys.stderr, flush=True)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    reading_stdin = True
    last = time.monotonic()
    try:
        while True:
            fds = [ser.fileno()] + ([in_fd] if reading_stdin else [])
            ready = select.select(fds, [], [], 0.25)[0]
            if ser.fileno() in ready:
                try:
                    data = ser.read(4096)
                except (serial.SerialException, OSError):
                    data = b""
                if not data:  # ready but empty: the other end closed
                    raise DeviceError(f"{port}: the port went away (the board unplugged, "
                                      "or the rig stopped)")
                _write(stdout, decoder.feed(data))
                last = time.monotonic()
            elif time.monotonic() - last > 0.5:
                _write(stdout, decoder.idle())
            if in_fd in ready:
                keys = os.read(in_fd, 1024)
                if not keys:
                    reading_stdin = False  # no terminal (a pipe that ended): just watch
                    continue
                if any(k in keys for k in LEAVE):
                    break
                _write(stdout, decoder.typed())
                ser.write(keys)
    except KeyboardInterrupt:
        pass
    finally:
        if tty_attrs is not None:
            import termios

            termios.tcsetattr(in_fd, termios.TCSADRAIN, tty_attrs)
        ser.close()
    _write(stdout, b"\n" if decoder.midline else b"")
    return 0


def _write(out: BinaryIO, data: bytes) -> None:
    if data:
        out.write(data)
        out.flush()


def _raw_terminal(fd: int) -> Any:
    """Keys one by one, Ctrl-C to the board: the terminal's settings to restore, or None
    when standard input is not a terminal."""
    if not os.isatty(fd):
        return None
    import termios

    attrs = termios.tcgetattr(fd)
    mode = termios.tcgetattr(fd)
    # No line editing, no echo, Ctrl-C and Ctrl-Z as bytes for the board; the output's
    # processing (LF to CR LF) is left as it was.
    mode[0] &= ~(termios.IXON | termios.ICRNL | termios.INLCR | termios.IGNCR)
    mode[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN)
    mode[6][termios.VMIN], mode[6][termios.VTIME] = 1, 0
    termios.tcsetattr(fd, termios.TCSANOW, mode)
    return attrs
