# RAKwireless RAK3172 (STM32WLE5, sold for AS923) with RUI3 firmware, driven by its AT
# command manual over a UART (115200 8N1). Every command waits for its status line before
# the next one goes out, as the manual asks; join and send finish with asynchronous events.
# docs/lorawan.md lists the commands used. A second module fits behind the same methods:
# setup(), joined(), join(), data_rate(), send().
import time

from station.clock import unix_seconds

OK = "OK"
BUSY = "AT_BUSY_ERROR"
NOT_JOINED = "AT_NO_NETWORK_JOINED"
BAND_AS923_1 = 8  # AT+BAND: 8 = AS923-1, Japan's 920.6-923.4 MHz plan


class ModemError(Exception):
    def __init__(self, status, command=""):
        super().__init__("%s: %s" % (command, status))
        self.status = status


class Rak3172:
    def __init__(self, uart, sleep_ms=None, ticks_ms=None):
        self.uart = uart
        self.sleep_ms = sleep_ms or time.sleep_ms
        self.ticks_ms = ticks_ms or time.ticks_ms
        self.buf = b""
        self.events = []  # "+EVT:..." lines seen while waiting for something else
        self.link = None  # (demod margin dB, gateways) of the last link check
        self.time_answered = False  # +EVT:TIMEREQ_OK seen since the last request_time()

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
                if text:
                    return text
                continue
            if self.uart.any():
                self.buf += self.uart.read() or b""
                continue
            if time.ticks_diff(deadline, self.ticks_ms()) <= 0:
                return None
            self.sleep_ms(10)

    def command(self, cmd, timeout_ms=2000):
        """Send one command; (status, value lines). Raises ModemError on silence."""
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

    # --- LoRaWAN -------------------------------------------------------------------------
    def setup(self, dev_eui, app_eui, app_key, dr, confirmed, retries):
        """OTAA credentials and radio settings; writes only what differs (each write to
        the module's flash, and a changed key drops its session)."""
        wanted = (("NWM", "1"), ("NJM", "1"), ("BAND", str(BAND_AS923_1)),
                  ("DEVEUI", dev_eui.upper()), ("APPEUI", app_eui.upper()),
                  ("APPKEY", app_key.upper()), ("ADR", "0"), ("DR", str(dr)),
                  ("CFM", "1" if confirmed else "0"), ("RETY", str(retries)))
        for name, value in wanted:
            if self.get(name).upper() != value:
                self.must("AT+%s=%s" % (name, value))

    def joined(self):
        return self.get("NJS") == "1"

    def join(self, timeout_ms=20000):
        """One OTAA attempt (the station backs off between wakes): True when joined."""
        self.must("AT+JOIN=1:0:10:1")
        e = self.wait_event(("+EVT:JOINED", "+EVT:JOIN_FAILED"), timeout_ms)
        return e == "+EVT:JOINED"

    def data_rate(self):
        return int(self.get("DR"))

    def request_link_check(self):
        """Ask the network, with the next uplink, how well it hears us (LinkCheckReq)."""
        self.must("AT+LINKCHECK=1")

    def request_time(self):
        """Ask the network's time with the next uplink (DeviceTimeReq, 1 byte of MAC
        command: the frame must have room for it)."""
        self.must("AT+TIMEREQ=1")
        self.time_answered = False

    def network_time(self):
        """Unix seconds from the module's clock once the network answered a time request
        (+EVT:TIMEREQ_OK), else None."""
        if not self.time_answered:
            return None
        return parse_ltime(self.get("LTIME"))

    def send(self, port, payload, timeout_ms=30000):
        """One uplink. (delivered, downlinks): delivered is True for a confirmed uplink the
        network acknowledged (or an unconfirmed one sent), False when the acknowledgement
        never came; downlinks are (port, bytes) received in its windows. Raises ModemError
        when the module refused to send (busy, not joined, too long)."""
        self.events = []
        self.must("AT+SEND=%d:%s" % (port, payload.hex().upper()), 2000)
        e = self.wait_event(("+EVT:SEND_CONFIRMED", "+EVT:TX_DONE"), timeout_ms)
        if e == "+EVT:TX_DONE":  # a downlink's event trails it by the receive windows
            rx = self.wait_event(("+EVT:RX",), 3000)
            if rx:
                self.events.append(rx)
        downlinks = []
        for ev in self.events:
            if ev == "+EVT:TIMEREQ_OK":
                self.time_answered = True
            if ev.startswith("+EVT:LINKCHECK:"):
                # +EVT:LINKCHECK:<status 0 = answered>:<margin>:<gateways>:<rssi>:<snr>
                f = ev.split(":")[2:]
                if len(f) >= 3 and f[0] == "0":
                    self.link = (int(f[1]), int(f[2]))
            if ev.startswith("+EVT:RX_"):
                # +EVT:RX_1:<rssi>:<snr>:UNICAST:<port>:<hex>
                parts = ev.split(":")
                if len(parts) >= 7 and parts[5].isdigit():
                    try:
                        downlinks.append((int(parts[5]), bytes.fromhex(parts[6])))
                    except ValueError:
                        pass
        return e in ("+EVT:SEND_CONFIRMED_OK", "+EVT:TX_DONE"), downlinks


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
