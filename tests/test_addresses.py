import ipaddress

import pytest
from hypothesis import given, strategies as st

from pve_microseg.parse import addresses


@pytest.mark.parametrize("text,mac", [
    ("BC:24:11:2C:69:EC", "bc:24:11:2c:69:ec"),
    ("bc-24-11-2c-69-ec", "bc:24:11:2c:69:ec"),
    (" 00:00:5e:00:01:64 ", "00:00:5e:00:01:64"),
])
def test_parse_mac_normalises(text, mac):
    assert addresses.parse_mac(text) == mac


@pytest.mark.parametrize("text,why", [
    ("bc:24:11:2c:69", "not a MAC"),
    ("bc:24:11:2c:69:ec:00", "not a MAC"),
    ("bc:24-11:2c:69:ec", "not a MAC"),
    ("gg:24:11:2c:69:ec", "not a MAC"),
    ("ff:ff:ff:ff:ff:ff", "multicast"),
    ("01:00:5e:00:00:01", "multicast"),
    ("00:00:00:00:00:00", "not a usable"),
])
def test_parse_mac_rejects(text, why):
    with pytest.raises(ValueError, match=why):
        addresses.parse_mac(text)


@pytest.mark.parametrize("text,why", [
    ("10.0.0.1/24", "without a prefix"),
    ("10.0.0.256", "not an IP"),
    ("224.0.0.1", "unicast"),
    ("0.0.0.0", "unicast"),
    ("::", "unicast"),
    ("ff02::1", "unicast"),
    ("255.255.255.255", "unicast"),
])
def test_parse_ip_rejects(text, why):
    with pytest.raises(ValueError, match=why):
        addresses.parse_ip(text)


def test_eui64_link_local_matches_proxmox_example():
    # RFC 4291 appendix A: BC:24:11:4D:B0:FE -> fe80::be24:11ff:fe4d:b0fe
    assert str(addresses.eui64_link_local("bc:24:11:4d:b0:fe")) == "fe80::be24:11ff:fe4d:b0fe"


def test_solicited_node():
    assert str(addresses.solicited_node(ipaddress.ip_address("2001:db8::1:2:3"))) == "ff02::1:ff02:3"


@given(st.binary(min_size=6, max_size=6))
def test_eui64_is_link_local_and_reversible(raw):
    mac = ":".join(f"{b:02x}" for b in raw)
    ll = addresses.eui64_link_local(mac)
    assert ll.is_link_local
    iid = ll.packed[8:]
    assert iid[3:5] == b"\xff\xfe"
    assert bytes([iid[0] ^ 2]) + iid[1:3] + iid[5:] == raw


@given(st.ip_addresses(v=6))
def test_solicited_node_keeps_low_24_bits(ip):
    snm = addresses.solicited_node(ip)
    assert snm.is_multicast
    assert int(snm) & 0xFFFFFF == int(ip) & 0xFFFFFF
