"""The guest hookscript end to end, called by the simulator's qm/pct as Proxmox calls it."""

import json
import os
import random
import subprocess
import sys
import threading
import time

import pytest

from pvesim import Cluster
from pve_microseg.parse import fwfile
from pve_microseg.policy import fwstrict
from pve_microseg.edges import pmxcfs
from pve_microseg.edges.paths import Paths

MAC = "BC:24:11:2C:69:EC"
LL = "fe80::be24:11ff:fe2c:69ec"
CLOUDINIT = __import__("conftest").FIXTURES / "qemu-server/src/test/parse-config-input/cloudinit-snapshot.conf"
MARK = "# ipfilter: 1 below is set by pve-microseg (removed with its last set)\n"
YAML = """\
bridges:
  web:
    gateway-mac: 02:00:00:00:01:01
    gateway-ip: 10.100.0.1
  vmbr1:
    gateway-mac: 02:00:00:00:02:01
    gateway-ip: 192.0.2.1
    isolate-ports: true
"""


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    c.install_hookscript()
    c.write("microseg.yaml", YAML)
    return c


def strict_ok(text):
    assert fwstrict.check(text, "guest") == [], text


def test_vm_start_writes_sets_into_the_guest_firewall(cluster):
    cluster.add_vm(101, {0: f"virtio={MAC},bridge=web,firewall=1"}, {0: "ip=10.100.0.5/24,gw=10.100.0.1"})
    r = cluster.qm("start", 101)
    assert r.returncode == 0, r.stderr
    fw = cluster.fw(101)
    strict_ok(fw)
    assert fw == (f"[OPTIONS]\n\nenable: 1\npolicy_in: ACCEPT\n{MARK}ipfilter: 1\n\n"
                  f"[IPSET ipfilter-net0] # managed by pve-microseg\n\n10.100.0.5\n{LL}\n\n")
    assert f"guest 101 net0 (on managed bridge web): 10.100.0.5, {LL} [from ipconfig0]" in r.stdout
    assert cluster.running(101)
    assert not any((cluster.pve / "priv/lock").iterdir())          # lock released
    assert cluster.qm("start", 101).stderr == "VM 101 already running\n"
    assert cluster.qm("stop", 101).returncode == 0
    r = cluster.qm("start", 101)
    assert r.returncode == 0 and "101.fw: unchanged" in r.stdout and cluster.fw(101) == fw


def test_container_start_keeps_everything_else(cluster):
    cluster.add_ct(200, {0: f"name=eth0,bridge=web,firewall=1,hwaddr={MAC},ip=10.100.0.6/24,"
                            "ip6=2001:db8:100::6/64,type=veth",
                         1: "name=eth1,bridge=vmbr0,hwaddr=BC:24:11:00:00:09,ip=dhcp,type=veth"})
    old = ("# operator notes\n[OPTIONS]\n\npolicy_in: DROP\nenable: 1\n\n[ALIASES]\n\nadmin 10.0.0.2\n\n"
           "[IPSET admins] # who may ssh\n\ndc/admin\n\n[RULES]\n\nIN SSH(ACCEPT) -source +admins\n")
    cluster.write("firewall/200.fw", old)
    r = cluster.pct("start", 200)
    assert r.returncode == 0, r.stderr
    fw = cluster.fw(200)
    strict_ok(fw)
    assert fw == old.replace("enable: 1\n", f"enable: 1\n{MARK}ipfilter: 1\n").replace(
        "[RULES]", f"[IPSET ipfilter-net0] # managed by pve-microseg\n\n10.100.0.6\n2001:db8:100::6\n{LL}\n\n[RULES]")


def test_strict_policy_refuses_the_start_and_writes_nothing(cluster):
    cluster.add_vm(101, {0: f"virtio={MAC},bridge=web"})          # firewall=0, no address known
    r = cluster.qm("start", 101)
    assert r.returncode != 0
    assert "hookscript error for 101 on pre-start" in r.stderr
    assert "guest 101 not started" in r.stderr and "firewall=0" in r.stderr
    assert cluster.fw(101) is None and not cluster.running(101)


def test_datacenter_firewall_off_refuses(cluster):
    cluster.write("firewall/cluster.fw", "[OPTIONS]\n\nenable: 0\n")
    cluster.add_vm(101, {0: f"virtio={MAC},bridge=web,firewall=1"}, {0: "ip=10.100.0.5/24"})
    r = cluster.qm("start", 101)
    assert r.returncode != 0 and "datacenter firewall is off" in r.stderr
    assert cluster.fw(101) is None


def test_unexpected_error_follows_the_failure_policy(cluster):
    cluster.write("sdn/pve-ipam-state.json", '{"zones": {"z": {"subnets": ["x"]}}}')
    cluster.add_vm(101, {0: f"virtio={MAC},bridge=web,firewall=1"}, {0: "ip=10.100.0.5/24"})
    r = cluster.qm("start", 101)
    assert r.returncode != 0 and "pve-ipam-state.json" in r.stderr and "Traceback" not in r.stderr
    cluster.write("microseg.yaml", YAML + "hookscript:\n  on-failure: fail-open\n")
    r = cluster.qm("start", 101)
    assert r.returncode == 0 and "WITHOUT complete anti-spoofing sets" in r.stderr


def test_container_migration_flag_and_legacy_ipam(cluster):
    cluster.write("priv/ipam.db", json.dumps({"zones": {"z": {"subnets": {"10.100.0.0/24": {"ips": {
        "10.100.0.66": {"vmid": "200", "mac": MAC}}}}}}}))
    cluster.add_ct(200, {0: f"name=eth0,bridge=web,firewall=1,hwaddr={MAC},ip=dhcp,type=veth"})
    r = cluster.pct("start", 200)
    assert r.returncode == 0, r.stderr
    assert "10.100.0.66" in cluster.fw(200) and "[from IPAM]" in r.stdout


def test_caution_in_the_operator_file_is_a_warning(cluster):
    old = "[RULES]\n\nIN ACCEPT -p tcp -dport 22 # ssh # admins\n"
    cluster.write("firewall/101.fw", old)
    cluster.add_vm(101, {0: f"virtio={MAC},bridge=web,firewall=1"}, {0: "ip=10.100.0.5/24"})
    r = cluster.qm("start", 101)
    assert r.returncode == 0, r.stderr
    assert "not every proxmox-firewall version rejects this" in r.stderr
    assert cluster.fw(101).endswith(old)


def test_fail_open_starts_and_says_so(cluster):
    cluster.write("microseg.yaml", YAML + "hookscript:\n  on-failure: fail-open\n")
    cluster.add_vm(101, {0: f"virtio={MAC},bridge=web"})
    r = cluster.qm("start", 101)
    assert r.returncode == 0 and cluster.running(101)
    assert "starts WITHOUT complete anti-spoofing sets" in r.stderr
    assert cluster.fw(101) is None


def test_invalid_configuration_fails_closed(cluster):
    cluster.write("microseg.yaml", YAML + "hookscript:\n  on-failure: maybe\n")
    cluster.add_vm(101, {0: f"virtio={MAC},bridge=web,firewall=1"}, {0: "ip=10.100.0.5/24"})
    r = cluster.qm("start", 101)
    assert r.returncode != 0 and not cluster.running(101)
    assert "microseg.yaml:" in r.stderr and "hookscript.on-failure" in r.stderr


def test_malformed_guest_config_names_file_and_line(cluster):
    cluster.add_vm(101, {0: "virtio=BC:24:11:2C:69,bridge=web,firewall=1"})
    r = cluster.qm("start", 101)
    assert r.returncode != 0
    assert "qemu-server/101.conf:" in r.stderr and "net0" in r.stderr and "not a MAC" in r.stderr


def test_live_migration_reads_the_config_under_the_source_node(cluster):
    cluster.add_vm(101, {0: f"virtio={MAC},bridge=web,firewall=1"}, {0: "ip=10.100.0.5/24"}, node="pve2")
    r = cluster.qm("start", 101, "--migratedfrom", "pve2")
    assert r.returncode == 0, r.stderr
    assert "10.100.0.5" in cluster.fw(101)


def test_main_section_only(cluster):
    path = cluster.add_vm(101, {0: f"virtio={MAC},bridge=web,firewall=1"}, {0: "ip=10.100.0.5/24"})
    path.write_text(path.read_text() + "\n[PENDING]\nipconfig0: ip=10.100.0.99/24\n"
                    "[special:cloudinit]\nipconfig0: ip=10.100.0.98/24\n[snap1]\nipconfig0: ip=10.100.0.97/24\n")
    assert cluster.qm("start", 101).returncode == 0
    fw = cluster.fw(101)
    assert "10.100.0.5" in fw and "10.100.0.9" not in fw


@pytest.mark.parametrize("name", ["test-vm-ipfilter1/100.fw", "test-ipset1/cluster.fw"])
def test_file_the_strict_parser_already_rejects_is_left_alone(cluster, name):
    from conftest import FIXTURES
    bad = (FIXTURES / "pve-firewall/test" / name).read_text()
    cluster.write("firewall/101.fw", bad)
    cluster.add_vm(101, {0: f"virtio={MAC},bridge=web,firewall=1"}, {0: "ip=10.100.0.5/24"})
    r = cluster.qm("start", 101)
    assert r.returncode != 0
    assert "proxmox-firewall rejects this file" in r.stderr and "101.fw: line" in r.stderr
    assert cluster.fw(101) == bad


def test_file_that_would_exceed_the_pmxcfs_limit(cluster):
    big = "[RULES]\n\n" + "IN ACCEPT -p tcp -dport 22 # padding\n" * 28000
    assert len(big) < 1024 * 1024
    cluster.write("firewall/101.fw", big)
    cluster.add_vm(101, {i: f"virtio=BC:24:11:2C:69:{i:02X},bridge=web,firewall=1" for i in range(1)},
                   {0: "ip=10.100.0.5/24"})
    cluster.write("microseg.yaml", YAML + "guests:\n  101:\n    net0: [" +
                  ", ".join(f"10.{i // 250}.0.{i % 250 + 2}" for i in range(4000)) + "]\n")
    r = cluster.qm("start", 101)
    assert r.returncode != 0 and "1 MiB" in r.stderr
    assert cluster.fw(101) == big


def test_lock_held_elsewhere_times_out(cluster):
    cluster.add_vm(101, {0: f"virtio={MAC},bridge=web,firewall=1"}, {0: "ip=10.100.0.5/24"})
    (cluster.pve / "priv/lock/firewall-vm-101").mkdir()
    r = cluster.qm("start", 101, env={"PVE_MICROSEG_LOCK_TIMEOUT": "0.5"})
    assert r.returncode != 0 and "got lock request timeout" in r.stderr
    assert "trying to acquire cfs lock 'firewall-vm-101' ..." in r.stderr
    assert cluster.fw(101) is None


def test_chained_hookscript_runs_after_ours_in_every_phase(cluster, tmp_path):
    log = tmp_path / "chain.log"
    theirs = cluster.snippets / "site-hook.sh"
    theirs.write_text(f'#!/bin/sh\necho "$1 $2 [$PVE_MIGRATED_FROM] fw=$(test -e {cluster.pve}/firewall/$1.fw && echo yes)" >> {log}\n')
    theirs.chmod(0o755)
    cluster.write("microseg.yaml", YAML + "guests:\n  101:\n    chain: local:snippets/site-hook.sh\n")
    cluster.add_vm(101, {0: f"virtio={MAC},bridge=web,firewall=1"}, {0: "ip=10.100.0.5/24"})
    assert cluster.qm("start", 101).returncode == 0
    assert cluster.qm("stop", 101).returncode == 0
    assert log.read_text().splitlines() == ["101 pre-start [] fw=yes", "101 post-start [] fw=yes",
                                            "101 pre-stop [] fw=yes", "101 post-stop [] fw=yes"]
    theirs.write_text("#!/bin/sh\n[ \"$2\" = pre-start ] && exit 3\nexit 0\n")
    r = cluster.qm("start", 101)
    assert r.returncode != 0 and "exited with 3 on pre-start" in r.stderr


def test_post_start_isolates_ports_on_marked_plain_bridges(cluster):
    cluster.add_vm(101, {0: f"virtio={MAC},bridge=vmbr1,firewall=1",
                         1: "virtio=BC:24:11:00:00:02,bridge=web,firewall=1"},
                   {0: "ip=192.0.2.5/24", 1: "ip=10.100.0.5/24"})
    cluster.add_port("fwpr101p0", "vmbr1")           # iptables mode: fwbr in between
    cluster.add_port("tap101i1", "web")
    r = cluster.qm("start", 101)
    assert r.returncode == 0, r.stderr
    assert (cluster.sys_class_net / "fwpr101p0/brport/isolated").read_text() == "1\n"
    assert (cluster.sys_class_net / "tap101i1/brport/isolated").read_text() == "0\n"   # VNet: Proxmox's job
    assert "port fwpr101p0 on vmbr1 isolated" in r.stdout


def test_many_starts_and_an_api_writer_lose_nothing(cluster):
    """20 guests start at once while an API-like writer edits the same files
    under the same lock; a reader checks every file it sees."""
    vmids = list(range(101, 121))
    for v in vmids:
        cluster.add_vm(v, {0: f"virtio=BC:24:11:00:{v // 256:02X}:{v % 256:02X},bridge=web,firewall=1"},
                       {0: f"ip=10.100.0.{v - 80}/24"})
    paths = Paths.from_env(cluster.env)
    stop = threading.Event()
    seen_bad, api_rules = [], {v: [] for v in vmids}

    def api_writer():
        n = 0
        while not stop.is_set():
            v = random.choice(vmids)
            with pmxcfs.cfs_lock(paths, f"firewall-vm-{v}", timeout=30, stderr=open(os.devnull, "w")):
                fw = fwfile.parse(pmxcfs.read_file(paths.guest_fw(v)))
                rules = fw.find("rules")
                rule = f"IN ACCEPT -p tcp -dport {1000 + n}\n"
                if rules is None:
                    fw.sections.append(fwfile.Section("rules", header="[RULES]\n", lines=["\n", rule]))
                else:
                    rules.lines.append(rule)
                text = fw.render()
                pmxcfs.write_file(paths.guest_fw(v), text)
            api_rules[v].append(rule)
            n += 1

    def reader():
        while not stop.is_set():
            for v in vmids:
                text = pmxcfs.read_file(paths.guest_fw(v))
                if text and fwstrict.check(text, "guest"):
                    seen_bad.append((v, text))
            time.sleep(0.01)

    threads = [threading.Thread(target=api_writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    qm = os.path.join(os.path.dirname(__file__), "pvesim/bin/qm")
    procs = [subprocess.Popen([sys.executable, qm, "start", str(v)], env=cluster.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for v in vmids]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join()
    assert [rc for rc, _ in results] == [0] * len(vmids), results
    assert seen_bad == []
    for v in vmids:
        text = cluster.fw(v)
        strict_ok(text)
        assert f"10.100.0.{v - 80}\n" in text                       # our set survived the writer
        for rule in api_rules[v]:
            assert rule in text                                      # every API edit survived us
    assert sum(len(r) for r in api_rules.values()) > 3 * len(vmids)       # the writer really raced
    assert not any((cluster.pve / "priv/lock").iterdir())


def test_real_fixtures_in_the_simulator(cluster):
    """Proxmox's own test inputs: an LXC config with its .fw (an operator's
    ipfilter-net1 holding an alias), and a VM config with cloud-init and
    snapshot sections."""
    from conftest import FIXTURES
    src = FIXTURES / "proxmox-firewall/proxmox-firewall/tests/input"
    cluster.write("microseg.yaml", YAML + "  simple1:\n    gateway-mac: 02:00:00:00:09:01\n"
                  "    gateway-ip: 192.0.2.1\n  vnet0:\n    gateway-mac: 02:00:00:00:09:02\n"
                  "    gateway-ip: 10.0.0.1\nguests:\n  120:\n    net0: [10.0.0.120]\n"
                  "  100:\n    net1: [192.0.2.11]\n")
    fw_before = (src / "100.fw").read_text()
    cluster.write("firewall/100.fw", fw_before)
    cluster.add_guest(100, (src / "100.conf").read_text(), "lxc")
    r = cluster.pct("start", 100)
    assert r.returncode != 0 and "net2 (on managed bridge simple1) has firewall=0" in r.stderr
    cluster.write("microseg.yaml", (cluster.pve / "microseg.yaml").read_text() + "hookscript:\n  strict: false\n")
    r = cluster.pct("start", 100)
    assert r.returncode == 0, r.stderr
    assert "net2 (on managed bridge simple1) has firewall=0" in r.stderr        # now a warning
    fw = cluster.fw(100)
    strict_ok(fw)
    assert "ipfilter-net1: kept as is" in r.stdout              # the operator's set, with dc/network1
    assert "[IPSET ipfilter-net3] # managed by pve-microseg\n\n192.0.2.10\nfd80::1235\n" \
           "fe80::be24:11ff:fe4d:b0fe\n" in fw                   # net3: firewall=1 on simple2, static ip
    assert fw.startswith(fw_before.split("[IPSET ipfilter-net1]")[0])
    cluster.add_guest(120, CLOUDINIT.read_text())
    r = cluster.qm("start", 120)
    assert r.returncode == 0, r.stderr
    assert "10.0.0.120\nfe80::be24:11ff:fe2c:69ec" in cluster.fw(120)


def test_the_simulator_holds_the_guest_config_lock_through_post_start(cluster, tmp_path):
    """qemu-server and pve-container run vm_start, which calls pre-start and
    post-start, under lock_config: a hookscript sees the lock taken in both."""
    log = tmp_path / "lock.log"
    lock = cluster.lock_dir / "lock-101.conf"
    theirs = cluster.snippets / "probe.sh"
    theirs.write_text(f"#!/bin/sh\nflock -n {lock} true && echo \"$2 free\" >> {log} || echo \"$2 held\" >> {log}\n")
    theirs.chmod(0o755)
    cluster.write("microseg.yaml", YAML + "guests:\n  101:\n    chain: local:snippets/probe.sh\n")
    cluster.add_vm(101, {0: f"virtio={MAC},bridge=web,firewall=1"}, {0: "ip=10.100.0.5/24"})
    assert cluster.qm("start", 101).returncode == 0
    assert log.read_text().splitlines() == ["pre-start held", "post-start held"]


# ------------------------------------------------------------------ proxmox-firewall and the guest config

DERIVED = __import__("conftest").FIXTURES / "derived/qemu-server"
VNET0 = YAML + "  vnet0:\n    gateway-mac: 02:00:00:00:09:02\n    gateway-ip: 10.0.0.1\n" \
               "guests:\n  120:\n    net0: [10.0.0.120]\n    net31: [10.0.0.121]\n"
NFT_ON = "[OPTIONS]\n\nnftables: 1\n"


def _vnet0(cluster, config, nftables_on=True, extra=""):
    cluster.write("microseg.yaml", VNET0 + extra)
    if nftables_on:
        cluster.write("nodes/pve1/host.fw", NFT_ON)
    cluster.add_guest(120, config.read_text())


@pytest.mark.parametrize("name,key,why", [
    ("e1000e.conf", "net0", "NIC model e1000e is unknown to proxmox-firewall"),
    ("net31.conf", "net31", "proxmox-firewall knows only net0 to net30"),
])
def test_nftables_on_a_config_proxmox_firewall_cannot_read_refuses_the_start(cluster, name, key, why):
    _vnet0(cluster, DERIVED / name)
    r = cluster.qm("start", 120)
    assert r.returncode != 0 and not cluster.running(120)
    assert "hookscript error for 120 on pre-start" in r.stderr
    line = next(l for l in r.stderr.splitlines() if "guest 120 not started" in l)
    assert f"guest 120 {key} (" in line and "qemu-server/120.conf:" in line and why in line
    assert "pve1 runs proxmox-firewall (nftables: 1 in host.fw)" in line and "not created" in line
    assert cluster.fw(120) is None


def test_nftables_on_an_existing_file_is_not_changed_either(cluster):
    _vnet0(cluster, DERIVED / "e1000e.conf")
    old = "[OPTIONS]\n\nenable: 1\n\n[RULES]\n\nIN SSH(ACCEPT)\n"
    cluster.write("firewall/120.fw", old)
    r = cluster.qm("start", 120)
    assert r.returncode != 0 and "not changed" in r.stderr
    assert cluster.fw(120) == old


def test_nftables_on_fail_open_starts_without_writing(cluster):
    _vnet0(cluster, DERIVED / "e1000e.conf", extra="hookscript:\n  on-failure: fail-open\n")
    r = cluster.qm("start", 120)
    assert r.returncode == 0 and cluster.running(120)
    assert "WARNING: guest 120 starts WITHOUT complete anti-spoofing sets: guest 120 net0" in r.stderr
    assert "NIC model e1000e" in r.stderr and "(hookscript.on-failure: fail-open)" in r.stderr
    assert cluster.fw(120) is None


def test_nftables_on_strict_false_does_not_lift_it(cluster):
    _vnet0(cluster, DERIVED / "net31.conf", extra="hookscript:\n  strict: false\n")
    r = cluster.qm("start", 120)
    assert r.returncode != 0 and "net31" in r.stderr and cluster.fw(120) is None


@pytest.mark.parametrize("name", ["e1000e.conf", "net31.conf"])
def test_nftables_off_behaviour_unchanged_with_a_warning(cluster, name):
    _vnet0(cluster, DERIVED / name, nftables_on=False)
    cluster.write("nodes/pve1/host.fw", "[OPTIONS]\n\nnftables: 0\n")
    r = cluster.qm("start", 120)
    assert r.returncode == 0, r.stderr
    fw = cluster.fw(120)
    strict_ok(fw)
    assert "10.0.0.120\n" in fw
    assert "WARNING: guest 120 net" in r.stderr and "off on this guest's node" in r.stderr


def test_nftables_on_a_config_it_reads_starts_as_usual(cluster):
    _vnet0(cluster, CLOUDINIT)              # the unchanged upstream file: vmxnet3, net0
    r = cluster.qm("start", 120)
    assert r.returncode == 0, r.stderr
    assert "10.0.0.120\n" in cluster.fw(120) and "proxmox-firewall" not in r.stderr


def test_nftables_on_the_migration_source_counts_too(cluster):
    cluster.write("microseg.yaml", VNET0)
    cluster.write("nodes/pve2/host.fw", NFT_ON)          # the target (pve1) runs pve-firewall
    cluster.add_guest(120, (DERIVED / "e1000e.conf").read_text(), node="pve2")
    r = cluster.qm("start", 120, "--migratedfrom", "pve2")
    assert r.returncode != 0 and "pve2 runs proxmox-firewall" in r.stderr and cluster.fw(120) is None


def test_nftables_on_a_guest_not_ours_keeps_its_file(cluster):
    cluster.write("nodes/pve1/host.fw", NFT_ON)
    cluster.add_vm(101, {0: f"e1000e={MAC},bridge=vmbr0,firewall=1"})
    old = (f"[OPTIONS]\n\n{MARK}ipfilter: 1\nenable: 1\n\n"
           f"[IPSET ipfilter-net0] # managed by pve-microseg\n\n10.100.0.5\n{LL}\n")
    cluster.write("firewall/101.fw", old)                # our set from when it was on web
    r = cluster.qm("start", 101)
    assert r.returncode == 0 and cluster.running(101)
    assert "pve1 runs proxmox-firewall" in r.stderr and "already stops every firewall update there" in r.stderr
    assert "left unchanged" in r.stderr
    assert cluster.fw(101) == old


# ------------------------------------------------------------------ backups (vzdump starts a stopped VM paused)

REFUSED = {0: f"virtio={MAC},bridge=web"}                 # firewall=0, no address: strict refuses it
FINE = ({0: f"virtio={MAC},bridge=web,firewall=1"}, {0: "ip=10.100.0.5/24"})


def _during(cluster, tmp_path, command):
    """PVE_SIM_DURING_BACKUP: `command`, then the flags of tap101i0 into a file."""
    flags = tmp_path / "flags-during-backup"
    return {"PVE_SIM_DURING_BACKUP": f"{command}; cat {cluster.sys_class_net}/tap101i0/flags > {flags}"}, flags


def test_backup_of_a_stopped_vm_goes_on_and_its_taps_are_held_down(cluster, tmp_path):
    cluster.add_vm(101, REFUSED)
    assert cluster.qm("start", 101).returncode != 0          # an ordinary start is refused
    env, flags = _during(cluster, tmp_path, "true")
    r = cluster.vzdump(101, env=env)
    assert r.returncode == 0, r.stderr
    assert "hookscript error" not in r.stderr and "Finished Backup of VM 101" in r.stdout
    assert "guest 101: backup start (lock: backup" in r.stderr and "firewall=0" in r.stderr
    assert "tap101i0 held down for as long as this QEMU runs" in r.stderr
    assert int(flags.read_text(), 16) & 1 == 0               # down while the backup ran
    assert not cluster.running(101) and cluster.fw(101) is None
    assert "lock:" not in cluster.guest_path(101).read_text()
    assert not (Paths.from_env(cluster.env).held_dir / "101").exists()
    r = cluster.qm("start", 101)                             # after the backup: decided afresh
    assert r.returncode != 0 and "guest 101 not started" in r.stderr


def test_a_start_during_the_backup_resumes_the_vm_without_network(cluster, tmp_path):
    """qemu-server's vm_start resumes the backup's paused QEMU (no pre-start):
    the guest runs from the backup start, and must not have network."""
    cluster.add_vm(101, REFUSED)
    env, flags = _during(cluster, tmp_path, "qm start 101")
    r = cluster.vzdump(101, env=env)
    assert r.returncode == 0, r.stderr
    assert "kvm status changed after backup ('running') - keep VM running" in r.stdout
    assert cluster.state(101) == "running" and cluster.tap_up(101) is False
    assert r.stderr.count("on pre-start") == 0 and cluster.fw(101) is None


def test_stop_mode_backup_resumes_a_running_vm_without_network_if_its_start_fails(cluster):
    cluster.add_vm(101, *FINE)
    assert cluster.qm("start", 101).returncode == 0
    before = cluster.fw(101)
    path = cluster.guest_path(101)
    path.write_text(path.read_text().replace("ipconfig0: ip=10.100.0.5/24\n", ""))   # no address any more
    r = cluster.vzdump(101, "--mode", "stop")
    assert r.returncode == 0, r.stderr
    assert "stopping virtual guest" in r.stdout and "resuming VM again" in r.stdout
    assert cluster.state(101) == "running" and cluster.tap_up(101) is False
    assert "no address is known" in r.stderr and cluster.fw(101) == before        # nothing half-written


def test_backup_of_a_stopped_vm_writes_the_sets_when_it_can(cluster, tmp_path):
    cluster.add_vm(101, *FINE)
    env, flags = _during(cluster, tmp_path, "true")
    r = cluster.vzdump(101, env=env)
    assert r.returncode == 0, r.stderr
    assert "10.100.0.5\n" in cluster.fw(101)                 # the paused QEMU may become the guest
    assert int(flags.read_text(), 16) & 1 == 1 and "held down" not in r.stderr
    assert not cluster.running(101)


def test_backup_start_fail_open_is_as_before(cluster, tmp_path):
    cluster.write("microseg.yaml", YAML + "hookscript:\n  on-failure: fail-open\n")
    cluster.add_vm(101, REFUSED)
    env, flags = _during(cluster, tmp_path, "true")
    r = cluster.vzdump(101, env=env)
    assert r.returncode == 0 and "starts WITHOUT complete anti-spoofing sets" in r.stderr
    assert int(flags.read_text(), 16) & 1 == 1 and "held down" not in r.stderr


def test_backup_start_of_a_vm_proxmox_firewall_cannot_read(cluster, tmp_path):
    _vnet0(cluster, DERIVED / "e1000e.conf")                 # nftables: 1 on pve1
    r = cluster.vzdump(120)
    assert r.returncode == 0, r.stderr
    assert "NIC model e1000e" in r.stderr and "tap120i0 held down" in r.stderr
    assert cluster.fw(120) is None


def test_a_stale_hold_is_dropped_by_the_next_start(cluster):
    held = Paths.from_env(cluster.env).held_dir
    held.mkdir(parents=True)
    (held / "101").write_text("an old reason\n")             # e.g. QEMU failed to start after pre-start
    cluster.add_vm(101, *FINE)
    r = cluster.qm("start", 101)
    assert r.returncode == 0 and cluster.tap_up(101) is True and "held down" not in r.stderr
    assert not (held / "101").exists()


def test_a_container_with_a_backup_lock_is_an_ordinary_start(cluster):
    """pve-container's vzdump never starts a stopped container; a start
    under its lock is root's --skiplock, an ordinary start."""
    path = cluster.add_ct(200, {0: f"name=eth0,bridge=web,hwaddr={MAC},ip=dhcp,type=veth"})
    path.write_text(path.read_text() + "lock: backup\n")
    r = cluster.pct("start", 200, "--skiplock")
    assert r.returncode != 0 and "guest 200 not started" in r.stderr


@pytest.mark.parametrize("source", ["../pve2", "pve2/../../x", "pve2\n", "-x"])
def test_migration_source_must_be_a_node_name(cluster, source):
    """Issue 12: PVE_MIGRATED_FROM names a directory under /etc/pve/nodes;
    anything but a node name is refused (fail-closed), nothing is read there."""
    import io
    from pve_microseg.entry import hookscript
    cluster.add_vm(101, {0: f"virtio={MAC},bridge=web,firewall=1"}, {0: "ip=10.100.0.5/24"})
    err = io.StringIO()
    rc = hookscript.main(["101", "pre-start"], environ=dict(cluster.env, PVE_MIGRATED_FROM=source),
                         out=io.StringIO(), err=err)
    assert rc != 0 and "is not a node name" in err.getvalue(), err.getvalue()
    assert not (cluster.pve / "firewall" / "101.fw").exists()


# ---------------------------------------------------------------- one address, one guest (issue 12)

MAC2, MAC3 = "BC:24:11:00:00:02", "BC:24:11:00:00:03"


def test_an_address_another_guests_config_has_is_refused_naming_it(cluster):
    """A guest may not put into its own set an address another guest has in
    its cloud-init or container ip=: alike in rank, so neither gets it."""
    cluster.add_ct(102, {0: f"name=eth0,bridge=web,firewall=1,hwaddr={MAC2},ip=10.100.0.9/24,type=veth"},
                   node="pve2")
    cluster.add_vm(101, {0: f"virtio={MAC},bridge=web,firewall=1"}, {0: "ip=10.100.0.9/24,ip6=2001:db8::9/64"})
    r = cluster.qm("start", 101)
    assert r.returncode != 0 and "10.100.0.9 is also claimed on web for guest 102 in its own config" in r.stderr
    assert cluster.fw(101) is None
    cluster.write("microseg.yaml", YAML + "hookscript:\n  strict: false\n")
    r = cluster.qm("start", 101)
    assert r.returncode == 0 and "guest 102" in r.stderr
    assert "10.100.0.9" not in cluster.fw(101) and "2001:db8::9" in cluster.fw(101)


def test_an_address_on_another_bridge_or_of_the_guest_itself_is_no_claim(cluster):
    cluster.add_vm(102, {0: f"virtio={MAC2},bridge=vmbr1,firewall=1"}, {0: "ip=10.100.0.9/24"})
    cluster.add_vm(103, {0: f"virtio={MAC3},bridge=web,firewall=1"}, {0: "ip=10.100.0.10/24"})
    cluster.add_vm(101, {0: f"virtio={MAC},bridge=web,firewall=1"}, {0: "ip=10.100.0.9/24"})
    r = cluster.qm("start", 101)
    assert r.returncode == 0, r.stderr
    assert "10.100.0.9" in cluster.fw(101)


def test_an_address_the_operator_lists_for_another_guest_is_refused(cluster):
    cluster.write("microseg.yaml", YAML + "guests:\n  102:\n    net0: ['2001:DB8::0009']\n")
    cluster.add_vm(102, {0: f"virtio={MAC2},bridge=web,firewall=1"})
    cluster.add_vm(101, {0: f"virtio={MAC},bridge=web,firewall=1"}, {0: "ip=10.100.0.5/24,ip6=2001:db8::9/64"})
    r = cluster.qm("start", 101)
    assert r.returncode != 0 and "2001:db8::9 is also claimed on web for guest 102 in microseg.yaml" in r.stderr
    r = cluster.qm("start", 102)
    assert r.returncode == 0, r.stderr                  # the operator's word outranks a guest's own config
    assert "2001:db8::9" in cluster.fw(102)


def test_an_address_the_operator_lists_for_two_guests_on_one_bridge_goes_to_neither(cluster):
    cluster.write("microseg.yaml", YAML + "guests:\n  101:\n    net0: [10.100.0.9]\n"
                                          "  102:\n    net0: [10.100.0.9, 10.100.0.12]\n")
    cluster.add_vm(101, {0: f"virtio={MAC},bridge=web,firewall=1"})
    cluster.add_vm(102, {0: f"virtio={MAC2},bridge=web,firewall=1"})
    r = cluster.qm("start", 101)
    assert r.returncode != 0 and "10.100.0.9 is also claimed on web for guest 102 in microseg.yaml" in r.stderr
    r = cluster.qm("start", 102)
    assert r.returncode != 0 and "for guest 101 in microseg.yaml" in r.stderr
    cluster.add_vm(101, {0: f"virtio={MAC},bridge=vmbr1,firewall=1"})         # another bridge: no conflict
    assert cluster.qm("start", 102).returncode == 0


def test_an_address_the_ipam_gives_another_guest_in_another_spelling_is_refused(cluster):
    cluster.write("sdn/pve-ipam-state.json", json.dumps({"zones": {"z": {"subnets": {"2001:db8::/64": {"ips": {
        "2001:DB8:0:0:0:0:0:0009": {"vmid": "102", "mac": MAC2}}}}}}}))
    cluster.add_vm(101, {0: f"virtio={MAC},bridge=web,firewall=1"}, {0: "ip=10.100.0.5/24,ip6=2001:db8::9/64"})
    r = cluster.qm("start", 101)
    assert r.returncode != 0 and "2001:db8::9 belongs to guest 102 in the IPAM" in r.stderr


def test_an_unreadable_guest_config_leaves_out_every_own_config_address(cluster):
    """Fail closed: what an unreadable config claims is unknown."""
    cluster.write("microseg.yaml", YAML + "hookscript:\n  strict: false\n")
    bad = cluster.add_vm(102, {0: f"virtio={MAC2},bridge=web,firewall=1"}, {0: "ip=10.100.0.9/24"})
    bad.write_bytes(b"net0: virtio=" + MAC2.encode() + b",bridge=web\nname: \xff\n")       # not UTF-8
    cluster.add_vm(101, {0: f"virtio={MAC},bridge=web,firewall=1"}, {0: "ip=10.100.0.5/24"})
    r = cluster.qm("start", 101)
    assert r.returncode == 0 and "cannot read guest 102" in r.stderr and "a guest config of the cluster" in r.stderr
    assert "10.100.0.5" not in cluster.fw(101)
    cluster.write("microseg.yaml", YAML + "guests:\n  101:\n    net0: [10.100.0.5]\n")
    assert cluster.qm("stop", 101).returncode == 0
    assert cluster.qm("start", 101).returncode == 0 and "10.100.0.5" in cluster.fw(101)   # the operator's word
