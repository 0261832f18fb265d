"""Port security: which MAC and addresses each guest port is bound to, and from where."""

import ipaddress

from hypothesis import given, settings, strategies as st

from pve_microseg.model.config import Config, GuestSettings
from pve_microseg.model.ipam import EMPTY as NO_IPAM, IpamState
from pve_microseg.model.sdn import EMPTY as NO_SDN
from pve_microseg.parse import guestconf, microseg_yaml
from pve_microseg.policy import bindings, resolve, ruleset

GW_MAC = "02:00:00:00:01:01"
YAML = f"bridges:\n  web:\n    gateway-mac: {GW_MAC}\n    gateway-ip: [10.100.0.1, 2001:db8:100::1]\n" \
       "    subnets: [10.100.0.0/24, 2001:db8:100::/64]\n"


def cfg(extra=""):
    doc = microseg_yaml.parse_document(YAML + extra, "microseg.yaml")
    return resolve.config(doc, (), NO_SDN)


def vm(vmid, mac, ipconfig="", bridge="web", firewall=1):
    text = f"net0: virtio={mac},bridge={bridge},firewall={firewall}\n" + (f"ipconfig0: {ipconfig}\n" if ipconfig else "")
    return guestconf.parse(text, vmid, "qemu", f"{vmid}.conf")


def ct(vmid, mac, ip="dhcp"):
    return guestconf.parse(f"net0: name=eth0,bridge=web,hwaddr={mac},ip={ip},type=veth\n", vmid, "lxc", f"{vmid}.conf")


def by_port(guest, c, everyone=None, ipam=NO_IPAM):
    b, w = bindings.node_bindings([guest], everyone or [guest], c, ipam)
    return {x.port: x for x in b}, w


def test_a_vm_is_bound_to_its_mac_and_cloud_init_addresses_on_both_port_names():
    g = vm(101, "BC:24:11:00:01:01", "ip=10.100.0.5/24,ip6=2001:db8:100::5/64")
    ports, warnings = by_port(g, cfg())
    assert set(ports) == {"tap101i0", "fwpr101p0"} and not warnings
    b = ports["tap101i0"]
    assert (b.mode, b.mac, b.ipv4) == ("mac+ip", "bc:24:11:00:01:01", ("10.100.0.5",))
    assert b.ipv6 == ("2001:db8:100::5", "fe80::be24:11ff:fe00:101") and b.sources == ("ipconfig0",)


def test_a_container_by_dhcp_gets_no_ipv4_and_its_link_local():
    ports, warnings = by_port(ct(102, "BC:24:11:00:01:02"), cfg())
    b = ports["veth102i0"]
    assert b.ipv4 == () and b.ipv6 == ("fe80::be24:11ff:fe00:102",)
    assert any("no address is known" in w and "port-security: mac" in w for w in warnings)


def test_modes_per_bridge_and_per_guest_the_weakest_wins():
    g = vm(101, "BC:24:11:00:01:01", "ip=10.100.0.5/24")
    mac_only = by_port(g, cfg("guests:\n  101:\n    port-security: mac\n"))[0]["tap101i0"]
    assert (mac_only.mac, mac_only.ipv4, mac_only.ipv6) == ("bc:24:11:00:01:01", None, None)
    off = by_port(g, cfg("guests:\n  101:\n    port-security: 'off'\n"))[0]["tap101i0"]
    assert (off.mode, off.mac, off.ipv4) == ("off", None, None)
    bridge_mac = YAML.replace("    subnets:", "    port-security: mac\n    subnets:")
    c = resolve.config(microseg_yaml.parse_document(bridge_mac + "guests:\n  101:\n    port-security: mac+ip\n",
                                                    "m"), (), NO_SDN)
    assert by_port(g, c)[0]["tap101i0"].mode == "mac"              # a guest cannot raise its bridge's
    top_off = resolve.config(microseg_yaml.parse_document("port-security: 'off'\n" + YAML, "m"), (), NO_SDN)
    assert by_port(g, top_off)[0] == {}                             # no check on the bridge at all
    assert by_port(vm(101, "BC:24:11:00:01:01", bridge="vmbr9"), cfg())[0] == {}      # not managed


def test_a_mac_two_guests_claim_is_bound_to_neither():
    a, b = vm(101, "BC:24:11:00:00:01"), vm(102, "bc:24:11:00:00:01", "ip=10.100.0.6/24")
    bound, warnings = bindings.node_bindings([a, b], [a, b], cfg(), NO_IPAM)
    assert bound == () and sum("also configured on guest" in w for w in warnings) == 2


def test_a_gateway_mac_is_never_bound():
    ports, warnings = by_port(vm(101, GW_MAC.upper(), "ip=10.100.0.5/24"), cfg())
    assert ports == {} and "is a gateway's" in warnings[0]


def test_an_address_of_another_guest_is_not_bound():
    attacker = vm(101, "BC:24:11:00:00:01", "ip=10.100.0.9/24,ip6=2001:DB8:100::0009/64")
    victim = ct(102, "BC:24:11:00:00:02", "10.100.0.9/24")
    other = vm(103, "BC:24:11:00:00:03")
    c = cfg("guests:\n  103:\n    net0: [2001:db8:100::9]\n")
    ports, warnings = by_port(attacker, c, [attacker, victim, other])
    assert ports["tap101i0"].ipv4 == () and ports["tap101i0"].ipv6 == ("fe80::be24:11ff:fe00:1",)
    claimed = [w for w in warnings if "is also claimed on web for" in w]
    assert len(claimed) == 2 and "guest 102 in its own config" in claimed[0], warnings
    assert "guest 103 in microseg.yaml guests:" in claimed[1], warnings
    ipam = IpamState(path="x", by_guest={}, owners={"10.100.0.7": "104"})
    ports, warnings = by_port(vm(101, "BC:24:11:00:00:01", "ip=10.100.0.7/24"), c, ipam=ipam)
    assert ports["tap101i0"].ipv4 == () and any("belongs to guest 104" in w for w in warnings)


def test_ruleset_binds_through_shared_sets_and_a_bridge_can_opt_out():
    g = vm(101, "BC:24:11:00:01:01", "ip=10.100.0.5/24")
    c = cfg("guests:\n  101:\n    port-security: mac\n")
    bound, _ = bindings.node_bindings([g], [g], c, NO_IPAM)
    cmds = ruleset.full(c.bridges, bound)["nftables"]
    elems = {e["add"]["element"]["name"]: e["add"]["element"]["elem"] for e in cmds if "element" in e.get("add", {})}
    assert {"concat": ["tap101i0", "bc:24:11:00:01:01"]} in elems["bind-mac"]
    assert "bind-ip4" not in elems and "tap101i0" in elems["bind-any-ip4"]      # mac: IPv4 unchecked
    jumps = [c for c in cmds if c.get("add", {}).get("rule", {}).get("expr") == [{"jump": {"target": "guest-bind"}}]]
    assert len(jumps) == 1
    off = resolve.config(microseg_yaml.parse_document(YAML.replace("    subnets:", "    port-security: 'off'\n"
                                                                   "    subnets:"), "m"), (), NO_SDN)
    cmds = ruleset.full(off.bridges, ())["nftables"]
    assert not [c for c in cmds if c.get("add", {}).get("rule", {}).get("expr") == [{"jump": {"target": "guest-bind"}}]]


# ---------------------------------------------------------------- property

MACS = [f"bc:24:11:00:00:0{i}" for i in range(1, 6)] + [GW_MAC]
ADDRS = [f"10.100.0.{i}" for i in range(1, 6)] + [f"2001:db8:100::{i}" for i in range(1, 4)] + \
    ["169.254.0.1", "fe80::be24:11ff:fe00:2"]      # link-locals: another guest's EUI-64


@st.composite
def clusters(draw):
    guests, yaml_guests, owners = [], {}, {}
    for vmid in draw(st.lists(st.integers(100, 110), min_size=1, max_size=6, unique=True)):
        mac = draw(st.sampled_from(MACS))
        ips = draw(st.lists(st.sampled_from(ADDRS), max_size=2, unique=True))
        v4 = [a for a in ips if ":" not in a][:1]
        v6 = [a for a in ips if ":" in a][:1]
        ipc = ",".join([f"ip={a}/24" for a in v4] + [f"ip6={a}/64" for a in v6])
        guests.append(vm(vmid, mac, ipc) if draw(st.booleans()) else
                      ct(vmid, mac, f"{v4[0]}/24" if v4 else "dhcp"))
        if draw(st.booleans()):
            yaml_guests[vmid] = GuestSettings(vmid=vmid, addresses={0: tuple(draw(
                st.lists(st.sampled_from(ADDRS), max_size=2, unique=True)))})
        if draw(st.booleans()):
            owners[draw(st.sampled_from(ADDRS))] = str(vmid)
    base = cfg()
    c = Config(bridges=base.bridges, hookscript=base.hookscript, guests=yaml_guests)
    return guests, c, IpamState(path="x", by_guest={}, owners=owners)


@settings(max_examples=300, deadline=None)
@given(clusters())
def test_no_binding_names_another_guests_mac_or_address_or_a_gateways(cluster):
    """A bound MAC is the guest's alone; a bound address is the guest's own
    EUI-64 link-local, or claimed for it by the operator and by no other
    guest's operator entry, or taken from its own config and claimed by no
    other guest (operator entry, own config) nor given by the IPAM to another."""
    from pve_microseg.parse.addresses import eui64_link_local
    guests, c, ipam = cluster
    bound, _ = bindings.node_bindings(guests, guests, c, ipam)
    macs, own, listed = {}, {}, {}
    owners = {ipaddress.ip_address(ip): int(v) for ip, v in ipam.owners.items()}
    for g in guests:
        for nic in g.nics:
            macs.setdefault(nic.mac, set()).add(g.vmid)
            if g.vmid in c.guests and nic.index in c.guests[g.vmid].addresses:
                continue            # the operator's list is the NIC's whole list
            for ip in nic.static:
                if owners.get(ipaddress.ip_address(ip), g.vmid) == g.vmid:     # else the IPAM says no
                    own.setdefault(ipaddress.ip_address(ip), set()).add(g.vmid)
        for ips in (c.guests[g.vmid].addresses.values() if g.vmid in c.guests else ()):
            for ip in ips:
                listed.setdefault(ipaddress.ip_address(ip), set()).add(g.vmid)
    for b in bound:
        assert b.mac not in c.gateway_macs and macs[b.mac] == {b.vmid}, b
        for ip in (b.ipv4 or ()) + (b.ipv6 or ()):
            a = ipaddress.ip_address(ip)
            assert a not in c.gateway_ips, b
            mine = {ipaddress.ip_address(x) for ips in (c.guests[b.vmid].addresses.values()
                                                        if b.vmid in c.guests else ()) for x in ips}
            if a == eui64_link_local(b.mac):
                continue                                                # its own, always
            if a in mine:
                assert listed[a] == {b.vmid}, (b, listed.get(a))       # the operator's word, unshared
            elif a.is_link_local:
                assert a == eui64_link_local(b.mac), b
            else:
                assert own.get(a, set()) <= {b.vmid} and listed.get(a, set()) <= {b.vmid}, (b, a)
                assert owners.get(a, b.vmid) == b.vmid, (b, a)


def test_the_operator_and_the_ipam_outrank_a_guests_own_config():
    victim = vm(102, "BC:24:11:00:00:02", "ip=10.100.0.9/24")
    attacker = vm(101, "BC:24:11:00:00:01", "ip=10.100.0.9/24")
    listed = cfg("guests:\n  102:\n    net0: [10.100.0.9]\n")
    both = [attacker, victim]
    assert by_port(victim, listed, both)[0]["tap102i0"].ipv4 == ("10.100.0.9",)     # the operator's word
    assert by_port(attacker, listed, both)[0]["tap101i0"].ipv4 == ()
    ipam = IpamState(path="x", by_guest={("102", "bc:24:11:00:00:02"): ("10.100.0.9",)},
                     owners={"10.100.0.9": "102"})
    victim_dhcp = ct(102, "BC:24:11:00:00:02")
    both = [attacker, victim_dhcp]
    assert by_port(victim_dhcp, cfg(), both, ipam)[0]["veth102i0"].ipv4 == ("10.100.0.9",)
    assert by_port(attacker, cfg(), both, ipam)[0]["tap101i0"].ipv4 == ()
    assert by_port(victim, cfg(), [attacker, victim])[0]["tap102i0"].ipv4 == ()      # alike: neither


def test_a_guests_own_link_local_claims_are_refused():
    g = vm(101, "BC:24:11:00:00:01", "ip=169.254.0.5/16,ip6=fe80::be24:11ff:fe00:2/64")
    ports, warnings = by_port(g, cfg())
    assert ports["tap101i0"].ipv4 == () and ports["tap101i0"].ipv6 == ("fe80::be24:11ff:fe00:1",)
    assert sum("is a link-local address" in w for w in warnings) == 2


def test_when_a_guest_config_is_unreadable_no_own_config_address_is_bound():
    g = vm(101, "BC:24:11:00:00:01", "ip=10.100.0.5/24")
    bound, warnings = bindings.node_bindings([g], [g], cfg("guests:\n  102:\n    port-security: mac\n"),
                                             NO_IPAM, complete=False)
    assert {b.ipv4 for b in bound} == {()} and any("could not be read" in w for w in warnings)
    listed = cfg("guests:\n  101:\n    net0: [10.100.0.5]\n")
    bound, _ = bindings.node_bindings([g], [g], listed, NO_IPAM, complete=False)
    assert {b.ipv4 for b in bound} == {("10.100.0.5",)}              # the operator's word stands


@settings(max_examples=300, deadline=None)
@given(clusters())
def test_the_configs_the_hookscript_reads_decide_as_all_of_them_would(cluster):
    """The guest hookscript reads only the configs ClaimQuery wants (issue
    12); the addresses each guest keeps are those the claims of every guest
    of the cluster leave it."""
    from pve_microseg.policy import nicaddr
    guests, c, ipam = cluster
    everyone = bindings.claims(guests, c, ipam)
    for g in guests:
        query = bindings.claim_query(g, c, ipam)
        read = [o for o in guests if query.wanted(o.vmid, o.text)]
        some = bindings.claims([g, *read], c, ipam, bridges=query.bridges)
        for nic in g.nics:
            assert nicaddr.nic_addresses(g, nic, c, ipam, some) == nicaddr.nic_addresses(g, nic, c, ipam, everyone)


def test_an_address_claimed_by_another_guest_names_it():
    a = vm(101, "BC:24:11:00:00:01", "ip=10.100.0.9/24")
    b = vm(102, "BC:24:11:00:00:02", "ip=10.100.0.9/24")
    claims = bindings.claims([a, b], cfg(), NO_IPAM)
    assert claims.claimants("web", "10.100.0.9", 101, 1) == [(102, 1)]
    assert claims.claimants("web", "10.100.0.9", 101, 2) == []
    assert bindings.claim_query(a, cfg(), NO_IPAM).wanted(102, b.text)
    assert not bindings.claim_query(a, cfg(), NO_IPAM).wanted(102, b.text.replace("10.100.0.9", "10.100.0.8"))


def test_the_hookscript_reads_a_config_with_the_ipv6_address_in_any_spelling():
    a = vm(101, "BC:24:11:00:00:01", "ip6=2001:db8:100::9/64")
    query = bindings.claim_query(a, cfg(), NO_IPAM)
    assert query.wanted(102, "net0: virtio=BC:24:11:00:00:02,bridge=web\nipconfig0: ip6=2001:DB8:100:0::0009/64\n")
    for spelled in ("2001:0DB8:0100:0:0:0:0:0009", "2001:db8:100::0.0.0.9", "2001:db8:100:0::9"):
        assert query.wanted(102, f"net0: virtio=BC:24:11:00:00:02,bridge=web\nipconfig0: ip6={spelled}/64\n")
    for other in ("2001:db8:100::8", "2001:db8:101::9", "auto", "zz::9", "2001:db8:100::0.0.0.8"):
        assert not query.wanted(102, f"net0: virtio=BC:24:11:00:00:02,bridge=web\nipconfig0: ip6={other}/64\n")
    assert not query.wanted(102, "net0: virtio=BC:24:11:00:00:02,bridge=db\nipconfig0: ip6=2001:db8:100::9/64\n")
