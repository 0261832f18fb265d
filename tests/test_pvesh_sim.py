"""The simulator's fake pvesh (tests/pvesim/pvesh.py): schema checks, output,
and the endpoints it implements over the fake /etc/pve tree."""

import json
import re
import time

import pytest

from pvesim import FIXTURES, Cluster
from pve_microseg.policy import fwstrict
from pve_microseg.parse import sdn

VM = "/nodes/pve1/qemu/100"
CT = "/nodes/pve1/lxc/200"
MAC = "BC:24:11:2C:69:EC"
MODIFIED = "detected modified configuration - file changed by other user? Try again.\n"
UPID = re.compile(r"UPID:pve1:[0-9A-F]{8}:[0-9A-F]{8,9}:[0-9A-F]{8}:reloadnetworkall::root@pam:")


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    c.add_vm(100, {0: f"virtio={MAC},bridge=web,firewall=1"})
    return c


def ok(r):
    assert r.returncode == 0, r.stderr
    return r.stdout


def fails(r, stderr):
    assert (r.returncode, r.stdout, r.stderr) == (255, "", stderr)


def get_json(cluster, path, *args):
    return json.loads(ok(cluster.pvesh("get", path, "--output-format", "json", *args)))


# ------------------------------------------------------------------ schema checks

def test_the_schema_is_a_local_fixture_with_its_source_recorded():
    meta = json.loads((FIXTURES / "pve-api-subset.json").read_text())["meta"]
    assert "e5010dcea566a205770572cfbc5fe0af220d5077" in meta["source"]
    assert ("proxmox/pve-docs\tapi-viewer/apidata.js\te5010dcea566a205770572cfbc5fe0af220d5077"
            in (FIXTURES / "SOURCES.txt").read_text().splitlines())


def test_unknown_path_or_method_has_no_handler(cluster):
    fails(cluster.pvesh("get", "/cluster/nothing"), "no 'get' handler for '/cluster/nothing'\n")
    fails(cluster.pvesh("delete", "/cluster/firewall/options"),
          "no 'delete' handler for '/cluster/firewall/options'\n")


def test_bad_enum_value(cluster):
    fails(cluster.pvesh("set", f"{VM}/firewall/options", "--policy_in", "accept"),
          "400 Parameter verification failed.\n"
          "policy_in: value 'accept' does not have a value in the enumeration 'ACCEPT, REJECT, DROP'\n"
          "pvesh set <api_path> [OPTIONS] [FORMAT_OPTIONS]\n")


def test_bad_pattern_and_lengths(cluster):
    fails(cluster.pvesh("create", f"{VM}/firewall/ipset", "--name", "9lives"),
          "400 Parameter verification failed.\n"
          "name: value does not match the regex pattern\n"
          "pvesh create <api_path> --name [A-Za-z][A-Za-z0-9\\-\\_]+ [OPTIONS] [FORMAT_OPTIONS]\n")
    r = cluster.pvesh("create", f"{VM}/firewall/ipset", "--name", "a" * 65)
    assert r.returncode == 255 and "name: value may only be 64 characters long\n" in r.stderr


def test_missing_required_parameter(cluster):
    fails(cluster.pvesh("create", f"{VM}/firewall/ipset/ipfilter-net0"),
          "400 Parameter verification failed.\n"
          "cidr: property is missing and it is not optional\n"
          "pvesh create <api_path> --cidr <string> [OPTIONS] [FORMAT_OPTIONS]\n")


@pytest.mark.parametrize("vmid", ["99", "1000000000", "abc"])
def test_vmid_out_of_range(cluster, vmid):
    message = ("type check ('integer') failed - got 'abc'" if vmid == "abc"
               else "invalid format - value does not look like a valid VM ID")   # format before range
    fails(cluster.pvesh("get", f"/nodes/pve1/qemu/{vmid}/firewall/options"),
          f"400 Parameter verification failed.\nvmid: {message}\n"
          "pvesh get <api_path> [OPTIONS] [FORMAT_OPTIONS]\n")


def test_minimum_and_several_errors_one_line_each_sorted(cluster):
    fails(cluster.pvesh("create", f"{VM}/firewall/rules", "--type", "in", "--action", "ACCEPT",
                        "--pos", "-1", "--log", "loud"),
          "400 Parameter verification failed.\n"
          "log: value 'loud' does not have a value in the enumeration "
          "'emerg, alert, crit, err, warning, notice, info, debug, nolog'\n"
          "pos: value must have a minimum value of 0\n"
          "pvesh create <api_path> --action [A-Za-z][A-Za-z0-9\\-\\_]+ "
          "--type <forward | group | in | out> [OPTIONS] [FORMAT_OPTIONS]\n")


def test_getopt_errors(cluster):
    fails(cluster.pvesh("set", f"{VM}/firewall/options", "--bogus", "1"),
          "Unknown option: bogus\n400 unable to parse option\n"
          "pvesh set <api_path> [OPTIONS] [FORMAT_OPTIONS]\n")
    fails(cluster.pvesh("set", f"{VM}/firewall/options", "--enable", "maybe"),
          "400 unable to parse boolean option\npvesh set <api_path> [OPTIONS] [FORMAT_OPTIONS]\n")
    fails(cluster.pvesh("set", f"{VM}/firewall/options", "--log_level", "info"),
          "Option log_level is ambiguous (log_level_in, log_level_out)\n400 unable to parse option\n"
          "pvesh set <api_path> [OPTIONS] [FORMAT_OPTIONS]\n")


def test_property_string_formats_are_checked(cluster):
    fails(cluster.pvesh("set", f"{VM}/config", "--net0", "bridge=web,firewall=2"),
          "400 Parameter verification failed.\n"
          "net0: invalid format - format error\n"
          "net0.firewall: type check ('boolean') failed - got '2'\n"
          "net0.model: property is missing and it is not optional\n"
          "pvesh set <api_path> [OPTIONS] [FORMAT_OPTIONS]\n")
    r = cluster.pvesh("set", f"{VM}/config", "--net32", f"virtio={MAC}")     # net0..net31 only
    assert r.returncode == 255 and r.stderr.startswith("Unknown option: net32\n")


# ------------------------------------------------------------------ output

def test_null_result_prints_nothing_even_in_json(cluster):
    r = cluster.pvesh("set", f"{VM}/firewall/options", "--enable", "1", "--output-format", "json")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_json_is_one_sorted_line(cluster):
    ok(cluster.pvesh("set", f"{VM}/firewall/options", "--policy_in", "ACCEPT", "--enable", "--ipfilter", "1"))
    out = ok(cluster.pvesh("get", f"{VM}/firewall/options", "--output-format", "json"))
    assert re.fullmatch(r'\{"digest":"[0-9a-f]{40}","enable":1,"ipfilter":1,"policy_in":"ACCEPT"\}\n', out)
    pretty = ok(cluster.pvesh("get", f"{VM}/firewall/options", "--output-format", "json-pretty"))
    assert pretty.startswith('{\n   "digest" : "') and json.loads(pretty) == json.loads(out)


def test_empty_array_prints_nothing_in_text_and_brackets_in_json(cluster):
    assert ok(cluster.pvesh("get", f"{VM}/firewall/ipset")) == ""
    assert ok(cluster.pvesh("get", f"{VM}/firewall/ipset", "--output-format", "json")) == "[]\n"


def test_options_may_come_before_the_path_and_quiet_silences(cluster):
    assert json.loads(ok(cluster.pvesh("get", "--output-format", "json", "/cluster/firewall/options")))["enable"] == 1
    assert ok(cluster.pvesh("get", "/cluster/firewall/options", "--quiet")) == ""


# ------------------------------------------------------------------ ipsets

def test_ipset_round_trip_in_canonical_form(cluster):
    ipset = f"{VM}/firewall/ipset/ipfilter-net0"
    ok(cluster.pvesh("create", f"{VM}/firewall/ipset", "--name", "ipfilter-net0",
                     "--comment", "managed by pve-microseg"))
    assert cluster.fw(100) == "[IPSET ipfilter-net0] # managed by pve-microseg\n\n\n"
    for cidr in ("10.100.0.5/32", "FE80::BE24:11FF:FE2C:69EC", "10.1.2.3/16"):
        ok(cluster.pvesh("create", ipset, "--cidr", cidr))
    fails(cluster.pvesh("create", ipset, "--cidr", "10.100.0.5"),
          "400 Parameter verification failed.\ncidr: address '10.100.0.5' already exists\n"
          "pvesh create <api_path> --cidr <string> [OPTIONS] [FORMAT_OPTIONS]\n")
    fails(cluster.pvesh("create", ipset, "--cidr", "10.0.0.0/0"),
          "400 Parameter verification failed.\ncidr: a zero prefix is not allowed in ipset entries\n"
          "pvesh create <api_path> --cidr <string> [OPTIONS] [FORMAT_OPTIONS]\n")
    text = cluster.fw(100)
    assert text == ("[IPSET ipfilter-net0] # managed by pve-microseg\n\n"
                    "10.1.0.0/16\n10.100.0.5\nfe80::be24:11ff:fe2c:69ec\n\n")
    assert fwstrict.check(text, "guest") == []
    entries = get_json(cluster, ipset)
    assert [e["cidr"] for e in entries] == ["10.1.0.0/16", "10.100.0.5", "fe80::be24:11ff:fe2c:69ec"]
    assert len({e["digest"] for e in entries}) == 1
    assert get_json(cluster, f"{VM}/firewall/ipset") == [
        {"name": "ipfilter-net0", "comment": "managed by pve-microseg", "digest": json.loads(
            ok(cluster.pvesh("get", f"{VM}/firewall/ipset", "--output-format", "json")))[0]["digest"]}]

    ok(cluster.pvesh("delete", f"{ipset}/10.1.0.0/16"))                  # a CIDR path keeps its '/'
    fails(cluster.pvesh("delete", f"{ipset}/10.1.0.0/16"),
          "400 Parameter verification failed.\ncidr: no such IP/Network\n"
          "pvesh delete <api_path> [OPTIONS] [FORMAT_OPTIONS]\n")
    fails(cluster.pvesh("delete", ipset), "IPSet 'ipfilter-net0' is not empty\n")
    ok(cluster.pvesh("delete", ipset, "--force", "1"))
    assert cluster.fw(100) is None                                        # empty result: file deleted
    fails(cluster.pvesh("get", ipset), "no such IPSet 'ipfilter-net0'\n")


def test_api_write_rewrites_the_whole_file(cluster):
    cluster.write("firewall/100.fw",
                  "# operator notes\n[options]\nEnable: 1\nbogus: 7\n\n[ipset Admins] # who may ssh\n"
                  "10.0.0.2/32\n\n[RULES]\nIN SSH(ACCEPT) -source +admins # keep\nIN ACCEPT -p tcp -dport\n")
    ok(cluster.pvesh("create", f"{VM}/firewall/ipset/admins", "--cidr", "10.0.0.1"))
    assert cluster.fw(100) == ("[OPTIONS]\n\nenable: 1\n\n[IPSET admins] # who may ssh\n\n10.0.0.1\n10.0.0.2\n\n"
                               "[RULES]\n\nIN SSH(ACCEPT) -source +admins # keep\n\n")
    assert not any((cluster.pve / "priv/lock").iterdir())                # cfs lock released


def test_cluster_ipsets_live_in_cluster_fw(cluster):
    ok(cluster.pvesh("create", "/cluster/firewall/ipset/management", "--cidr", "192.0.2.0/24",
                     "--comment", "admins"))
    text = (cluster.pve / "firewall/cluster.fw").read_text()
    assert text == ("[OPTIONS]\n\nenable: 1\n\n[IPSET management]\n\n192.0.2.0/24 # admins\n192.0.2.250\n\n")
    assert fwstrict.check(text, "cluster") == []


def test_alias_entries_must_exist(cluster):
    ok(cluster.pvesh("create", f"{VM}/firewall/ipset", "--name", "x1"))
    fails(cluster.pvesh("create", f"{VM}/firewall/ipset/x1", "--cidr", "dc/nowhere"), "no such alias 'dc/nowhere'\n")


def test_digest_mismatch_is_refused(cluster):
    ipset = f"{VM}/firewall/ipset/s1"
    ok(cluster.pvesh("create", f"{VM}/firewall/ipset", "--name", "s1"))
    ok(cluster.pvesh("create", ipset, "--cidr", "10.0.0.1"))
    digest = get_json(cluster, ipset)[0]["digest"]
    ok(cluster.pvesh("create", ipset, "--cidr", "10.0.0.2"))            # someone else changed the set
    before = cluster.fw(100)
    fails(cluster.pvesh("delete", f"{ipset}/10.0.0.1", "--digest", digest), MODIFIED)
    assert cluster.fw(100) == before
    ok(cluster.pvesh("delete", f"{ipset}/10.0.0.1", "--digest", get_json(cluster, ipset)[0]["digest"]))
    options_digest = get_json(cluster, f"{VM}/firewall/options")["digest"]
    ok(cluster.pvesh("set", f"{VM}/firewall/options", "--enable", "1"))
    fails(cluster.pvesh("set", f"{VM}/firewall/options", "--ipfilter", "1", "--digest", options_digest), MODIFIED)


def test_update_entry_sets_or_clears_comment_and_nomatch(cluster):
    ipset = "/cluster/firewall/ipset/management"
    ok(cluster.pvesh("set", f"{ipset}/192.0.2.250", "--comment", "jump host", "--nomatch", "1"))
    assert get_json(cluster, f"{ipset}/192.0.2.250")["comment"] == "jump host"
    assert "!192.0.2.250 # jump host\n" in (cluster.pve / "firewall/cluster.fw").read_text()
    ok(cluster.pvesh("set", f"{ipset}/192.0.2.250"))                   # unset parameters clear the fields
    assert "\n192.0.2.250\n" in (cluster.pve / "firewall/cluster.fw").read_text()


# ------------------------------------------------------------------ options and rules

def test_options_put_with_delete(cluster):
    opts = f"{VM}/firewall/options"
    ok(cluster.pvesh("set", opts, "--enable", "1", "--ipfilter", "1", "--policy_in", "DROP"))
    ok(cluster.pvesh("set", opts, "--delete", "ipfilter", "--delete", "policy_in"))   # -list: repeatable
    assert cluster.fw(100) == "[OPTIONS]\n\nenable: 1\n\n"
    fails(cluster.pvesh("set", opts, "--delete", "ipfilter,bogus"),
          "400 Parameter verification failed.\ndelete: no such option 'bogus'\n"
          "pvesh set <api_path> [OPTIONS] [FORMAT_OPTIONS]\n")
    ok(cluster.pvesh("set", opts, "--delete", "enable"))
    assert cluster.fw(100) is None
    assert get_json(cluster, opts) == {"digest": "da39a3ee5e6b4b0d3255bfef95601890afd80709"}


def test_guest_rules_are_added_on_top_and_disabled_by_default(cluster):
    rules = f"{VM}/firewall/rules"
    ok(cluster.pvesh("create", rules, "--type", "in", "--action", "ACCEPT", "--proto", "tcp",
                     "--dport", "22", "--enable", "1", "--comment", "ssh"))
    ok(cluster.pvesh("create", rules, "--type", "out", "--action", "DROP", "--iface", "net0"))
    text = cluster.fw(100)
    assert text == "[RULES]\n\n|OUT DROP -i net0\nIN ACCEPT -p tcp -dport 22 # ssh\n\n"
    assert fwstrict.check(text, "guest") == []
    assert [(r["pos"], r["type"], r["enable"]) for r in get_json(cluster, rules)] == [(0, "out", 0), (1, "in", 1)]
    fails(cluster.pvesh("create", rules, "--type", "forward", "--action", "ACCEPT"),
          "400 Parameter verification failed.\ntype: rule type 'forward' is not allowed here\n"
          "pvesh create <api_path> --action [A-Za-z][A-Za-z0-9\\-\\_]+ "
          "--type <forward | group | in | out> [OPTIONS] [FORMAT_OPTIONS]\n")
    r = cluster.pvesh("create", rules, "--type", "in", "--action", "ACCEPT", "--dport", "22")
    assert r.returncode == 255 and "proto: missing property - 'dport' requires this property\n" in r.stderr


def test_rule_at_position_read_update_move_delete(cluster):
    rules = f"{VM}/firewall/rules"
    for port in ("22", "80", "443"):
        ok(cluster.pvesh("create", rules, "--type", "in", "--action", "ACCEPT", "--proto", "tcp",
                         "--dport", port, "--enable", "1"))
    assert get_json(cluster, f"{rules}/2")["dport"] == "22"
    ok(cluster.pvesh("set", f"{rules}/2", "--moveto", "0"))
    ok(cluster.pvesh("set", f"{rules}/1", "--enable", "0", "--comment", "off"))
    ok(cluster.pvesh("delete", f"{rules}/2"))
    assert cluster.fw(100) == "[RULES]\n\nIN ACCEPT -p tcp -dport 22\n|IN ACCEPT -p tcp -dport 443 # off\n\n"
    fails(cluster.pvesh("get", f"{rules}/2"), "no rule at position 2\n")
    stale = get_json(cluster, rules)[0]["digest"]
    ok(cluster.pvesh("set", f"{rules}/0", "--delete", "dport,proto"))
    fails(cluster.pvesh("delete", f"{rules}/0", "--digest", stale), MODIFIED)
    assert cluster.fw(100).startswith("[RULES]\n\nIN ACCEPT\n")


def test_vnet_firewall_options_and_rules(cluster):
    vnet = "/cluster/sdn/vnets/web/firewall"
    ok(cluster.pvesh("set", f"{vnet}/options", "--enable", "1", "--policy_forward", "DROP"))
    ok(cluster.pvesh("create", f"{vnet}/rules", "--type", "forward", "--action", "ACCEPT",
                     "--source", "10.100.0.0/24", "--enable", "1"))
    text = (cluster.pve / "sdn/firewall/web.fw").read_text()
    assert text == ("[OPTIONS]\n\nenable: 1\npolicy_forward: DROP\n\n"
                    "[RULES]\n\nFORWARD ACCEPT -source 10.100.0.0/24\n\n")
    assert fwstrict.check(text, "vnet") == []
    assert get_json(cluster, f"{vnet}/options")["policy_forward"] == "DROP"
    r = cluster.pvesh("set", f"{vnet}/options", "--policy_forward", "REJECT")
    assert r.returncode == 255 and "policy_forward: value 'REJECT' does not have a value" in r.stderr
    r = cluster.pvesh("create", f"{vnet}/rules", "--type", "in", "--action", "ACCEPT")
    assert r.returncode == 255 and "type: rule type 'in' is not allowed here" in r.stderr
    fails(cluster.pvesh("get", "/cluster/sdn/vnets/waytoolongname/firewall/options"),
          "400 Parameter verification failed.\nvnet: invalid format - vnet ID 'waytoolongname' can't be more "
          "than 8 characters\npvesh get <api_path> [OPTIONS] [FORMAT_OPTIONS]\n")


def test_a_held_cfs_lock_times_out_with_proxmox_message(cluster):
    (cluster.pve / "priv/lock/firewall-vm-100").mkdir()
    r = cluster.pvesh("set", f"{VM}/firewall/options", "--enable", "1",
                      env={"PVE_SIM_CFS_LOCK_TIMEOUT": "0.3"})
    assert r.returncode == 255
    assert r.stderr.endswith("cfs-lock 'firewall-vm-100' error: got lock request timeout\n")
    assert "trying to acquire cfs lock 'firewall-vm-100' ..." in r.stderr
    assert cluster.fw(100) is None


# ------------------------------------------------------------------ guest config

def test_guest_config_put_and_get(cluster):
    conf = get_json(cluster, f"{VM}/config")
    assert conf["net0"] == f"virtio={MAC},bridge=web,firewall=1" and conf["cores"] == 1
    assert re.fullmatch(r"[0-9a-f]{40}", conf["digest"])
    ok(cluster.pvesh("set", f"{VM}/config", "--net1", f"virtio=BC:24:11:00:00:01,bridge=db",
                     "--delete", "cores", "--digest", conf["digest"]))
    text = cluster.guest_path(100).read_text()
    assert text == ("boot: order=scsi0\nhookscript: local:snippets/pve-microseg-hookscript\nmemory: 512\n"
                    f"name: vm100\nnet0: virtio={MAC},bridge=web,firewall=1\n"
                    "net1: virtio=BC:24:11:00:00:01,bridge=db\n")
    fails(cluster.pvesh("set", f"{VM}/config", "--name", "x", "--digest", conf["digest"]), MODIFIED)
    fails(cluster.pvesh("get", "/nodes/pve1/qemu/101/config"),
          "Configuration file 'nodes/pve1/qemu-server/101.conf' does not exist\n")


def test_guest_config_keeps_other_sections_and_shows_pending(cluster):
    cluster.add_guest(101, (FIXTURES / "qemu-server/src/test/parse-config-input/cloudinit-snapshot.conf").read_text(),
                      hookscript=False)
    main = get_json(cluster, "/nodes/pve1/qemu/101/config", "--current", "1")
    ok(cluster.pvesh("set", "/nodes/pve1/qemu/101/config", "--onboot", "1"))
    text = cluster.guest_path(101).read_text()
    assert "onboot: 1\n" in text.split("\n[")[0] and "\n[special:cloudinit]\n" in text
    after = get_json(cluster, "/nodes/pve1/qemu/101/config", "--current", "1")
    assert after.pop("onboot") == 1 and after.pop("digest") != main.pop("digest") and after == main


def test_container_config(cluster):
    cluster.add_ct(200, {0: f"name=eth0,bridge=web,firewall=1,hwaddr={MAC},ip=10.100.0.6/24,type=veth"})
    ok(cluster.pvesh("set", f"{CT}/config", "--net0", f"name=eth0,bridge=web,hwaddr={MAC},ip=dhcp"))
    assert get_json(cluster, f"{CT}/config")["net0"] == f"name=eth0,bridge=web,hwaddr={MAC},ip=dhcp"
    r = cluster.pvesh("set", f"{CT}/config", "--net0", "bridge=web,ip=10.0.0.300/24")
    assert r.returncode == 255
    assert "net0.ip: invalid format - value does not look like a valid ipv4 network configuration\n" in r.stderr
    assert "net0.name: property is missing and it is not optional\n" in r.stderr


def test_locked_guest_config_is_refused(cluster):
    cluster.add_vm(102, {}, hookscript=False)
    cluster.guest_path(102).write_text(cluster.guest_path(102).read_text() + "lock: backup\n")
    fails(cluster.pvesh("set", "/nodes/pve1/qemu/102/config", "--cores", "2"), "VM 102 is locked (backup)\n")
    ok(cluster.pvesh("set", "/nodes/pve1/qemu/102/config", "--cores", "2", "--skiplock", "1"))


# ------------------------------------------------------------------ proxying, resources

def test_proxied_calls_run_locally_and_are_recorded(cluster):
    cluster.add_vm(300, {}, node="pve2")
    assert get_json(cluster, "/nodes/pve2/qemu/300/config")["name"] == "vm300"
    ok(cluster.pvesh("get", "/nodes/pve2/qemu/300/firewall/ipset"))        # no proxyto: not proxied
    assert cluster.pvesh_proxied() == [("pve2", "get", "/nodes/pve2/qemu/300/config")]
    fails(cluster.pvesh("get", "/nodes/pve2/qemu/300/config", "--noproxy"), "proxy loop detected - aborting\n")
    fails(cluster.pvesh("--noproxy", "get", "/nodes/pve2/qemu/300/config"), "proxy loop detected - aborting\n")
    ok(cluster.pvesh("get", "/nodes/localhost/qemu/100/config", "--noproxy"))
    r = cluster.pvesh("get", "/nodes/pve7/qemu/300/config")
    assert r.returncode == 255 and r.stderr.startswith("hostname lookup 'pve7' failed")


def test_cluster_resources(cluster):
    cluster.add_ct(200, {}, node="pve2")
    (cluster.root / "run/sim").mkdir(parents=True)
    (cluster.root / "run/sim/200.running").write_text("running\n")
    vms = get_json(cluster, "/cluster/resources", "--type", "vm")
    assert vms == [
        {"id": "lxc/200", "type": "lxc", "node": "pve2", "vmid": 200, "status": "running",
         "name": "ct200", "template": 0},
        {"id": "qemu/100", "type": "qemu", "node": "pve1", "vmid": 100, "status": "stopped",
         "name": "vm100", "template": 0}]
    everything = get_json(cluster, "/cluster/resources")
    assert {"id": "node/pve2", "type": "node", "node": "pve2", "status": "online"} in everything
    fails(cluster.pvesh("get", "/cluster/resources", "--type", "vms"),
          "400 Parameter verification failed.\ntype: value 'vms' does not have a value in the enumeration "
          "'vm, storage, node, sdn'\npvesh get <api_path> [OPTIONS] [FORMAT_OPTIONS]\n")


# ------------------------------------------------------------------ SDN apply, tasks

def write_sdn(cluster):
    cluster.write("sdn/zones.cfg", "vlan: dmz\n\tbridge vmbr0\n\tipam pve\n\tnodes pve1,pve2\n")
    cluster.write("sdn/vnets.cfg", "vnet: web\n\tzone dmz\n\ttag 100\n\tisolate-ports 1\n")
    cluster.write("sdn/subnets.cfg", "subnet: dmz-10.100.0.0-24\n\tvnet web\n\tgateway 10.100.0.1\n"
                                     "\tdhcp-range start-address=10.100.0.50,end-address=10.100.0.99\n")


def srvreload_of(cluster, node, *args):
    """The srvreload tasks node lists, newest first."""
    return get_json(cluster, f"/nodes/{node}/tasks", "--typefilter", "srvreload", "--source", "all", *args)


def switch(cluster, name, text=""):
    (cluster.root / "run/sim").mkdir(parents=True, exist_ok=True)
    (cluster.root / "run/sim" / name).write_text(text)


def members(cluster, **online):
    cluster.write(".members", json.dumps({"nodename": "pve1", "nodelist": {
        n: {"id": i + 1, "online": int(online.get(n, True)), "ip": f"192.0.2.{11 + i}"}
        for i, n in enumerate(("pve1", "pve2"))}}))


def test_sdn_apply_prints_the_task_log_then_the_upid(cluster):
    write_sdn(cluster)
    out = ok(cluster.pvesh("set", "/cluster/sdn"))
    *log, upid = out.splitlines()
    assert UPID.fullmatch(upid)
    assert log == ["pve1: reloading network config", "pve2: reloading network config", "TASK OK"]
    running = json.loads((cluster.pve / "sdn/.running-config").read_text())
    assert running["version"] == 1
    assert running["vnets"]["ids"]["web"] == {"type": "vnet", "zone": "dmz", "tag": 100, "isolate-ports": 1}
    assert running["zones"]["ids"]["dmz"]["nodes"] == {"pve1": 1, "pve2": 1}
    assert running["subnets"]["ids"]["dmz-10.100.0.0-24"]["dhcp-range"] == [
        "start-address=10.100.0.50,end-address=10.100.0.99"]
    assert [str(s.network) for s in sdn.parse_running_config(json.dumps(running)).subnets] == ["10.100.0.0/24"]
    status = get_json(cluster, f"/nodes/pve1/tasks/{upid}/status")
    assert (status["status"], status["exitstatus"], status["type"], status["upid"]) == (
        "stopped", "OK", "reloadnetworkall", upid)
    assert get_json(cluster, f"/nodes/pve1/tasks/{upid}/log")[-1] == {"n": len(log), "t": "TASK OK"}


def test_each_node_reloads_in_its_own_srvreload_task(cluster):
    """reloadnetworkall only starts `pvesh set /nodes/<node>/network` per node
    (proxied to the others); each node's srvreload task is that node's own."""
    write_sdn(cluster)
    apply_upid = ok(cluster.pvesh("set", "/cluster/sdn")).splitlines()[-1]
    assert cluster.pvesh_proxied() == [("pve2", "set", "/nodes/pve2/network")]
    for node in ("pve1", "pve2"):
        [task] = srvreload_of(cluster, node)
        upid = task["upid"]
        assert re.fullmatch(rf"UPID:{node}:[0-9A-F]{{8}}:[0-9A-F]{{8,9}}:[0-9A-F]{{8}}:srvreload:networking:root@pam:",
                            upid)
        assert (task["node"], task["type"], task["id"], task["user"]) == (node, "srvreload", "networking", "root@pam")
        # not archived yet (the node's next task archives it): RUNNING in the list, stopped in its status
        assert task["status"] == "RUNNING" and "endtime" not in task
        assert task["starttime"] >= int(apply_upid.split(":")[4], 16)
        assert get_json(cluster, f"/nodes/{node}/tasks", "--typefilter", "srvreload") == []   # source=archive
        status = get_json(cluster, f"/nodes/{node}/tasks/{upid}/status")
        assert (status["status"], status["exitstatus"]) == ("stopped", "OK")
        assert get_json(cluster, f"/nodes/{node}/tasks/{upid}/log") == [{"n": 1, "t": "TASK OK"}]
        other = "pve2" if node == "pve1" else "pve1"
        fails(cluster.pvesh("get", f"/nodes/{other}/tasks/{upid}/status"),
              "400 Parameter verification failed.\nupid: no such task\n"
              "pvesh get <api_path> [OPTIONS] [FORMAT_OPTIONS]\n")


def test_a_failed_ifreload_fails_the_nodes_srvreload_not_the_apply(cluster):
    write_sdn(cluster)
    switch(cluster, "ifreload.pve2", "error: vmbr0: bridge port eno9 does not exist\ninfo: not logged\n")
    out = ok(cluster.pvesh("set", "/cluster/sdn", "--output-format", "json"))
    *log, upid = out.splitlines()
    upid = json.loads(upid)
    assert UPID.fullmatch(upid)
    assert log == ["pve1: reloading network config", "pve2: reloading network config", "TASK OK"]
    assert get_json(cluster, f"/nodes/pve1/tasks/{upid}/status")["exitstatus"] == "OK"
    assert json.loads((cluster.pve / "sdn/.running-config").read_text())["version"] == 1   # committed
    [bad] = srvreload_of(cluster, "pve2")
    status = get_json(cluster, f"/nodes/pve2/tasks/{bad['upid']}/status")
    assert (status["status"], status["exitstatus"]) == ("stopped", "command 'ifreload -a' failed: exit code 1")
    assert [line["t"] for line in get_json(cluster, f"/nodes/pve2/tasks/{bad['upid']}/log")] == [
        "vmbr0 : error: vmbr0: bridge port eno9 does not exist ",
        "TASK ERROR: command 'ifreload -a' failed: exit code 1"]
    [good] = srvreload_of(cluster, "pve1")
    assert get_json(cluster, f"/nodes/pve1/tasks/{good['upid']}/status")["exitstatus"] == "OK"


def test_an_offline_node_is_only_warned_about_in_the_apply_log(cluster):
    write_sdn(cluster)
    members(cluster, pve2=False)
    *log, upid = ok(cluster.pvesh("set", "/cluster/sdn")).splitlines()
    assert log == ["pve1: reloading network config", "pve2: reloading network config",
                   "proxy handler failed: ssh: connect to host 192.0.2.12 port 22: No route to host",
                   "command 'pvesh set /nodes/pve2/network --regenerate-frr 0' failed: exit code 255",
                   "TASK OK"]
    assert get_json(cluster, f"/nodes/pve1/tasks/{upid}/status")["exitstatus"] == "OK"
    assert len(srvreload_of(cluster, "pve1")) == 1
    fails(cluster.pvesh("get", "/nodes/pve2/tasks"),
          "proxy handler failed: ssh: connect to host 192.0.2.12 port 22: No route to host\n")
    nodes = {r["node"]: r["status"] for r in get_json(cluster, "/cluster/resources", "--type", "node")}
    assert nodes == {"pve1": "online", "pve2": "offline"}


def test_frr_is_regenerated_when_a_controller_is_or_was_configured(cluster):
    write_sdn(cluster)
    cluster.write("sdn/controllers.cfg", "evpn: ctl\n\tasn 65000\n\tpeers 192.0.2.1\n")
    members(cluster, pve2=False)
    assert "--regenerate-frr 1' failed" in ok(cluster.pvesh("set", "/cluster/sdn"))
    cluster.write("sdn/controllers.cfg", "")
    assert "--regenerate-frr 1' failed" in ok(cluster.pvesh("set", "/cluster/sdn"))      # it was
    assert "--regenerate-frr 0' failed" in ok(cluster.pvesh("set", "/cluster/sdn"))


def test_without_quorum_the_apply_task_fails_before_any_node(cluster):
    write_sdn(cluster)
    switch(cluster, "reloadnetworkall.no-quorum")
    out = ok(cluster.pvesh("set", "/cluster/sdn", "--output-format", "json"))
    *log, upid = out.splitlines()
    assert log == ["TASK ERROR: cluster not ready - no quorum?"]
    status = get_json(cluster, f"/nodes/pve1/tasks/{json.loads(upid)}/status")
    assert status["exitstatus"] == "cluster not ready - no quorum?"
    assert srvreload_of(cluster, "pve1") == [] and srvreload_of(cluster, "pve2") == []
    assert json.loads((cluster.pve / "sdn/.running-config").read_text())["version"] == 1   # committed anyway


def test_the_task_list_archives_filters_and_pages(cluster):
    write_sdn(cluster)
    first = ok(cluster.pvesh("set", "/cluster/sdn")).splitlines()[-1]
    switch(cluster, "ifreload.pve1", "error: vmbr9: no such bridge\n")
    second = ok(cluster.pvesh("set", "/cluster/sdn")).splitlines()[-1]
    # each task start archives the tasks that ended: the first apply and its srvreload are in `index`
    archived = get_json(cluster, "/nodes/pve1/tasks")
    assert [t["upid"] for t in archived if t["type"] == "reloadnetworkall"] == [first]
    assert all(t["status"] == "OK" and "endtime" in t for t in archived)
    listed = get_json(cluster, "/nodes/pve1/tasks", "--source", "all")
    # the active list first (the second apply, then its srvreload), then the archive
    assert [t["type"] for t in listed[:2]] == ["reloadnetworkall", "srvreload"]
    assert sorted(t["type"] for t in listed[2:]) == ["reloadnetworkall", "srvreload"]
    assert listed[0]["upid"] == second and listed[0]["status"] == "RUNNING"
    assert len(get_json(cluster, "/nodes/pve1/tasks", "--source", "active")) == 2
    assert len(srvreload_of(cluster, "pve1")) == 2
    assert srvreload_of(cluster, "pve1", "--limit", "1") == srvreload_of(cluster, "pve1")[:1]
    assert srvreload_of(cluster, "pve1", "--start", "1") == srvreload_of(cluster, "pve1")[1:]
    later = max(t["starttime"] for t in srvreload_of(cluster, "pve1")) + 1
    assert srvreload_of(cluster, "pve1", "--since", str(later)) == []
    assert [t["upid"] for t in srvreload_of(cluster, "pve1", "--until", str(later))] == [
        t["upid"] for t in srvreload_of(cluster, "pve1")]
    assert get_json(cluster, "/nodes/pve1/tasks", "--typefilter", "vzdump", "--source", "all") == []
    assert get_json(cluster, "/nodes/pve1/tasks", "--userfilter", "admin@pve", "--source", "all") == []
    # the failed srvreload, once archived, is an error; the running ones count as unknown
    ok(cluster.pvesh("set", "/cluster/sdn"))
    errors = get_json(cluster, "/nodes/pve1/tasks", "--errors", "1")
    assert [(t["type"], t["status"]) for t in errors] == [("srvreload", "command 'ifreload -a' failed: exit code 1")]
    fails(cluster.pvesh("get", "/nodes/pve1/tasks", "--source", "some"),
          "400 Parameter verification failed.\nsource: value 'some' does not have a value in the enumeration "
          "'archive, active, all'\npvesh get <api_path> [OPTIONS] [FORMAT_OPTIONS]\n")


def test_a_srvreload_that_runs_on_is_running_until_it_ends(cluster):
    """pve2's reload outlives the call that started it (its ssh session drops)."""
    write_sdn(cluster)
    switch(cluster, "ifreload.pve2.running", "1.5")
    *log, upid = ok(cluster.pvesh("set", "/cluster/sdn")).splitlines()
    assert log == ["pve1: reloading network config", "pve2: reloading network config",
                   "proxy handler failed: Connection to pve2 closed by remote host.",
                   "command 'pvesh set /nodes/pve2/network --regenerate-frr 0' failed: exit code 255",
                   "TASK OK"]
    [task] = srvreload_of(cluster, "pve2")
    status = get_json(cluster, f"/nodes/pve2/tasks/{task['upid']}/status")
    assert status["status"] == "running" and "exitstatus" not in status
    deadline = time.monotonic() + 10
    while status["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
        status = get_json(cluster, f"/nodes/pve2/tasks/{task['upid']}/status")
    assert (status["status"], status["exitstatus"]) == ("stopped", "OK")
    assert get_json(cluster, f"/nodes/pve2/tasks/{task['upid']}/log") == [{"n": 1, "t": "TASK OK"}]


def test_sdn_lock_token(cluster):
    cluster.write("sdn/.lock", "tok123\n")
    fails(cluster.pvesh("set", "/cluster/sdn"), "invalid lock token provided!\n")
    assert UPID.fullmatch(ok(cluster.pvesh("set", "/cluster/sdn", "--lock-token", "tok123")).splitlines()[-1])
    assert not (cluster.pve / "sdn/.lock").exists()                        # release-lock defaults to 1


def test_task_status_of_unknown_tasks(cluster):
    fails(cluster.pvesh("get", "/nodes/pve1/tasks/nonsense/status"),
          "400 Parameter verification failed.\nupid: unable to parse worker upid\n"
          "pvesh get <api_path> [OPTIONS] [FORMAT_OPTIONS]\n")
    fails(cluster.pvesh("get", "/nodes/pve1/tasks/UPID:pve1:00000001:00000002:00000003:x::root@pam:/status"),
          "400 Parameter verification failed.\nupid: no such task\n"
          "pvesh get <api_path> [OPTIONS] [FORMAT_OPTIONS]\n")
