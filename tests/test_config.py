import ipaddress

import pytest

from pve_microseg.edges import pveconf, state
from pve_microseg.parse import legacy, microseg_yaml, sdn
from pve_microseg.policy import resolve
from pve_microseg.model.errors import ConfigError
from conftest import RUNNING_CONFIG_RS

SDN = sdn.parse_running_config(RUNNING_CONFIG_RS.read_text())


def resolve_yaml(text, sdn_cfg=SDN):
    return [resolve.resolve(s, sdn_cfg) for s in microseg_yaml.parse_document(text, "microseg.yaml").bridges]


def test_vnet_gateway_defaults_to_subnet_gateways():
    (b,) = resolve_yaml("bridges:\n  vnet0:\n    gateway-mac: 00:00:5E:00:01:64\n")
    assert b.vnet
    assert b.gateway.macs == ("00:00:5e:00:01:64",)
    assert [str(ip) for ip in b.gateway.ipv4] == ["10.101.1.1"]
    # the subnet gateway plus the router's EUI-64 link-local
    assert [str(ip) for ip in b.gateway.ipv6] == ["fd80::1", "fe80::200:5eff:fe00:164"]


def test_several_macs_for_vrrp_and_explicit_ips():
    (b,) = resolve_yaml("bridges:\n  vnet0:\n"
                        "    gateway-mac: [00:00:5e:00:01:64, bc:24:11:00:00:01, bc:24:11:00:00:02]\n"
                        "    gateway-ip: [10.101.0.1, 10.101.0.2]\n")
    assert len(b.gateway.macs) == 3
    assert [str(ip) for ip in b.gateway.ipv4] == ["10.101.0.1", "10.101.0.2"]


def test_plain_bridge_needs_gateway_ip():
    with pytest.raises(ConfigError, match=r"microseg.yaml:2: bridges.vmbr1.gateway-ip: missing: vmbr1 is not an SDN VNet"):
        resolve_yaml("bridges:\n  vmbr1:\n    gateway-mac: 52:54:00:12:34:56\n")


def test_plain_bridge_with_subnets_checks_gateway():
    with pytest.raises(ConfigError, match=r":5: bridges.vmbr1.gateway-ip: 192.168.2.1 is outside every subnet"):
        resolve_yaml("bridges:\n  vmbr1:\n    gateway-mac: 52:54:00:12:34:56\n"
                     "    subnets: 192.168.1.0/24\n    gateway-ip: 192.168.2.1\n")


@pytest.mark.parametrize("text,where", [
    ("bridges:\n  vnet0:\n    gateway-mac: [00:00:5e:00:01:64, zz]\n",
     r"microseg.yaml:3: bridges.vnet0.gateway-mac\[1\]: 'zz' is not a MAC address"),
    ("bridges:\n  vnet0:\n    gateway-mac: 00:00:5e:00:01:64\n    gateway-ip: 10.200.0.1\n",
     r"microseg.yaml:4: bridges.vnet0.gateway-ip: 10.200.0.1 is outside every subnet of vnet0 \(10.101.0.0/16, fd80::/64\)"),
    ("bridges:\n  vmbr1:\n    gateway-ip: 10.101.0.1\n",
     r"microseg.yaml:2: bridges.vmbr1.gateway-mac: missing"),
    ("bridges:\n  bad/name:\n    gateway-mac: 00:00:5e:00:01:64\n",
     r"microseg.yaml:2: bridges.bad/name: 'bad/name' is not a valid interface name"),
    ("bridges:\n  averyveryverylongname:\n    gateway-mac: 00:00:5e:00:01:64\n",
     r"microseg.yaml:2: .*not a valid interface name"),
    ("bridges:\n  tap100i0:\n    gateway-mac: 00:00:5e:00:01:64\n",
     r"microseg.yaml:2: .*guest port name"),
    ("bridges:\n  vnet0:\n    gateway-mac: 00:00:5e:00:01:64\n    gatway-ip: 10.101.0.1\n",
     r"microseg.yaml:4: bridges.vnet0.gatway-ip: unknown key 'gatway-ip'"),
    ("bridge:\n  vnet0: {}\n", r"microseg.yaml:1: bridge: unknown key 'bridge'"),
    ("bridges:\n  vnet0:\n    gateway-mac: 00:00:5e:00:01:64\n  vnet0:\n    gateway-mac: 00:00:5e:00:01:65\n",
     r"microseg.yaml:4: bridges.vnet0: duplicate key \(first on line 2\)"),
    ("bridges:\n  vnet0:\n    gateway-mac: [00:00:5e:00:01:64\n", r"microseg.yaml:\d+: not valid YAML"),
    ("bridges:\n  vnet0:\n    gateway-ip: 10.101.0.1/16\n    gateway-mac: 00:00:5e:00:01:64\n",
     r"microseg.yaml:3: bridges.vnet0.gateway-ip: '10.101.0.1/16' is not an IP address \(write the address without a prefix length\)"),
    ("bridges: [vnet0]\n", r"microseg.yaml:1: bridges: expected a mapping"),
])
def test_errors_name_file_line_field(text, where):
    with pytest.raises(ConfigError, match=where):
        resolve_yaml(text)


def test_empty_config_manages_nothing():
    assert resolve_yaml("") == []
    assert resolve_yaml("bridges:\n") == []
    assert resolve_yaml("# only a comment\n") == []


def test_legacy_file():
    specs = legacy.parse_legacy(
        "# BRIDGE;GATEWAY_IP;GATEWAY_MAC\n"
        "vnet1;10.102.0.1;02:00:00:00:00:01\n\n"
        " vnet1 ; 10.102.0.2 ; 02:00:00:00:00:02 \n"
        "vmbr1;192.168.1.1;52:54:00:12:34:56\n", "L2-microsegmentation.conf")
    bridges = {s.name: resolve.resolve(s, SDN) for s in specs}
    assert bridges["vnet1"].gateway.macs == ("02:00:00:00:00:01", "02:00:00:00:00:02")
    assert [str(i) for i in bridges["vnet1"].gateway.ipv4] == ["10.102.0.1", "10.102.0.2"]
    assert bridges["vmbr1"].source == "L2-microsegmentation.conf:5"


@pytest.mark.parametrize("line,where", [
    ("vnet1;10.102.0.1", r"L2.conf:1: expected BRIDGE;GATEWAY_IP;GATEWAY_MAC"),
    ("vnet1;10.102.0.x;02:00:00:00:00:01", r"L2.conf:1: GATEWAY_IP: '10.102.0.x' is not an IP"),
    ("vnet1;10.102.0.1;02:00:00:00:00", r"L2.conf:1: GATEWAY_MAC: .*not a MAC"),
    ("bad name;10.102.0.1;02:00:00:00:00:01", r"L2.conf:1: BRIDGE: 'bad name' is not a valid"),
])
def test_legacy_errors(line, where):
    with pytest.raises(ConfigError, match=where):
        legacy.parse_legacy(line + "\n", "L2.conf")


def test_legacy_gateway_outside_subnet():
    (spec,) = legacy.parse_legacy("vnet0;192.168.9.1;02:00:00:00:00:01\n", "L2.conf")
    with pytest.raises(ConfigError, match=r"L2.conf:1: GATEWAY_IP: 192.168.9.1 is outside every subnet"):
        resolve.resolve(spec, SDN)


def test_yaml_wins_over_legacy(fake_node):
    fake_node.running_config()
    fake_node.write_config("bridges:\n  vnet0:\n    gateway-mac: 00:00:5e:00:01:64\n")
    fake_node.write_legacy("vnet0;10.101.0.9;02:00:00:00:00:09\nvnet1;10.102.0.1;02:00:00:00:00:01\n")
    cfg = pveconf.config(fake_node.paths)
    assert sorted(cfg.names) == ["vnet0", "vnet1"]
    assert cfg.bridge("vnet0").gateway.macs == ("00:00:5e:00:01:64",)
    (warning,) = cfg.warnings
    assert "L2-microsegmentation.conf:1: bridge vnet0 is also configured in" in warning


def test_link_local_gateway_ip_needs_no_subnet():
    (b,) = resolve_yaml("bridges:\n  vnet0:\n    gateway-mac: 00:00:5e:00:01:64\n"
                        "    gateway-ip: [10.101.0.1, fe80::1]\n")
    assert ipaddress.ip_address("fe80::1") in b.gateway.ipv6


def test_model_json_round_trip():
    (b,) = resolve_yaml("bridges:\n  vnet0:\n    gateway-mac: 00:00:5e:00:01:64\n")
    from pve_microseg.model.bridge import ManagedBridge
    assert ManagedBridge.from_json(b.to_json()) == b


def test_parsed_file_is_cached_by_its_exact_text(fake_node):
    paths = fake_node.paths
    text = ("bridges:\n  web:\n    gateway-mac: [02:00:00:00:01:01, 02:00:00:00:01:02]\n"
            "    gateway-ip: 10.100.0.1\n    subnets: 10.100.0.0/24\n    isolate-ports: true\n"
            "hookscript:\n  on-failure: fail-open\n  chain: local:snippets/x.sh\n"
            "guests:\n  101:\n    net0: [10.100.0.5, 2001:db8::5]\n    policy-in: DROP\n")
    fake_node.write_config(text)
    fresh = microseg_yaml.parse_document(text, paths.config)
    assert pveconf.document(paths) == (text, fresh, True)          # parsed: no cache yet
    cache = paths.run_dir / "microseg.yaml.json"
    assert not cache.exists()                                       # reading writes nothing
    state.save_document(paths, text, fresh)
    assert pveconf.document(paths) == (text, fresh, False)         # from the cache
    data = __import__("json").loads(cache.read_text())
    data["document"]["hookscript"]["on_failure"] = "poisoned"
    cache.write_text(__import__("json").dumps(data))
    assert pveconf.document(paths)[1].hookscript.on_failure == "poisoned"   # it is used
    changed = text.replace("fail-open", "fail-closed")
    fake_node.write_config(changed)
    assert pveconf.document(paths)[1].hookscript.on_failure == "fail-closed"


def _sdn(zone_type, mac=None):
    import json
    zone = {"type": zone_type, **({"mac": mac} if mac else {})}
    return sdn.parse_running_config(json.dumps({
        "zones": {"ids": {"z1": zone}},
        "vnets": {"ids": {"v1": {"type": "vnet", "zone": "z1", "tag": 100}}},
        "subnets": {"ids": {"z1-10.9.0.0-24": {"type": "subnet", "vnet": "v1", "gateway": "10.9.0.1"},
                            "z1-fd09::-64": {"type": "subnet", "vnet": "v1", "gateway": "fd09::1"}}}}))


def test_simple_zone_needs_no_gateway_mac():
    (b,) = resolve_yaml("bridges:\n  v1:\n", _sdn("simple"))
    assert b.node_is_gateway and b.zone_type == "simple" and b.gateway.macs == ()
    assert [str(ip) for ip in b.gateway.ips] == ["10.9.0.1", "fd09::1"]
    assert b.intra_vnet_routing == "drop"
    assert [str(n) for n in b.routed_subnets] == ["10.9.0.0/24", "fd09::/64"]


def test_evpn_zone_gateway_mac_is_the_zone_mac():
    (b,) = resolve_yaml("bridges:\n  v1:\n", _sdn("evpn", "BC:24:11:00:00:0A"))
    assert b.node_is_gateway and b.gateway.macs == ("bc:24:11:00:00:0a",)
    assert "fe80::be24:11ff:fe00:a" in [str(ip) for ip in b.gateway.ipv6]
    # microseg.yaml may still name it
    (b,) = resolve_yaml("bridges:\n  v1:\n    gateway-mac: 02:00:00:00:00:01\n", _sdn("evpn", "bc:24:11:00:00:0a"))
    assert b.gateway.macs == ("02:00:00:00:00:01",)


def test_vlan_zone_still_needs_the_routers_mac():
    with pytest.raises(ConfigError, match=r"microseg.yaml:2: bridges.v1.gateway-mac: missing"):
        resolve_yaml("bridges:\n  v1:\n", _sdn("vlan"))


def test_intra_vnet_routing_setting():
    doc = microseg_yaml.parse_document("intra-vnet-routing: allow\nbridges:\n  v1:\n", "microseg.yaml")
    cfg = resolve.config(doc, [], _sdn("simple"))
    assert cfg.bridge("v1").intra_vnet_routing == "allow" and cfg.bridge("v1").routed_subnets == ()
    doc = microseg_yaml.parse_document("intra-vnet-routing: allow\nbridges:\n  v1:\n"
                                       "    intra-vnet-routing: drop\n", "microseg.yaml")
    assert resolve.config(doc, [], _sdn("simple")).bridge("v1").intra_vnet_routing == "drop"
    with pytest.raises(ConfigError, match=r"microseg.yaml:1: intra-vnet-routing: 'maybe' is not one of: drop, allow"):
        microseg_yaml.parse_document("intra-vnet-routing: maybe\n", "microseg.yaml")


def test_interface_and_node_names_match_whole_strings():
    """Issue 12: `$` matched before a final newline, so "vmbr0\\n" passed as a
    bridge name and never matched the real bridge."""
    from pve_microseg.parse import names
    for good in ("vmbr0", "vnet1", "vmbr0.100", "a"):
        assert names.is_ifname(good)
    for bad in ("vmbr0\n", "../x", "/etc", ".", "..", "", "a" * 16, "vmbr\u0660", None):
        assert not names.is_ifname(bad), bad
    for good in ("pve1", "node-2", "a"):
        assert names.is_node(good)
    for bad in ("pve1\n", "../pve1", "-pve", "pve-", "pve_1", "", "n" * 64):
        assert not names.is_node(bad), bad


@pytest.mark.parametrize("ip,why", [
    ("127.0.0.1", "127.0.0.1 is a loopback address"),
    ("::ffff:10.100.0.1", "is an IPv4-mapped IPv6 address (write 10.100.0.1)"),
    ("0.0.0.0", "unspecified"),
    ("ff02::1", "multicast"),
    ("'0.0.0.0/0'", "0.0.0.0/0 is a prefix, not a host address"),
    ("10.100.0.0", "10.100.0.0 is the network address of 10.100.0.0/24: not a router's address"),
    ("10.100.0.255", "10.100.0.255 is the broadcast address of 10.100.0.0/24"),
])
def test_a_gateway_address_no_router_can_have_is_refused(ip, why):
    """Issue 12: network, broadcast, loopback, IPv4-mapped gateway addresses."""
    text = (f"bridges:\n  web:\n    gateway-mac: 02:00:00:00:01:01\n    gateway-ip: {ip}\n"
            "    subnets: [10.100.0.0/24]\n")
    with pytest.raises(ConfigError) as e:
        resolve.config(microseg_yaml.parse_document(text, "microseg.yaml"), [], _sdn("simple"))
    assert str(e.value).startswith("microseg.yaml:4: bridges.web.gateway-ip: ") and why in str(e.value), str(e.value)


def test_a_legacy_gateway_that_is_a_network_address_is_refused():
    from pve_microseg.parse import legacy
    specs = legacy.parse_legacy("vnet0;10.101.0.0;02:00:00:00:01:01\n", "L2.conf")
    with pytest.raises(ConfigError, match=r"L2.conf:1: GATEWAY_IP: 10.101.0.0 is the network address of 10.101.0.0/16"):
        resolve.config(None, specs, SDN)
    with pytest.raises(ConfigError, match=r"L2.conf:1: GATEWAY_IP: .*loopback"):
        legacy.parse_legacy("vnet0;127.0.0.1;02:00:00:00:01:01\n", "L2.conf")


@pytest.mark.parametrize("ip,why", [
    ("'0.0.0.0/0'", "0.0.0.0/0 is a prefix, not a host address"),
    ("'10.0.0.0/24'", "is a prefix"),
    ("224.0.0.5", "multicast"),
    ("127.0.0.1", "loopback"),
    ("'::'", "unspecified"),
    ("'::ffff:10.0.0.5'", "IPv4-mapped"),
])
def test_a_guest_address_no_host_can_have_is_refused_without_subnets(ip, why):
    text = f"guests:\n  101:\n    net0: [10.0.0.5, {ip}]\n"
    with pytest.raises(ConfigError, match=rf"microseg.yaml:3: guests.101.net0\[1\]: .*{why}"):
        microseg_yaml.parse_document(text, "microseg.yaml")
