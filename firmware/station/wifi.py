# Joining the access point, on the board's network.WLAN (the real one or the sim's). The
# access point of the last connection is kept in RTC state, so later wakes skip our own scan
# of every access point in range. (Its channel is kept too, but cannot be used: connect()
# clears the station config, channel included, in ports/esp32/network_wlan.c.)
# A station provisioned with its own address (wifi "ip", "netmask", "gateway", "dns") sets it
# before connecting: the port then stops the DHCP client (ports/esp32/network_common.c
# esp_ifconfig) and the link is up at association, without DHCP's exchange on every wake.
import time


def connect(wlan, wifi, state, clock, timeout_ms=15000, feed=None):
    """True once the station has a link (and an address). Waits in the board's time, feeding
    the watchdog; gives up after timeout_ms and forgets the access point."""
    wlan.active(True)
    if wlan.isconnected():
        return True
    if not wifi:
        return False
    ssid = wifi["ssid"]
    bssid = state.get("bssid")
    if not bssid:
        # Compare bytes: a neighbour's SSID need not be UTF-8 (Shift-JIS names exist in Japan).
        want = ssid.encode()
        seen = [ap for ap in wlan.scan() if bytes(ap[0]) == want]
        if not seen:
            return False
        best = max(seen, key=lambda ap: ap[3])
        bssid = "".join("%02x" % b for b in best[1])
        state["bssid"], state["channel"] = bssid, best[2]
    if wifi.get("ip"):
        wlan.ifconfig((wifi["ip"], wifi["netmask"], wifi["gateway"], wifi["dns"]))
    wlan.connect(ssid, wifi["password"], bssid=bytes.fromhex(bssid))
    start = clock.ticks_ms()
    while not wlan.isconnected():
        if time.ticks_diff(clock.ticks_ms(), start) > timeout_ms:
            wlan.active(False)
            state["bssid"] = state["channel"] = None  # the AP may have changed: scan next time
            return False
        clock.sleep_ms(50)
        if feed:
            feed()
    return True
