# A simulated RAKwireless RAK3172 running RUI3 firmware, as strict as the module: the byte
# dialogue on the UART (115200 8N1; a command ends with CR or LF; a reply is
# "<CR><LF>STATUS<CR><LF>", a get is preceded by "AT+X=value<CR><LF>"), its error statuses,
# and its asynchronous events after the radio's real delays. Each rule cites RUI3 (the RUI3 SDK
# sources service_lora.c, atcmd_*.c, service_nvm.c; STM32CubeWL RegionAS923.h; the RUI3 AT
# manual and changelog), as read in shared/reviews/lorawan-on-rak3172.md. Its radio reaches a
# `network`:
#   network.join(dev_eui, app_eui, app_key) -> bool
#   network.uplink(dev_eui, port, payload, confirmed, dr, fcnt) -> (heard, [(port, bytes)])
# and, when the network has them: network.now() (its clock, for DeviceTimeReq),
# network.pending(dev_eui) (more downlinks queued: FPending), network.mac_answers(dev_eui)
# (bytes of MAC-command answers its last downlink asks for), network.channel_busy (LBT).
# Used by the firmware tests (in-process, a fake clock) and the rig (on a pseudo-terminal).
# Runs under CPython and the MicroPython unix port.
from station import lorawan
from station.hw.sim import UART_RXBUF

JOIN_ACCEPT_DELAY_MS = 5000  # service_nvm.c jn1dl
RX1_DELAY_MS = 1000  # service_nvm.c rx1dl; RX2 a second later (rx2dl)
# The network server sets the RX1 delay in its join accept (RxDelay, LoRaWAN 1.0.4 §6.2.3):
# network.rx1_delay_s (1 by default; The Things Stack recommends 5). RUI3 keeps it as
# rx1dl and answers AT+RX1DL=? with it, in milliseconds here (the driver takes seconds too).
ACK_TIMEOUT_MS = 2000  # LoRaWAN 1.0.4: 2 s +/- 1 s after RX2 before a confirmed retry
REBOOT_MS = 1000  # a reboot until the banner
SLEEP_AFTER_MS = 1000  # idle this long with LPM=1, the module is in STOP mode
RX_WINDOW_MS = 50  # a receive window open until a preamble is found or not (energy ledger)
STATUSES = ("OK", "AT_ERROR", "AT_PARAM_ERROR", "AT_BUSY_ERROR", "AT_TEST_PARAM_OVERFLOW",
            "AT_NO_NETWORK_JOINED", "AT_RX_ERROR", "AT_COMMAND_NOT_FOUND")
BANNER = "RAKwireless RAK3172-E Example\r\n" + "-" * 54 + "\r\n"
# RegionAS923.h MaxPayloadOfDatarateDwell1AS923: what a frame carries at each DR under the
# 400 ms dwell limit (FOpts included); AT+DR takes 2..5 in AS923 (AT manual).
MAX_PAYLOAD = (0, 0, 11, 53, 125, 242, 242, 242)


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
        # service_nvm.c defaults: echo off, LPM off, LBT off (-80 dBm, 5 ms), ADR on.
        self.regs = {"NWM": "1", "NJM": "1", "BAND": "8", "DEVEUI": "0" * 16,
                     "APPEUI": "0" * 16, "APPKEY": "0" * 32, "ADR": "1", "DR": "2",
                     "CFM": "0", "RETY": "0", "CLASS": "A", "LINKCHECK": "0",
                     "TIMEREQ": "0", "LPM": "0", "LPMLVL": "2", "LBT": "0", "LBTRSSI": "-80",
                     "LBTSCANTIME": "5", "RX1DL": str(RX1_DELAY_MS)}
        self.echo = False
        self.ltime = None  # (Unix seconds, module ms) of the network's last time answer
        self.joined = False
        self.busy_until = 0
        self.idle_since = 0
        self.fcnt = 0
        self.mac_pending = 0  # bytes of MAC-command answers waiting for the next uplink
        self.last_rx = None  # (port, bytes) of the last downlink (AT+RECV)
        self.unlicensed = 0  # frames sent without carrier sense (LBT off)
        # Writes of the module's settings page to flash: every setting but TIMEREQ lives in
        # it (service_nvm.c udrv_flash_write per set; timereq_status is RAM, service_lora.c)
        self.nvm_writes = 0
        self.spent = {"lora_tx": 0, "lora_rx": 0}  # ms transmitting, receiving (energy)
        self.log = []  # the commands received, for tests

    # --- the UART ------------------------------------------------------------------------
    def write(self, data):
        data = bytes(data)
        now = self.now_ms()
        if (self.regs["LPM"] == "1" and not self.inbuf and data
                and now - self.idle_since >= SLEEP_AFTER_MS and now >= self.busy_until):
            # The byte that wakes the STM32WL from STOP mode is lost (RUI_4.2.0, LPM=1,
            # LPMLVL=2: https://forum.rakwireless.com/t/usart2-on-rak3172-e-and-sip/14552).
            data = data[1:]
        self.idle_since = now
        self.inbuf += data
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
                text = line.strip().decode()
                if self.echo:  # service_mode_cli.c echoes the line before its reply
                    self._print((text + "\r\n").encode())
                self._command(text)
        return len(data)

    def any(self):
        self._tick()
        return len(self.out)

    def read(self, n=None):
        """None when nothing is waiting, as the ESP32's machine.UART.read() the firmware
        reads it through (hw/sim.py, "Every UART")."""
        self._tick()
        n = len(self.out) if n is None else n
        data, self.out = self.out[:n], self.out[n:]
        return data or None

    def _print(self, data):
        """What the module sends, into the ESP32's receive buffer: beyond UART_RXBUF bytes
        not yet read, lost (sim.UART_RXBUF)."""
        self.out = (self.out + data)[:UART_RXBUF]

    def _tick(self):
        now = self.now_ms()
        due = [p for p in self.pending if p[0] <= now]
        self.pending = [p for p in self.pending if p[0] > now]
        for p in sorted(due, key=lambda p: p[0]):
            if p[2] is not None:
                p[2]()
            self._print(p[1])
        if due:
            self.idle_since = now

    def _later(self, ms, text, action=None):
        self.pending.append([self.now_ms() + ms, text.encode() if text else b"", action])

    def _reply(self, status, value=None):
        self._print(((value + "\r\n") if value is not None else "").encode())
        self._print(("\r\n%s\r\n" % status).encode())

    # --- commands ------------------------------------------------------------------------
    def _command(self, line):
        self.log.append(line)
        upper = line.upper()
        if upper == "AT":
            return self._reply("OK")
        if upper == "ATE":  # atcmd_general.c At_Echo: toggles, and keeps it in flash
            self.echo = not self.echo
            return self._reply("OK")
        if not upper.startswith("AT+"):
            return self._reply("AT_COMMAND_NOT_FOUND")
        name, _, arg = line[3:].partition("=")
        name = name.upper()
        if name == "VER" and arg == "?":
            return self._reply("OK", "AT+VER=RUI_%s_RAK3172-E" % self.version)
        if name == "NJS" and arg == "?":
            return self._reply("OK", "AT+NJS=%d" % (1 if self.joined else 0))
        if name == "RECV" and arg == "?":
            port, data = self.last_rx or (0, b"")
            return self._reply("OK", "AT+RECV=%d:%s" % (port, data.hex()))
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
        if name == "NWM" and arg != self.regs["NWM"]:
            # atcmd_p2p.c At_NwkWorkMode: atcmd_printf("OK") without a line end, then reboot
            self.regs["NWM"] = arg
            self._print(b"OK")
            return self._reboot()
        if name == "TIMEREQ" and not self.joined:  # -UDRV_NO_WAN_CONNECTION
            return self._reply("AT_NO_NETWORK_JOINED")
        if name in ("BAND", "NJM"):
            self.joined = False  # the stack is initialised again: the session is gone
        if name != "TIMEREQ" and self.regs[name] != (arg.upper() if name in (
                "DEVEUI", "APPEUI", "APPKEY") else arg):
            self.nvm_writes += 1
        # DEVEUI/APPEUI/APPKEY only set the MIB and NVM: the old session goes on
        # (service_lora_config.c service_lora_set_app_key; review D2).
        self.regs[name] = arg.upper() if name in ("DEVEUI", "APPEUI", "APPKEY") else arg
        return self._reply("OK")

    def _reboot(self):
        self.joined = False
        self.busy_until = self.now_ms() + REBOOT_MS
        self._later(REBOOT_MS, "\r\n" + BANNER + "Version: RUI_%s_RAK3172-E\r\n" % self.version)

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
        if name in ("NWM", "NJM", "ADR", "CFM", "LPM", "LBT", "TIMEREQ"):
            return arg in ("0", "1")
        if name == "LPMLVL":  # changelog RUI-1126: STOP mode level 1 or 2
            return arg in ("1", "2")
        if name == "LINKCHECK":  # 0 off, 1 with the next uplink, 2 with every uplink
            return arg in ("0", "1", "2")
        if name == "BAND":
            return arg.isdigit() and int(arg) <= 12
        if name == "DR":  # AS923: 2..5 (AT manual; DR0/1 carry nothing under dwell time)
            return arg in ("2", "3", "4", "5")
        if name == "RETY":
            return arg.isdigit() and int(arg) <= 7
        if name == "CLASS":
            return arg.upper() in ("A", "B", "C")
        if name == "LBTRSSI":
            return arg.startswith("-") and arg[1:].isdigit() and int(arg) >= -140
        if name == "LBTSCANTIME":
            return arg.isdigit() and 1 <= int(arg) <= 1000
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
            if ok:
                self.regs["RX1DL"] = str(1000 * getattr(self.network, "rx1_delay_s", 1))
                self.fcnt = 0
                self.mac_pending = 0
            if not ok and attempts > 1:
                self._later(interval, "", lambda: self._try_join(attempts - 1, interval))
        self._later(delay, "+EVT:JOINED\r\n" if ok else "+EVT:JOIN_FAILED_RX_TIMEOUT\r\n",
                    done)

    def _fopts(self):
        """MAC-command bytes the next uplink carries: LinkCheckReq and DeviceTimeReq (1 each)
        and the answers the network asked for."""
        return ((1 if self.regs["LINKCHECK"] != "0" else 0)
                + (1 if self.regs["TIMEREQ"] == "1" else 0) + self.mac_pending)

    def _send(self, arg):
        port, _, data = arg.partition(":")
        if not port.isdigit() or not 1 <= int(port) <= 223 or not _hex_ok(data):
            return self._reply("AT_PARAM_ERROR")
        if not self.joined:
            return self._reply("AT_NO_NETWORK_JOINED")
        if self.now_ms() < self.busy_until:
            return self._reply("AT_BUSY_ERROR")  # the previous send is not complete
        if self.regs["LBT"] == "1" and getattr(self.network, "channel_busy", False):
            # LoRaMac NO_FREE_CHANNEL_FOUND -> -UDRV_INTERNAL_ERR -> AT_ERROR (service_lora.c)
            return self._reply("AT_ERROR")
        payload = bytes.fromhex(data)
        dr = int(self.regs["DR"])
        if len(payload) + self._fopts() > MAX_PAYLOAD[dr]:
            # service_lora_send: LoRaMacQueryTxPossible fails. With MAC commands pending RUI3
            # sends an empty frame to flush them; the payload is refused either way (review D3).
            self._reply("AT_PARAM_ERROR")
            if self._fopts() and len(payload) <= MAX_PAYLOAD[dr]:
                self._transmit(0, b"", False, dr, 1)
            return
        self._reply("OK")
        confirmed = self.regs["CFM"] == "1"
        tries = 1 + (int(self.regs["RETY"]) if confirmed else 0)
        self.fcnt += 1
        self._transmit(int(port), payload, confirmed, dr, tries)

    def _transmit(self, port, payload, confirmed, dr, tries):
        # a confirmed frame's retransmissions keep its frame counter
        if self.regs["LBT"] != "1":
            self.unlicensed += 1  # ARIB STD-T108 wants carrier sense before each frame
        air = lorawan.airtime_ms(len(payload) + self._fopts(), dr)
        eui = self.regs["DEVEUI"].lower()
        heard, downlinks = self.network.uplink(eui, port, payload, confirmed, dr, self.fcnt)
        if heard:
            self.mac_pending = 0  # the answers went out in this frame's FOpts
        # The outcome comes when the receive windows are done (McpsConfirm): after RX1 when
        # something came down in it (a downlink, an answer to a MAC request, an ack), else
        # after RX2, a second later (RegionAS923.h: RX2 = RX1 delay + 1 s).
        rx1 = heard and bool(downlinks or confirmed or self.regs["LINKCHECK"] != "0"
                             or self.regs["TIMEREQ"] == "1")
        end = self.now_ms() + air + int(self.regs["RX1DL"]) + (100 if rx1 else 1100)
        self.spent["lora_tx"] += air
        self.spent["lora_rx"] += (1 if rx1 else 2) * RX_WINDOW_MS
        if confirmed and not heard:  # RX1, RX2, then the ack timeout before a retry
            end = self.now_ms() + air + int(self.regs["RX1DL"]) + 1000 + ACK_TIMEOUT_MS
        self.busy_until = end
        # McpsConfirm prints the send's outcome first; McpsIndication then prints what came
        # down (+EVT:RX_1, +EVT:LINKCHECK) (service_lora.c; the published RUI3 log).
        after = ""
        if heard:
            for dport, dpayload in downlinks:
                after += "+EVT:RX_1:-72:9:UNICAST:%d:%s\r\n" % (dport, dpayload.hex())
                self.last_rx = (dport, dpayload)
            self.mac_pending += getattr(self.network, "mac_answers", lambda e: 0)(eui)
            if self.regs["LINKCHECK"] != "0":
                # +EVT:LINKCHECK:<status>:<demod margin dB>:<gateways>:<rssi>:<snr>
                after += "+EVT:LINKCHECK:0:12:%d:-95:6\r\n" % getattr(self.network,
                                                                    "gateways", 1)
            if self.regs["TIMEREQ"] == "1":
                now = getattr(self.network, "now", None)  # the network server's clock
                if now is not None:
                    self.ltime = (int(now()), end)
                after += "+EVT:TIMEREQ_OK\r\n" if now is not None else "+EVT:TIMEREQ_FAILED\r\n"
        if not heard and tries <= 1:
            # The MAC requests went unanswered: MlmeConfirm reports them failed
            # (service_lora.c: +EVT:LINKCHECK:1:0:0:0:0, +EVT:TIMEREQ_FAILED).
            if self.regs["LINKCHECK"] != "0":
                after += "+EVT:LINKCHECK:1:0:0:0:0\r\n"
            if self.regs["TIMEREQ"] == "1":
                after += "+EVT:TIMEREQ_FAILED\r\n"
        if heard or tries <= 1:
            if self.regs["LINKCHECK"] == "1":  # "once": set back, in flash again
                self.regs["LINKCHECK"] = "0"
                self.nvm_writes += 1
            self.regs["TIMEREQ"] = "0"
        if not confirmed:
            first = "+EVT:TX_DONE\r\n"
        elif heard:
            first = "+EVT:SEND_CONFIRMED_OK\r\n"
        elif tries > 1:
            self._later(end - self.now_ms(), "", lambda: self._transmit(
                port, payload, confirmed, dr, tries - 1))
            return
        else:
            first = "+EVT:SEND_CONFIRMED_FAILED(4)\r\n"  # LORAMAC_EVENT_INFO_STATUS_RX2_TIMEOUT
        self._later(end - self.now_ms(), first + after)
        if heard and getattr(self.network, "pending", lambda e: False)(eui):
            # A downlink with FPending: RUI3 sends an empty uplink at once to fetch the next
            # (McpsIndication: service_lora_send_null); AT+SEND is busy meanwhile.
            self._later(end - self.now_ms() + 10, "",
                        lambda: self._transmit(0, b"", False, dr, 1))
