# A simulated RAKwireless RAK3172 running RUI3 firmware, as its AT command manual describes
# it: the byte dialogue on the UART (115200 8N1; a command ends with CR LF; a reply is
# "<CR><LF>STATUS<CR><LF>", a get is preceded by "AT+X=value<CR><LF>"), its error statuses,
# and its asynchronous events after the radio's real delays (join accept 5 s after the
# request, RX1 1 s after a transmission ends). Its radio reaches a `network`:
#   network.join(dev_eui, app_eui, app_key) -> bool
#   network.uplink(dev_eui, port, payload, confirmed, dr, fcnt) -> (heard, [(port, bytes)])
# Used by the firmware tests (in-process, a fake clock) and the rig (on a pseudo-terminal).
# Runs under CPython and the MicroPython unix port.
from station import lorawan

JOIN_ACCEPT_DELAY_MS = 5000
RX1_DELAY_MS = 1000
STATUSES = ("OK", "AT_ERROR", "AT_PARAM_ERROR", "AT_BUSY_ERROR", "AT_TEST_PARAM_OVERFLOW",
            "AT_NO_NETWORK_JOINED", "AT_RX_ERROR", "AT_COMMAND_NOT_FOUND")


def _hex_ok(text, n=None):
    if n is not None and len(text) != n:
        return False
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return len(text) % 2 == 0


class Rak3172Sim:
    """The module's UART side: write() commands, any()/read() replies and events."""

    def __init__(self, network, now_ms, version="4.2.1"):
        self.network = network
        self.now_ms = now_ms
        self.version = version
        self.inbuf = b""
        self.out = b""
        self.pending = []  # [due ms, bytes, action]
        self.regs = {"NWM": "1", "NJM": "1", "BAND": "8", "DEVEUI": "0" * 16,
                     "APPEUI": "0" * 16, "APPKEY": "0" * 32, "ADR": "0", "DR": "2",
                     "CFM": "0", "RETY": "0", "CLASS": "A", "LINKCHECK": "0",
                     "TIMEREQ": "0"}
        self.ltime = None  # (Unix seconds, module ms) of the network's last time answer
        self.joined = False
        self.busy_until = 0
        self.fcnt = 0
        self.log = []  # the commands received, for tests

    # --- the UART ------------------------------------------------------------------------
    def write(self, data):
        self.inbuf += bytes(data)
        while True:
            i = -1
            for sep in (b"\r", b"\n"):
                j = self.inbuf.find(sep)
                if j >= 0 and (i < 0 or j < i):
                    i = j
            if i < 0:
                break
            line, self.inbuf = self.inbuf[:i], self.inbuf[i + 1:]
            if line.strip():
                self._command(line.strip().decode())
        return len(data)

    def any(self):
        self._tick()
        return len(self.out)

    def read(self, n=None):
        self._tick()
        n = len(self.out) if n is None else n
        data, self.out = self.out[:n], self.out[n:]
        return data

    def _tick(self):
        now = self.now_ms()
        due = [p for p in self.pending if p[0] <= now]
        self.pending = [p for p in self.pending if p[0] > now]
        for p in sorted(due, key=lambda p: p[0]):
            if p[2] is not None:
                p[2]()
            self.out += p[1]

    def _later(self, ms, text, action=None):
        self.pending.append([self.now_ms() + ms, text.encode() if text else b"", action])

    def _reply(self, status, value=None):
        self.out += ((value + "\r\n") if value is not None else "").encode()
        self.out += ("\r\n%s\r\n" % status).encode()

    # --- commands ------------------------------------------------------------------------
    def _command(self, line):
        self.log.append(line)
        upper = line.upper()
        if upper == "AT":
            return self._reply("OK")
        if not upper.startswith("AT+"):
            return self._reply("AT_COMMAND_NOT_FOUND")
        name, _, arg = line[3:].partition("=")
        name = name.upper()
        if name == "VER" and arg == "?":
            return self._reply("OK", "AT+VER=" + self.version)
        if name == "NJS" and arg == "?":
            return self._reply("OK", "AT+NJS=%d" % (1 if self.joined else 0))
        if name == "JOIN":
            return self._join(arg)
        if name == "SEND":
            return self._send(arg)
        if name == "LTIME" and arg == "?":
            return self._reply("OK", "AT+LTIME=" + self._ltime())
        if name not in self.regs:
            return self._reply("AT_COMMAND_NOT_FOUND")
        if arg == "?":
            return self._reply("OK", "AT+%s=%s" % (name, self.regs[name]))
        if not self._valid(name, arg):
            return self._reply("AT_PARAM_ERROR")
        if self.now_ms() < self.busy_until and name in ("DEVEUI", "APPEUI", "APPKEY", "BAND"):
            return self._reply("AT_BUSY_ERROR")
        if name in ("DEVEUI", "APPEUI", "APPKEY", "BAND", "NJM", "NWM"):
            self.joined = False  # new identity or region: the session is gone
        self.regs[name] = arg.upper() if name in ("DEVEUI", "APPEUI", "APPKEY") else arg
        return self._reply("OK")

    def _ltime(self):
        """The module's clock as RUI3 prints AT+LTIME in the field ("15h08m55s on
        08/17/2026", UTC); counting from 2000 until the network has answered a time
        request."""
        import time

        base, at = self.ltime or (946684800, 0)
        tm = time.gmtime(base + (self.now_ms() - at) // 1000)
        return "%02dh%02dm%02ds on %02d/%02d/%04d" % (tm[3], tm[4], tm[5], tm[1], tm[2], tm[0])

    def _valid(self, name, arg):
        if name in ("DEVEUI", "APPEUI"):
            return _hex_ok(arg, 16)
        if name == "APPKEY":
            return _hex_ok(arg, 32)
        if name in ("NWM", "NJM", "ADR", "CFM"):
            return arg in ("0", "1")
        if name == "LINKCHECK":  # 0 off, 1 with the next uplink, 2 with every uplink
            return arg in ("0", "1", "2")
        if name == "TIMEREQ":  # DeviceTimeReq with the next uplink
            return arg in ("0", "1")
        if name == "BAND":
            return arg.isdigit() and int(arg) <= 12
        if name == "DR":
            return arg.isdigit() and int(arg) <= 7
        if name == "RETY":
            return arg.isdigit() and int(arg) <= 7
        if name == "CLASS":
            return arg.upper() in ("A", "B", "C")
        return False

    def _join(self, arg):
        # AT+JOIN=<join>:<auto join>:<interval s>:<attempts>, or AT+JOIN alone
        parts = arg.split(":") if arg else ["1"]
        if parts[0] not in ("0", "1") or any(not p.isdigit() for p in parts) or len(parts) > 4:
            return self._reply("AT_PARAM_ERROR")
        if self.now_ms() < self.busy_until:
            return self._reply("AT_BUSY_ERROR")
        if parts[0] == "0":
            return self._reply("OK")
        attempts = int(parts[3]) if len(parts) > 3 else 8
        interval = int(parts[2]) * 1000 if len(parts) > 2 else 8000
        self._reply("OK")
        self._try_join(attempts, interval)

    def _try_join(self, attempts, interval):
        delay = JOIN_ACCEPT_DELAY_MS + 100
        self.busy_until = self.now_ms() + delay
        ok = self.network.join(self.regs["DEVEUI"].lower(), self.regs["APPEUI"].lower(),
                               self.regs["APPKEY"].lower())

        def done():
            self.joined = ok
            self.fcnt = 0 if ok else self.fcnt
            if not ok and attempts > 1:
                self._later(interval, "", lambda: self._try_join(attempts - 1, interval))
        self._later(delay, "+EVT:JOINED\r\n" if ok else "+EVT:JOIN_FAILED_RX_TIMEOUT\r\n",
                    done)

    def _send(self, arg):
        port, _, data = arg.partition(":")
        if not port.isdigit() or not 1 <= int(port) <= 223 or not _hex_ok(data):
            return self._reply("AT_PARAM_ERROR")
        if not self.joined:
            return self._reply("AT_NO_NETWORK_JOINED")
        if self.now_ms() < self.busy_until:
            return self._reply("AT_BUSY_ERROR")
        payload = bytes.fromhex(data)
        dr = int(self.regs["DR"])
        # A pending DeviceTimeReq rides in FOpts and counts against the data rate's maximum
        # (RUI3 service_lora_send: LoRaMacQueryTxPossible; shared/reviews/lorawan-on-
        # rak3172.md D3); the real module also flushes it in an empty frame first.
        fopts = 1 if self.regs["TIMEREQ"] == "1" else 0
        if len(payload) + fopts > lorawan.max_payload(dr):
            return self._reply("AT_PARAM_ERROR")
        self._reply("OK")
        confirmed = self.regs["CFM"] == "1"
        tries = 1 + (int(self.regs["RETY"]) if confirmed else 0)
        self.fcnt += 1
        self._transmit(int(port), payload, confirmed, dr, tries)

    def _transmit(self, port, payload, confirmed, dr, tries):
        # a confirmed frame's retransmissions keep its frame counter
        air = lorawan.airtime_ms(len(payload), dr)
        heard, downlinks = self.network.uplink(self.regs["DEVEUI"].lower(), port, payload,
                                               confirmed, dr, self.fcnt)
        end = self.now_ms() + air + RX1_DELAY_MS + 100
        self.busy_until = end
        events = ""
        if heard and self.regs["LINKCHECK"] != "0":
            # +EVT:LINKCHECK:<status>:<demod margin dB>:<gateways>:<rssi>:<snr>
            events += "+EVT:LINKCHECK:0:12:%d:-95:6\r\n" % getattr(self.network,
                                                                     "gateways", 1)
            if self.regs["LINKCHECK"] == "1":
                self.regs["LINKCHECK"] = "0"
        if heard and self.regs["TIMEREQ"] == "1":
            now = getattr(self.network, "now", None)  # the network server's clock, if any
            if now is not None:
                self.ltime = (int(now()), end)
            events += "+EVT:TIMEREQ_OK\r\n" if now is not None else "+EVT:TIMEREQ_FAILED\r\n"
            self.regs["TIMEREQ"] = "0"
        if heard:
            for dport, dpayload in downlinks:
                events += "+EVT:RX_1:-72:9:UNICAST:%d:%s\r\n" % (dport, dpayload.hex().upper())
        if not confirmed:
            self._later(air, "+EVT:TX_DONE\r\n")
            if events:
                self._later(end - self.now_ms(), events)
            return
        if heard:
            self._later(end - self.now_ms(), events + "+EVT:SEND_CONFIRMED_OK\r\n")
        elif tries > 1:
            self._later(end - self.now_ms(), "", lambda: self._transmit(
                port, payload, confirmed, dr, tries - 1))
        else:
            self._later(end - self.now_ms(), "+EVT:SEND_CONFIRMED_FAILED\r\n")
