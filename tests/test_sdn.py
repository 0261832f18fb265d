import ipaddress

import pytest

from conftest import RUNNING_CONFIG_FW, RUNNING_CONFIG_RS
from pve_microseg.edges import pveconf
from pve_microseg.model.sdn import EMPTY
from pve_microseg.parse import sdn
from pve_microseg.model.errors import SdnConfigError


def test_running_config_proxmox_ve_rs_fixture():
    cfg = sdn.parse_running_config(RUNNING_CONFIG_RS.read_text())
    assert cfg.vnets == {"vnet0", "vnet1"}
    vnet0 = {s.id: s for s in cfg.subnets_of("vnet0")}
    assert vnet0["zone0-10.101.0.0-16"].network == ipaddress.ip_network("10.101.0.0/16")
    assert vnet0["zone0-10.101.0.0-16"].gateway == ipaddress.ip_address("10.101.1.1")
    assert vnet0["zone0-fd80::-64"].network == ipaddress.ip_network("fd80::/64")
    assert vnet0["zone0-fd80::-64"].gateway == ipaddress.ip_address("fd80::1")
    (vnet1,) = cfg.subnets_of("vnet1")
    assert vnet1.gateway is None


def test_running_config_proxmox_firewall_fixture():
    cfg = sdn.parse_running_config(RUNNING_CONFIG_FW.read_text())
    assert cfg.vnets == {"public"}
    assert sorted(str(s.gateway) for s in cfg.subnets_of("public")) == ["10.101.1.1", "fd80::1"]


def test_section_config_reference_example():
    vnets = "vnet: web\n\tzone dmz\n\ttag 100\n\tisolate-ports 1\n\nvnet: db\n\tzone dmz\n\ttag 101\n"
    subnets = ("# comment\nsubnet: dmz-10.100.0.0-24\n\tvnet web\n\tgateway 10.100.0.1\n\n"
               "subnet: dmz-10.101.0.0-24\n\tvnet db\n\tgateway 10.101.0.1\n")
    cfg = sdn.parse_pending_config(vnets, subnets, "vnets.cfg", "subnets.cfg")
    assert cfg.vnets == {"web", "db"}
    assert [str(s.gateway) for s in cfg.subnets_of("web")] == ["10.100.0.1"]


def test_section_config_errors_name_line():
    with pytest.raises(SdnConfigError, match=r"subnets.cfg:3: subnet dmz-10.100.0.0-24.gateway"):
        sdn.parse_pending_config("", "subnet: dmz-10.100.0.0-24\n\tvnet web\n\tgateway 10.100.0.x\n",
                                 "vnets.cfg", "subnets.cfg")
    with pytest.raises(SdnConfigError, match=r"subnets.cfg:1"):
        sdn.parse_pending_config("", "subnet dmz\n", "vnets.cfg", "subnets.cfg")


def test_subnet_id_parsing():
    assert sdn.parse_subnet_id("zone0-fd80::-64") == ipaddress.ip_network("fd80::/64")
    assert sdn.parse_subnet_id("myzone-10.0.0.0-24") == ipaddress.ip_network("10.0.0.0/24")
    assert sdn.parse_subnet_id("nonsense") is None


def test_bad_json_is_reported():
    with pytest.raises(SdnConfigError, match="not valid JSON"):
        sdn.parse_running_config("{", "/etc/pve/sdn/.running-config")


def test_load_prefers_running_config(fake_node):
    fake_node.running_config()
    (fake_node.paths.pve_dir / "sdn/vnets.cfg").write_text("vnet: other\n\tzone z\n")
    assert pveconf.sdn(fake_node.paths).vnets == {"vnet0", "vnet1"}


def test_load_falls_back_to_pending(fake_node):
    (fake_node.paths.pve_dir / "sdn/vnets.cfg").write_text("vnet: other\n\tzone z\n")
    assert pveconf.sdn(fake_node.paths).vnets == {"other"}
    (fake_node.paths.pve_dir / "sdn/vnets.cfg").unlink()
    assert pveconf.sdn(fake_node.paths) == EMPTY


def test_zone_types_and_the_evpn_anycast_mac():
    running = {"version": 3,
               "zones": {"ids": {"zone0": {"type": "simple", "ipam": "pve"},
                                 "ev": {"type": "evpn", "controller": "c", "vrf-vxlan": 10000,
                                        "mac": "BC:24:11:AA:BB:CC"},
                                 "dmz": {"type": "vlan", "bridge": "vmbr0"}}},
               "vnets": {"ids": {"vnet0": {"type": "vnet", "zone": "zone0"},
                                 "evnet": {"type": "vnet", "zone": "ev", "tag": 11000},
                                 "web": {"type": "vnet", "zone": "dmz", "tag": 100},
                                 "lost": {"type": "vnet", "zone": "nozone"}}},
               "subnets": {"ids": {}}}
    import json
    cfg = sdn.parse_running_config(json.dumps(running))
    assert cfg.zone_of("vnet0").type == "simple" and cfg.zone_of("vnet0").routed
    assert cfg.zone_of("evnet").routed and cfg.zone_of("evnet").mac == "bc:24:11:aa:bb:cc"
    assert not cfg.zone_of("web").routed
    assert cfg.zone_of("lost") is None and cfg.zone_of("vmbr0") is None


def test_the_proxmox_fixtures_are_simple_zones():
    assert sdn.parse_running_config(RUNNING_CONFIG_RS.read_text()).zone_of("vnet0").type == "simple"
    assert sdn.parse_running_config(RUNNING_CONFIG_FW.read_text()).zone_of("public").type == "simple"


def test_pending_zones_cfg():
    cfg = sdn.parse_pending_config("vnet: ev1\n\tzone ev\n\ttag 11000\n", "", "vnets.cfg", "subnets.cfg",
                                   "evpn: ev\n\tcontroller c\n\tvrf-vxlan 10000\n\tmac bc:24:11:00:00:01\n",
                                   "zones.cfg")
    assert cfg.zone_of("ev1").type == "evpn" and cfg.zone_of("ev1").mac == "bc:24:11:00:00:01"
    with pytest.raises(SdnConfigError, match=r"zones.cfg:3: zone ev.mac"):
        sdn.parse_pending_config("", "", "vnets.cfg", "subnets.cfg",
                                 "evpn: ev\n\tcontroller c\n\tmac nonsense\n", "zones.cfg")


def test_pending_config_reads_zones_cfg(fake_node):
    (fake_node.paths.pve_dir / "sdn/vnets.cfg").write_text("vnet: other\n\tzone z\n")
    (fake_node.paths.pve_dir / "sdn/zones.cfg").write_text("simple: z\n\tipam pve\n")
    assert pveconf.sdn(fake_node.paths).zone_of("other").routed
