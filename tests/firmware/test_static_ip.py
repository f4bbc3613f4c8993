# A station with a static address (creds["wifi"] "ip", "netmask", "gateway", "dns"): the
# firmware sets it before connecting, and the sim's WLAN behaves as the ESP32 port's
# ifconfig (ports/esp32/network_common.c): DHCP stopped, the link up at association.
from station import state, wifi
from station.hw import sim, sim_net
from support import raises

WLAN = sim_net.SimWLAN
DHCP = {"ssid": sim.SIM_SSID, "password": "pw"}
STATIC = {"ssid": sim.SIM_SSID, "password": "pw", "ip": "192.168.4.20",
          "netmask": "255.255.255.0", "gateway": "192.168.4.1", "dns": "192.168.4.1"}


def static(**changes):
    creds = dict(STATIC)  # (MicroPython has no {**d} displays)
    creds.update(changes)
    return creds


def joined(creds, world=None):
    """A board that joined with these credentials on a later wake (the access point known)."""
    board = sim.Board(world or sim.World())
    st = state.defaults()
    st["bssid"], st["channel"] = "020000000002", 6
    assert wifi.connect(board.wifi(), creds, st, board)
    return board


def test_a_static_address_is_used_and_no_dhcp_time_is_spent():
    dhcp, own = joined(DHCP), joined(STATIC)
    assert dhcp.wifi().ifconfig() == ("192.168.4.100", "255.255.255.0", "192.168.4.1",
                                      "192.168.4.1")  # the router's lease
    assert own.wifi().ifconfig() == ("192.168.4.20", "255.255.255.0", "192.168.4.1",
                                     "192.168.4.1")
    # up at association (one 50 ms poll of the firmware's at most), DHCP's exchange saved
    assert WLAN.FIND_MS + WLAN.ASSOC_MS <= own.ms < WLAN.FIND_MS + WLAN.ASSOC_MS + 50
    assert dhcp.ms >= WLAN.FIND_MS + WLAN.ASSOC_MS + WLAN.DHCP_MS
    assert dhcp.spent["wifi"] - own.spent["wifi"] >= WLAN.DHCP_MS - 50
    assert own.wifi().routed()  # an address of the access point's network


def test_ifconfig_reads_addresses_as_the_port_does():
    board = sim.Board(sim.World())
    wlan = board.wifi()
    assert wlan.ifconfig() == ("0.0.0.0",) * 4  # no address before a link
    wlan.ifconfig(("10.1.2.3", 16, "10.1.0.1", "8.8.8.8"))  # a prefix length for the mask
    assert wlan.ifconfig() == ("10.1.2.3", "255.255.0.0", "10.1.0.1", "8.8.8.8")
    # netutils_parse_ipv4_addr checks the dots, not the numbers: why the tool checks them
    wlan.ifconfig(["10.0.0.300", "255.255.255.0", "10.0.0.1", ""])
    assert wlan.ifconfig() == ("10.0.0.44", "255.255.255.0", "10.0.0.1", "0.0.0.0")
    for bad in (("10.0.0", "255.255.255.0", "10.0.0.1", "10.0.0.1"),
                ("10.0.0.5", "255.255.255.0.0", "10.0.0.1", "10.0.0.1"),
                ("10.0.0.5", "255.255.255.0", "10.0.0.1"), "static"):
        raises(ValueError, wlan.ifconfig, bad)
    raises(TypeError, wlan.ifconfig, (None, 24, "10.0.0.1", "10.0.0.1"))
    wlan.ifconfig("dhcp")  # the DHCP client started again
    assert wlan.static is None


def test_an_address_outside_the_access_points_network_has_a_link_but_no_route():
    for creds in (static(ip="192.168.9.20", gateway="192.168.9.1"),  # other subnet
                  static(gateway="192.168.4.254"),  # nobody at that gateway
                  static(ip="192.168.4.1")):  # the router's own address
        board = joined(creds)
        assert board.wifi().isconnected()  # GOT_IP is posted whatever the address
        start = board.ms
        e = raises(OSError, board.net_connect, "example.net", 443, 10)
        assert e.args[0] == sim_net.MDNS_FAIL and board.ms - start == sim_net.DNS_GIVE_UP_MS
        start = board.ms
        e = raises(OSError, board.net_connect, "127.0.0.1", 443, 10)  # no DNS: TCP waits it out
        assert e.args[0] == sim.ETIMEDOUT and board.ms - start == 10000


def test_the_world_declares_its_own_network():
    w = sim.World()
    w.lan = ("10.20.0.0", 22, "10.20.0.1", "10.20.1.7")
    board = joined(static(ip="10.20.3.9", netmask=22, gateway="10.20.0.1",
                           dns="10.20.0.1"), w)
    assert board.wifi().routed()
    assert joined(DHCP, w).wifi().ifconfig()[0] == "10.20.1.7"
    assert not joined(STATIC, w).wifi().routed()  # 192.168.4.20 does not fit there
