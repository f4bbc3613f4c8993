# RAKwireless RAK3172 (STM32WLE5, sold for AS923) with RUI3 firmware, driven by its AT
# command manual over a UART (115200 8N1). Every command waits for its status line before
# the next one goes out, as the manual asks; join and send finish with asynchronous events,
# which RUI3 prints in this order: the send's outcome (+EVT:SEND_CONFIRMED_OK / _FAILED(n) /
# +EVT:TX_DONE), then what came down (+EVT:RX_1..., +EVT:LINKCHECK..., +EVT:TIMEREQ_OK). The
# driver reads until the line has been quiet after the outcome, and keeps events between
# calls. docs/lorawan.md lists the commands used. A second module fits behind the same
# methods: setup(), joined(), join(), data_rate(), send().
import time

from station.clock import unix_seconds

OK = "OK"
BUSY = "AT_BUSY_ERROR"
NOT_JOINED = "AT_NO_NETWORK_JOINED"
BAND_AS923_1 = 8  # AT+BAND: 8 = AS923-1, Japan's 920.6-923.4 MHz plan
QUIET_MS = 300  # the line is done when it stays quiet this long after the outcome
# RUI3 before 4.2.1 has faults this station would meet (RUI3 changelog): RUI-943 no answer
# after 48 days, RUI-1044 deaf after a UART glitch, RUI-1068 DevNonce from 1 after a reboot
# (a LoRaWAN 1.0.4 network refuses every join), RUI-1102 AT+RETY with AT+CFM=1 broken.
MIN_VERSION = (4, 2, 1)
# ARIB STD-T108: carrier sense for at least 5 ms at -80 dBm before each frame (AS923
# RegionAS923.h AS923_RSSI_FREE_TH, AS923_CARRIER_SENSE_TIME); RUI3 ships it off.
LBT = (("LBT", "1"), ("LBTRSSI", "-80"), ("LBTSCANTIME", "5"))
# Low-power mode: RUI3 4.x ships it off (changelog RUI-881); level 2 is the STM32's STOP2.
LPM = (("LPM", "1"), ("LPMLVL", "2"))
IDENTITY = ("NWM", "NJM", "BAND", "DEVEUI", "APPEUI", "APPKEY")
# How long the module is certainly silent after it took a send or a join, so the ESP32 may
# light-sleep (its UART hears nothing then): RX1 opens the RX1 delay (1 s, service_nvm.c
# rx1dl; 5 s on The Things Stack: rx1_ms()) after the transmission ends, and nothing is
# printed before it; a join's outcome comes after the join-accept delay (5 s, jn1dl).
RX1_EARLY_MS = 100  # awake this long before RX1 opens
# Then the outcome comes after RX1 when something came down in it (~1.1 s after the
# transmission), else after RX2 a second later: awake for RX1's (this long), and if nothing
# came, asleep again until just before RX2's.
RX1_WAIT_MS = 500
RX2_NAP_MS = 600
OUTCOME = ("+EVT:SEND_CONFIRMED", "+EVT:TX_DONE")
NAP_JOIN_MS = 4500


class ModemError(Exception):
    def __init__(self, status, command=""):
        super().__init__("%s: %s" % (command, status))
        self.status = status


class Rak3172:
    def __init__(self, uart, sleep_ms=None, ticks_ms=None, reset_pin=None, nap=None):
        """reset_pin: the ESP32 output wired to the module's NRST (held high; low resets);
        nap(ms): the board's light sleep, for the waits the module is silent in."""
        self.uart = uart
        self.sleep_ms = sleep_ms or time.sleep_ms
        self.ticks_ms = ticks_ms or time.ticks_ms
        self.reset_pin = reset_pin
        self.buf = b""
        self.sent = ""  # the command on the line: an echo of it is not a reply
        self.echoing = False  # the module echoed a command (ATE was left on)
        self.events = []  # "+EVT:..." lines not yet handled, kept between calls
        self.link = None  # (demod margin dB, gateways) of the last link check
        self.time_answered = False  # +EVT:TIMEREQ_OK seen since the last request_time()
        self.version = None
        self.nap = nap
        self._rx1_ms = None  # the network's RX1 delay: rx1_ms()

    # --- lines ---------------------------------------------------------------------------
    def _line(self, deadline):
        """The next non-empty line, or None at the deadline (ticks_ms)."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 1:]
                try:
                    text = line.strip().decode()
                except ValueError:  # UnicodeError: noise on the line, not a reply
                    continue
                if text == self.sent:  # the module's echo of our command
                    self.echoing = True
                    continue
                if text:
                    return text
                continue
            if self.uart.any():
                self.buf += self.uart.read() or b""
                continue
            if time.ticks_diff(deadline, self.ticks_ms()) <= 0:
                return None
            self.sleep_ms(10)

    def _drain(self, quiet_ms=QUIET_MS):
        """Read until the line has been quiet for quiet_ms, keeping the events."""
        while True:
            line = self._line(time.ticks_add(self.ticks_ms(), quiet_ms))
            if line is None:
                return
            if line.startswith("+EVT:"):
                self.events.append(line)

    def command(self, cmd, timeout_ms=2000):
        """Send one command; (status, value lines). Raises ModemError on silence. A command
        the module did not know after it slept (LPM: the waking byte is lost) is sent again
        once it is awake."""
        status, values = self._command(cmd, timeout_ms)
        if status == "AT_COMMAND_NOT_FOUND" and cmd != "AT":
            self.wake()
            status, values = self._command(cmd, timeout_ms)
        return status, values

    def _command(self, cmd, timeout_ms):
        self.sent = cmd
        self.uart.write((cmd + "\r\n").encode())
        deadline = time.ticks_add(self.ticks_ms(), timeout_ms)
        values = []
        while True:
            line = self._line(deadline)
            if line is None:
                raise ModemError("no reply", cmd)
            if line == OK or line.startswith("AT_"):
                return line, values
            if line.startswith("+EVT:"):
                self.events.append(line)
            else:
                values.append(line)

    def must(self, cmd, timeout_ms=2000):
        status, values = self.command(cmd, timeout_ms)
        if status != OK:
            raise ModemError(status, cmd)
        return values

    def get(self, name):
        """AT+NAME=? -> the value text."""
        prefix = "AT+%s=" % name
        for v in self.must(prefix + "?"):
            if v.upper().startswith(prefix):
                return v[len(prefix):]
        raise ModemError("no value", prefix + "?")

    def wait_event(self, prefixes, timeout_ms):
        """The first event starting with one of prefixes (others are kept), or None."""
        deadline = time.ticks_add(self.ticks_ms(), timeout_ms)
        while True:
            for i, e in enumerate(self.events):
                if e.startswith(prefixes):
                    return self.events.pop(i)
            line = self._line(deadline)
            if line is None:
                return None
            if line.startswith("+EVT:"):
                self.events.append(line)

    # --- the module ----------------------------------------------------------------------
    def wake(self):
        """A bare AT until it answers: with LPM on, the byte that wakes the module from STOP
        mode can be lost (the reply is then AT_COMMAND_NOT_FOUND). Turns echo off. What the
        module printed while the ESP32 slept (RUI3's own uplinks and their downlinks) never
        reached a real board's UART: what a pty or the simulator kept is dropped."""
        if self.uart.any():
            self.uart.read()
        self.buf = b""
        self.events = []
        for _ in range(3):
            try:
                if self._command("AT", 500)[0] == OK:
                    break
            except ModemError:
                pass
        else:
            raise ModemError("no reply", "AT")
        if self.echoing:  # ATE toggles and persists (atcmd_general.c At_Echo)
            self.must("ATE")
            self.echoing = False

    def reset(self):
        """Pulse NRST (a hung module: RUI-943, RUI-1044). False when it is not wired."""
        if self.reset_pin is None:
            return False
        self.reset_pin.value(0)
        self.sleep_ms(50)
        self.reset_pin.value(1)
        self.sleep_ms(1000)  # boot, banner
        self.buf = b""
        self._drain()
        self.events = []
        return True

    def check_version(self):
        """RUI3's version; refuses one with the known faults."""
        text = self.get("VER")
        self.version = text
        nums = []
        for part in text.replace("_", " ").replace("-", " ").split():
            bits = part.split(".")
            if len(bits) == 3 and all(b.isdigit() for b in bits):
                nums = [int(b) for b in bits]
                break
        if tuple(nums) < MIN_VERSION:
            raise ModemError("RUI3 %s has known faults: update the module to RUI3 %d.%d.%d or "
                             "later" % ((text,) + MIN_VERSION), "AT+VER")

    # --- LoRaWAN -------------------------------------------------------------------------
    def setup(self, dev_eui, app_eui, app_key, dr):
        """OTAA credentials and radio settings, low-power mode and carrier sense; writes only
        what differs (each write rewrites the module's whole settings page in flash:
        service_nvm.c, so nothing here changes per uplink). Uplinks are unconfirmed (CFM=0):
        delivery is the fleet server's report (docs/lorawan.md, "Delivery"). True when its
        identity (keys, band, mode) changed: RUI3 keeps the old session then, so the caller
        must join again."""
        self.wake()
        self.check_version()
        wanted = (("NWM", "1"), ("NJM", "1"), ("BAND", str(BAND_AS923_1)),
                  ("DEVEUI", dev_eui.upper()), ("APPEUI", app_eui.upper()),
                  ("APPKEY", app_key.upper()), ("ADR", "0"), ("DR", str(dr)),
                  ("CFM", "0")) + LPM + LBT
        changed = False
        for name, value in wanted:
            if self.get(name).upper() == value:
                continue
            if name == "NWM":
                # Into LoRaWAN mode from P2P: RUI3 prints "OK" without a line end and reboots
                # (atcmd_p2p.c At_NwkWorkMode): write, wait out the reboot, drop the banner.
                self.uart.write(b"AT+NWM=1\r\n")
                self.sleep_ms(1500)
                self.buf = b""
                self._drain()
                self.wake()
            else:
                self.must("AT+%s=%s" % (name, value))
            changed = changed or name in IDENTITY
        return changed

    def joined(self):
        return self.get("NJS") == "1"

    def join(self, timeout_ms=20000):
        """One OTAA attempt (the station backs off between wakes): True when joined."""
        self.must("AT+JOIN=1:0:10:1")
        if self.nap:
            self.nap(NAP_JOIN_MS)
        # +EVT:JOINED, +EVT:JOIN_FAILED_<why> (service_lora.c), +EVT:JOIN FAILED (older RUI3)
        e = self.wait_event(("+EVT:JOIN",), timeout_ms)
        return e == "+EVT:JOINED"

    def data_rate(self):
        value = self.get("DR")
        if not value.isdigit():
            raise ModemError("bad value %r" % value, "AT+DR=?")
        return int(value)

    def request_link_check(self):
        """Ask the network, with the next uplink, how well it hears us (LinkCheckReq, 1 byte
        of MAC command: the frame must have room for it). RUI3 writes AT+LINKCHECK to its
        flash, and again when it clears it after the uplink (service_nvm.c): seldom."""
        self.must("AT+LINKCHECK=1")

    def request_time(self):
        """Ask the network's time with the next uplink (DeviceTimeReq, 1 byte of MAC
        command: the frame must have room for it). RUI3 keeps it in RAM (timereq_status,
        service_lora.c): the station's session probe."""
        self.must("AT+TIMEREQ=1")
        self.time_answered = False

    def network_time(self):
        """Unix seconds from the module's clock once the network answered a time request
        (+EVT:TIMEREQ_OK), else None."""
        if not self.time_answered:
            return None
        return parse_ltime(self.get("LTIME"))

    def last_downlink(self):
        """(port, bytes) of the last downlink the module received (AT+RECV), or None."""
        port, _, data = self.get("RECV").partition(":")
        try:
            return (int(port), bytes.fromhex(data)) if port.isdigit() and data else None
        except ValueError:
            return None

    def send(self, port, payload, timeout_ms=30000, air_ms=0):
        """One uplink. (done, downlinks): done is True for an unconfirmed uplink sent (or a
        confirmed one the network acknowledged), False when the module did not say so in
        time; downlinks are (port, bytes) received since the last send (in this one's
        windows, or in the module's own uplinks before it). Raises ModemError when the module
        refused to send."""
        cmd = "AT+SEND=%d:%s" % (port, payload.hex().upper())
        rx1 = self.rx1_ms() if self.nap else 0  # asked before the module is busy sending
        status = ""
        for attempt in range(4):
            status, _ = self.command(cmd, 2000)
            if status == OK:
                break
            if status == BUSY:
                # The module's own empty uplink after a downlink with FPending (RUI3
                # McpsIndication) or the last retry is still going: wait for it.
                self.wait_event(("+EVT:TX_DONE", "+EVT:SEND_CONFIRMED"), 12000)
                self._drain()
            elif status == "AT_PARAM_ERROR" and self.wait_event(("+EVT:TX_DONE",), 3000):
                # MAC commands left no room: RUI3 sent them alone in an empty frame (its
                # TX_DONE just came); the payload goes in the next one.
                self._drain()
            elif status == "AT_ERROR" and attempt < 3:
                # Every channel busy (carrier sense): try again shortly.
                self.sleep_ms(1000 * (attempt + 1))
            else:
                raise ModemError(status, cmd)
        else:
            raise ModemError(status, cmd)
        if self.nap:  # air_ms: the transmission's time on air, if known (never more)
            self.nap(air_ms + rx1 - RX1_EARLY_MS)
            e = self.wait_event(OUTCOME, RX1_WAIT_MS)
            if e is None:
                self.nap(RX2_NAP_MS)
                e = self.wait_event(OUTCOME, timeout_ms)
        else:
            e = self.wait_event(OUTCOME, timeout_ms)
        self._drain()  # what came down follows the outcome
        return e in ("+EVT:SEND_CONFIRMED_OK", "+EVT:TX_DONE"), self._take_events()

    def rx1_ms(self):
        """The network's RX1 delay (its join accept sets it; 1 s by default, 5 s on The
        Things Stack), read once per wake: RUI3 prints an uplink's outcome only after it."""
        if self._rx1_ms is None:
            value = self.get("RX1DL")
            ms = int(value) if value.isdigit() else 1000
            self._rx1_ms = ms * 1000 if ms <= 15 else ms  # seconds or milliseconds
        return self._rx1_ms

    def collect(self, timeout_ms=None):
        """Downlinks brought by the module's own uplink after a downlink with FPending (RUI3
        sends it by itself, McpsIndication): None when none went out within timeout_ms (by
        default the RX1 delay, RX2 a second later and 1 s of airtime and margin), [] when
        one did and brought no application frame (MAC answers only, or nothing)."""
        if timeout_ms is None:
            timeout_ms = self.rx1_ms() + 2000
        if self.nap and not self.events:
            # it starts at once after the event that ended the last one, and prints nothing
            # before its RX1 opens: light sleep until then
            self.nap(self.rx1_ms() - RX1_EARLY_MS)
            timeout_ms -= self.rx1_ms() - RX1_EARLY_MS
        if self.wait_event(("+EVT:TX_DONE",), timeout_ms) is None:
            return None
        self._drain()
        return self._take_events()

    def _take_events(self):
        """The downlinks in the kept events (and the link-check and time answers); clears
        them."""
        downlinks = []
        for ev in self.events:
            if ev == "+EVT:TIMEREQ_OK":
                self.time_answered = True
            if ev.startswith("+EVT:LINKCHECK:"):
                # +EVT:LINKCHECK:<status 0 = answered>:<margin>:<gateways>:<rssi>:<snr>
                f = ev.split(":")[2:]
                if len(f) >= 3 and f[0] == "0" and f[1].isdigit() and f[2].isdigit():
                    self.link = (int(f[1]), int(f[2]))
            if ev.startswith("+EVT:RX_"):
                # +EVT:RX_1:<rssi>:<snr>:UNICAST:<port>:<hex>
                parts = ev.split(":")
                if len(parts) >= 7 and parts[5].isdigit():
                    try:
                        downlinks.append((int(parts[5]), bytes.fromhex(parts[6])))
                    except ValueError:
                        pass
        self.events = []
        return downlinks


def parse_ltime(text):
    """Unix seconds from AT+LTIME's value, UTC: "15h08m55s on 08/17/2026" as RUI3 prints it
    in the field (MM/DD/YYYY), or "LTIME:00h37m58s 2018-11-14" as the RUI3 manual shows it;
    None when it is neither."""
    try:
        hms, _, date = text.replace("LTIME:", "").strip().partition(" ")
        date = date.replace("on ", "").strip()
        h, rest = hms.split("h")
        mi, rest = rest.split("m")
        sec = int(rest.rstrip("s"))
        if "/" in date:
            mo, d, y = [int(x) for x in date.split("/")]
        else:
            y, mo, d = [int(x) for x in date.split("-")]
        if not (2000 <= y < 2100 and 1 <= mo <= 12 and 1 <= d <= 31):
            return None
        return unix_seconds(y, mo, d, int(h), int(mi), sec)
    except (ValueError, TypeError):
        return None
