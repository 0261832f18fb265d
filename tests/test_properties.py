"""Property-based tests over every input pve-microseg reads (issue 12).

Each reader gets structurally-near-valid input: real fixtures and the
documented examples, mutated line by line (lines inserted, deleted,
duplicated, fields replaced by NUL, BOM, CR, Unicode digits and spaces, huge
numbers, deep nesting), besides random text.  The properties:

* no exception but the project's MicrosegError subclasses escapes a reader
  (pure parsers that never fail: none at all);
* a refusal (ConfigError) names the file it was given and, for input with
  lines, a line inside it;
* the command line and the hooks end with a documented exit status, print
  JSON on stdout with --output-format json, and leave /etc/pve as it was when
  they refuse (or only pretend, --dry-run).

Derandomized (every run tries the same examples), no example database on
disk, no deadline: the whole module takes well under a minute.
"""

import contextlib
import io
import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings, strategies as st

from conftest import FIXTURES, FakeNft
from pvesim import HOOKSCRIPT, Cluster
from pve_microseg.edges import files, ssh
from pve_microseg.entry import cli, hookscript as hookscript_entry, ifupdown, render
from pve_microseg.flows import status
from pve_microseg.model.errors import ConfigError, ExitCode, MicrosegError
from pve_microseg.parse import (dpkg, fwfile, fwrule, guestconf, ipam, legacy, microseg_yaml, sdn, sectionconfig,
                                tasklog)
from pve_microseg.edges.paths import Paths
from pve_microseg.policy import fwlint, fwstrict

FAST = settings(derandomize=True, database=None, deadline=None, max_examples=300,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])
SLOW = settings(FAST, max_examples=150)           # examples that run a command

DOCUMENTED_EXITS = {int(c) for c in ExitCode}

# ----------------------------------------------------------------------------- inputs

YAML_SEED = """\
# the README's example, every key once
bridges:
  web:
    gateway-mac: 00:00:5e:00:01:64
  db:
    gateway-mac: [00:00:5e:00:01:65, bc:24:11:00:00:01]
    gateway-ip: [10.101.0.1, 2001:db8:101::1]
    port-security: mac
  vmbr1:
    gateway-mac: 52:54:00:12:34:56
    gateway-ip: 192.168.1.1
    subnets: 192.168.1.0/24
    isolate-ports: true
    intra-vnet-routing: allow
    vnet-firewall-before: {enable: "0", policy_forward: ACCEPT}
  tenant1:
hookscript: {on-failure: fail-closed, strict: true, chain: "local:snippets/site.sh", policy-in: DROP}
guests:
  101: {net0: [10.100.0.50, 2001:db8:100::50], chain: /var/lib/vz/snippets/x.sh, policy-in: accept}
  102:
    net1: 192.168.1.7
    port-security: mac
port-security: mac+ip
intra-vnet-routing: drop
"""
YAML_ANCHORS = "defaults: &d\n  gateway-mac: 02:00:00:00:00:01\nbridges:\n  a: *d\n  b:\n    <<: *d\n"
LEGACY_SEED = ("# BRIDGE;GATEWAY_IP;GATEWAY_MAC\nvmbr1;192.168.1.1;52:54:00:12:34:56\n"
               "  vmbr1 ; 2001:db8::1 ; 52:54:00:12:34:57  \n\nvnet0;10.0.0.1;00:00:5e:00:01:64\n")
LXC_SEED = ("arch: amd64\nhostname: ct\nnet0: name=eth0,bridge=web,firewall=1,hwaddr=BC:24:11:47:83:11,"
            "ip=10.100.0.6/24,ip6=2001:db8::6/64,type=veth,tag=5\nnet1: name=eth1,bridge=db,hwaddr=BC:24:11:47:83:12,"
            "ip=dhcp,ip6=auto,type=veth\nlock: backup\n[snap1]\nnet0: garbage\n")
SECTION_SEED = ("vnet: web\n\tzone z1\n\ttag 100\n\nvnet: db\n\tzone z1\n\n"
                "subnet: z1-10.100.0.0-24\n\tvnet web\n\tgateway 10.100.0.1\n\n"
                "evpn: z2\n\tcontroller c\n\tmac 02:00:00:00:00:09\n")
TASKLOG_SEED = ("pve1: reloading network config\nUPID:pve1:0000A1B2:00C0FFEE:65F00000:srvreload:networking:root@pam:\n"
                "pve2: reloading network config\nproxy handler failed: ssh: connect to host 192.0.2.12 port 22: "
                "No route to host\ncommand 'pvesh set /nodes/pve2/network --regenerate-frr 0' failed: exit code 255\n"
                "TASK OK\n")


def _fixture(rel):
    return (FIXTURES / rel).read_text()


def _fixtures(pattern):
    return [p.read_text() for p in sorted(FIXTURES.rglob(pattern)) if p.is_file()]


FW_SEEDS = _fixtures("*.fw")
QEMU_SEEDS = _fixtures("*.conf")
IPAM_SEED = _fixture("proxmox-firewall/proxmox-firewall/tests/input/ipam.db")
RUNNING_SEEDS = [_fixture("proxmox-ve-rs/proxmox-ve-config/tests/sdn/resources/running-config.json"),
                 _fixture("proxmox-firewall/proxmox-firewall/tests/input/.running-config.json")]
DPKG_SEED = _fixture("dpkg/status")

# what a hostile or careless writer puts into a field
NASTY = ["", " ", "\x00", "\ufeff", "\r", "\r\n", "\n", "\t", "\x0b", "\x85", "\u2028", "\u00a0", "\ufffd",
         "١٠١", "𝟏𝟎𝟏", "٠", "0101", "101\n", "9" * 40, "-1", "1e999", "nan", "inf", "0x10", "1_0",
         "[" * 200, "{" * 200, "[[[[", "&a", "*a", "!!python/object:os.system", "%TAG", "---", "...",
         "#", ";", ":", ": ", ",", "=", "\"", "'", "\\", "|", ">", "-", "?", "@", "`",
         "net0", "net31", "net99", "10.0.0.1", "::1", "fe80::1%eth0", "10.0.0.0/33", "0.0.0.0/0", "224.0.0.1",
         "::ffff:10.0.0.1", "00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff", "zz", "BC:24:11:2C:69:EC",
         "x" * 300, "é", "İ", "ı", "\U0001f600"]
nasty = st.sampled_from(NASTY)
fragment = st.one_of(nasty, st.text(max_size=12), st.text(alphabet="0123456789:.,;=[]{}#-/ \t", max_size=12))


@st.composite
def mutated(draw, seeds):
    """A seed text with a few line-level and character-level mutations."""
    text = draw(st.sampled_from(seeds))
    lines = text.split("\n")
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["insert", "delete", "duplicate", "replace", "splice", "swap"]))
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        if op == "insert":
            lines.insert(i, draw(st.one_of(fragment, st.sampled_from(lines or [""]))))
        elif op == "delete" and lines:
            del lines[i]
        elif op == "duplicate" and lines:
            lines.insert(i, lines[i])
        elif op == "swap" and len(lines) > 1:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif lines:
            line = lines[i]
            a = draw(st.integers(0, len(line)))
            b = draw(st.integers(a, len(line))) if op == "replace" else a
            lines[i] = line[:a] + draw(fragment) + line[b:]
    text = "\n".join(lines)
    if draw(st.booleans()) and draw(st.booleans()):
        text = draw(st.sampled_from([lambda t: t.replace("\n", "\r\n"), lambda t: "\ufeff" + t,
                                     lambda t: t.rstrip("\n"), lambda t: t + "\x00", lambda t: t * 3,
                                     lambda t: t.replace("  ", "\t")]))(text)
    return text


def inputs(*seeds):
    return st.one_of(mutated(list(seeds)), st.text(max_size=200))


def json_values(max_leaves=12):
    leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(),
                     st.text(max_size=8), nasty)
    return st.recursive(leaf, lambda c: st.one_of(st.lists(c, max_size=3),
                                                  st.dictionaries(st.one_of(st.text(max_size=6), nasty), c,
                                                                  max_size=3)),
                        max_leaves=max_leaves)


@st.composite
def mutated_json(draw, seeds):
    """A JSON seed with one subtree replaced by something else, as text."""
    data = json.loads(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 3))):
        node, key = data, None
        while isinstance(node, (dict, list)) and node and draw(st.integers(0, 3)):
            key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
            if not isinstance(node[key], (dict, list)) or not node[key]:
                break
            node = node[key]
        if isinstance(node, (dict, list)) and node:
            key = key if key is not None and (isinstance(node, dict) and key in node or
                                              isinstance(node, list) and isinstance(key, int)
                                              and key < len(node)) else \
                (sorted(node)[0] if isinstance(node, dict) else 0)
            node[key] = draw(json_values())
        else:
            data = draw(json_values())
    return json.dumps(data, allow_nan=True)


def json_inputs(*seeds):
    return st.one_of(mutated_json(list(seeds)), mutated(list(seeds)), json_values().map(json.dumps))


def _nlines(text):
    return text.count("\n") + 1


def assert_names_place(e, path, text):
    """A refusal names the file given, and a line inside the input."""
    assert isinstance(e, ConfigError), repr(e)
    assert e.path == str(path)
    if e.line is not None:
        assert 1 <= e.line <= _nlines(text) + 1, (e.line, _nlines(text))
    str(e), e.to_json()


# ----------------------------------------------------------------------------- parsers

@FAST
@given(inputs(YAML_SEED, YAML_ANCHORS, "bridges:\n  vnet0:\n    gateway-mac: 00:00:5e:00:01:64\n"))
@example("[" * 40000 + "]" * 40000)
@example("a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 300)))
@example("guests:\n  101: {}\n  0101: {}\n")
@example("guests:\n  ١٠١: {}\n")
@example("guests:\n  101:\n    \"net0\\n\": 10.0.0.1\n")
@example("bridges:\n  \"web\\n\":\n    gateway-mac: 02:00:00:00:00:01\n")
@example("\ufeffbridges: {}\n")
@example("bridges:\r\n  web:\r\n    gateway-mac: 02:00:00:00:00:01\r\n")
def test_microseg_yaml_refuses_cleanly(text):
    try:
        microseg_yaml.parse_document(text, "/etc/pve/microseg.yaml")
    except ConfigError as e:
        assert_names_place(e, "/etc/pve/microseg.yaml", text)


@FAST
@given(inputs(LEGACY_SEED))
def test_legacy_refuses_cleanly(text):
    try:
        specs = legacy.parse_legacy(text, "/etc/pve/L2-microsegmentation.conf")
    except ConfigError as e:
        assert_names_place(e, "/etc/pve/L2-microsegmentation.conf", text)
        assert e.line is not None            # every legacy problem is on a line
    else:
        assert all(s.name == s.name.strip() and s.name for s in specs)


@FAST
@given(inputs(*QEMU_SEEDS, LXC_SEED), st.sampled_from(["qemu", "lxc"]))
@example("net0: virtio=BC:24:11:2C:69:EC,bridge=web,tag=١٠١\n", "qemu")
@example("net0: virtio=BC:24:11:2C:69:EC,bridge=web\nipconfig0: ip=10.0.0.5/24,ip=10.0.0.6/24\n", "qemu")
@example("net0: name=eth0,hwaddr=BC:24:11:2C:69:EC,ip=10.0.0.5/99\n", "lxc")
def test_guest_config_refuses_cleanly(text, guest_type):
    path = "/etc/pve/nodes/pve1/qemu-server/101.conf"
    try:
        gc = guestconf.parse(text, 101, guest_type, path)
    except ConfigError as e:
        assert_names_place(e, path, text)
        assert e.line is not None and e.field
    else:
        assert all(0 <= n.index < guestconf.MAX_NICS for n in gc.nics)
    problems = fwstrict.check_guest_config(text, guest_type)
    assert all(1 <= p.line <= _nlines(text) for p in problems)


@FAST
@given(inputs(*FW_SEEDS))
@example("[OPTIONS]\r\nenable: 1\r\n[RULES]\r\nIN ACCEPT -p tcp -dport 22\r\n")
@example("\ufeff[IPSET ipfilter-net0] # managed by pve-microseg\n10.0.0.1\n")
@example("[RULES]\nIN ACCEPT -source 10.0.0.1-10.0.0.0\nIN ACCEPT -dport 99999999999999999999\n")
def test_fw_files_parse_and_check_without_failing(text):
    fw = fwfile.parse(text)
    assert fw.render() == text                          # lossless
    for kind in fwstrict.KINDS:
        for p in fwstrict.check(text, kind):
            assert 1 <= p.line <= _nlines(text)
    for f in fwlint.lint_file("101.fw", text, "guest", fwfile.parse(FW_SEEDS[0])):
        assert f.severity in ("error", "warning", "info") and 1 <= f.line <= _nlines(text)
    for line in text.split("\n"):
        try:
            fwrule.parse_rule(fwrule.trim(line))
        except fwrule.RuleSyntaxError:
            pass


@FAST
@given(inputs(*FW_SEEDS), st.integers(0, 40), st.lists(st.sampled_from(["10.0.0.1", "2001:db8::1", "dc/x"]),
                                                     max_size=3))
def test_fw_file_edits_keep_what_is_not_ours(text, nic, entries):
    fw = fwfile.parse(text)
    untouched = [s.text() for s in fw.sections if s.kind in ("rules", "aliases", "group")]
    fw.put_ipset(f"ipfilter-net{nic}", entries)
    fw.set_option("ipfilter", "1")
    fw.set_option("enable", "1")
    out = fw.render()
    again = fwfile.parse(out)
    assert again.render() == out
    assert again.option("ipfilter") == "1"
    for block in untouched:          # a section that is not ours comes back (at most a newline added)
        assert block.rstrip("\n") in out


@FAST
@given(json_inputs(IPAM_SEED), st.sampled_from([None, 101, "101"]))
@example('{"zones": {"z": {"subnets": {"s": {"ips": {"10.0.0.1": {"vmid": [], "mac": "x"}}}}}}}', None)
@example('{"zones": {"z": {"subnets": {"s": {"ips": {"10.0.0.1": {"vmid": 101, "mac": 5}}}}}}}', 101)
@example('{"zones": []}', None)
def test_ipam_refuses_cleanly(text, vmid):
    path = "/etc/pve/sdn/pve-ipam-state.json"
    try:
        state = ipam.parse(text, path, vmid)
    except ConfigError as e:
        assert_names_place(e, path, text)
    else:
        assert all(isinstance(v, str) for v in state.owners.values())


@FAST
@given(json_inputs(*RUNNING_SEEDS))
@example('{"subnets": {"ids": {"z-10.0.0.0-24": {"vnet": "v", "gateway": "10.0.0.1/24"}}}}')
@example('{"zones": {"ids": {"z": {"mac": 5}}}}')
@example('{"vnets": {"ids": []}}')
def test_sdn_running_config_refuses_cleanly(text):
    path = "/etc/pve/sdn/.running-config"
    try:
        sdn.parse_running_config(text, path)
    except ConfigError as e:
        assert_names_place(e, path, text)


@FAST
@given(inputs(SECTION_SEED), inputs(SECTION_SEED), inputs(SECTION_SEED))
def test_sdn_pending_config_refuses_cleanly(vnets, subnets, zones):
    try:
        sdn.parse_pending_config(vnets, subnets, "/etc/pve/sdn/vnets.cfg", "/etc/pve/sdn/subnets.cfg",
                                 zones, "/etc/pve/sdn/zones.cfg")
    except ConfigError as e:
        text = {"/etc/pve/sdn/vnets.cfg": vnets, "/etc/pve/sdn/subnets.cfg": subnets,
                "/etc/pve/sdn/zones.cfg": zones}[e.path]
        assert_names_place(e, e.path, text)
    for text in (vnets, subnets, zones):
        try:
            sections = sectionconfig.parse_section_config(text, "storage.cfg")
        except ConfigError as e:
            assert_names_place(e, "storage.cfg", text)
            assert e.line is not None
        else:
            assert all(1 <= s.line <= _nlines(text) for s in sections)


@FAST
@given(inputs(DPKG_SEED), st.sampled_from(["proxmox-firewall", "pve-microseg", "a+b.c", ""]))
def test_dpkg_status_never_fails(text, package):
    version = dpkg.installed_version(text, package)
    assert version is None or (isinstance(version, str) and version)


@FAST
@given(inputs(TASKLOG_SEED))
def test_task_log_never_fails(text):
    lines = text.split("\n")
    for line in lines:
        upid = tasklog.decode_upid(line)
        assert upid is None or upid.text in line
    for section in tasklog.reload_sections(lines).values():
        tasklog.call_failure(section)


@settings(FAST, max_examples=60)
@given(st.binary(max_size=300).map(lambda b: b"bridges:\n  web:\n    gateway-mac: 02:00:00:00:00:01\n" + b)
       | st.sampled_from([b"\xff\xfe", b"bridges: {}\n\xc3\x28", b"\xef\xbb\xbfbridges: {}\n", b"\x00" * 10]))
def test_reading_bytes_refuses_cleanly(tmp_path_factory, data):
    path = tmp_path_factory.getbasetemp() / "read-bytes.yaml"
    path.write_bytes(data)
    try:
        text = files.read_text(path)
    except ConfigError as e:
        assert e.path == str(path)
        return
    try:
        microseg_yaml.parse_document(text, str(path))
    except ConfigError as e:
        assert_names_place(e, path, text)


# ----------------------------------------------------------------------------- status answers

STATUS_YAML = "bridges:\n  web:\n    gateway-mac: 02:00:00:00:01:01\n    gateway-ip: 10.100.0.1\n"


@pytest.fixture(scope="module")
def status_cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("status"))
    c.write("microseg.yaml", STATUS_YAML)
    c.write(".members", json.dumps({"nodename": "pve1", "version": 3, "cluster": {"name": "c", "nodes": 2},
                                    "nodelist": {"pve1": {"id": 1, "online": 1, "ip": "192.0.2.11"},
                                                 "pve2": {"id": 2, "online": 1, "ip": "192.0.2.12"}}}))
    (c.sys_class_net / "web" / "bridge").mkdir(parents=True)
    c.add_vm(101, {0: "virtio=BC:24:11:2C:69:EC,bridge=web,firewall=1"}, {0: "ip=10.100.0.5/24"})
    return c


def well_formed_answers():
    flag = st.booleans()
    bridge = st.fixed_dictionaries({"present": flag, "rules": flag})
    return st.fixed_dictionaries(
        {"node": st.just("pve2"), "source": st.sampled_from(["nftables", "markers"]),
         "bridges": st.dictionaries(st.sampled_from(["web", "db", "x"]), bridge, max_size=2),
         "unbound-ports": st.lists(st.fixed_dictionaries({"port": st.sampled_from(["tap101i0", "veth102i0"]),
                                                          "bridge": st.sampled_from(["web", "db"])}), max_size=2),
         "proxmox-firewall": st.sampled_from(["1.2.3", "not installed", "0.9", "unknown: x"])},
        optional={"nd-target-bound": flag, "error": st.text(max_size=10)})


def _status_with(status_cluster, answer):
    paths = Paths.from_env(status_cluster.env)
    original = ssh.ask_nodes
    ssh.ask_nodes = lambda *a, **kw: {"pve2": answer}
    try:
        try:
            result = status.cluster(paths, timeout=1)
        except MicrosegError:
            return
    finally:
        ssh.ask_nodes = original
    assert result.exit in (ExitCode.OK, ExitCode.UNPROTECTED)
    list(render.status(result.data))
    json.dumps(result.data)


@SLOW
@given(well_formed_answers())
def test_status_with_well_formed_node_answers(status_cluster, answer):
    _status_with(status_cluster, answer)


@SLOW
@given(json_values(20))
@example({"bridges": {"web": {}}})
@example({"bridges": []})
@example({"node": "pve2", "bridges": {"web": {"present": "no", "rules": "no"}}})
def test_status_with_any_node_answer(status_cluster, answer):
    _status_with(status_cluster, answer)


# ----------------------------------------------------------------------------- command line

def _snapshot(root):
    out = {}
    for p in sorted(Path(root).rglob("*")):
        if p.is_symlink():
            out[str(p)] = ("link", os.readlink(p))
        elif p.is_file():
            out[str(p)] = ("file", p.read_bytes(), p.stat().st_mode)
        elif p.is_dir():
            out[str(p)] = ("dir",)
    return out


def _durable(snap):
    """A snapshot without the run directory (the lock, caches of parsed text):
    everything else -- /etc/pve, the last-good cache, snippets -- must stay."""
    return {k: v for k, v in snap.items() if "/run/pve-microseg" not in k}


def _restore(root, snap):
    """Put the tree back as `snap` had it (files, links, directories)."""
    for p in sorted(Path(root).rglob("*"), reverse=True):
        if str(p) not in snap:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
    for name, entry in snap.items():
        p = Path(name)
        if entry[0] == "dir":
            p.mkdir(parents=True, exist_ok=True)
        elif entry[0] == "link":
            if not p.is_symlink():
                p.symlink_to(entry[1])
        elif not p.is_file() or p.read_bytes() != entry[1] or p.stat().st_mode != entry[2]:
            p.write_bytes(entry[1])
            p.chmod(entry[2] & 0o7777)


LEGACY_GOOD = "vmbr9;192.168.9.1;52:54:00:12:34:56\n"
GOOD_YAML = STATUS_YAML


@pytest.fixture(scope="module")
def cli_cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cli"))
    c.write("microseg.yaml", GOOD_YAML)
    c.write("L2-microsegmentation.conf", LEGACY_GOOD)
    c.write("sdn/.running-config", _fixture("proxmox-ve-rs/proxmox-ve-config/tests/sdn/resources/"
                                            "running-config.json"))
    (c.sys_class_net / "web" / "bridge").mkdir(parents=True)
    c.add_vm(101, {0: "virtio=BC:24:11:2C:69:EC,bridge=web,firewall=1"}, {0: "ip=10.100.0.5/24"})
    c.add_ct(102, {0: "name=eth0,bridge=web,hwaddr=BC:24:11:47:83:11,ip=10.100.0.6/24,type=veth"})
    c.env.update({"PVE_MICROSEG_PVESH": str(c.root / "no-pvesh"), "PVE_MICROSEG_SSH": "/bin/false",
                  "PVE_MICROSEG_SHARE_DIR": str(HOOKSCRIPT.parent), "PVE_MICROSEG_NODE": "pve1",
                  "PVE_MICROSEG_LOCK_TIMEOUT": "0.2"})
    c.snapshot = _snapshot(c.root)
    return c


ARG = st.one_of(nasty, st.sampled_from(["101", "102", "999999999", "100", "web", "vmbr9", "db", "local",
                                        "tap101i0", "veth102i0", "fwpr101p0", "02:00:00:00:01:01", "0.5", "5",
                                        "dhcp", "ssh", "web-gateway", "--", "-", "--x"]),
                st.text(max_size=6))
COMMANDS = {
    ("apply",): ["--dry-run", "--diff"],
    ("show",): ["--nft"],
    ("hookscript", "install"): ["--dry-run", ("--storage", ARG)],
    ("import-legacy",): ["--dry-run"],
    ("guest", "attach"): ["--dry-run", "--all", ("--vnet", ARG), ("--storage", ARG), ARG, ARG],
    ("guest", "detach"): ["--dry-run", "--all", ("--vnet", ARG), ARG],
    ("guest", "sync"): [ARG, ARG],
    ("vnet", "enable"): [ARG, "--dry-run", ("--gateway-mac", ARG), ("--allow", ARG), ("--timeout", ARG),
                         "--enable-datacenter-firewall", "--i-have-console-access"],
    ("vnet", "disable"): [ARG, "--dry-run"],
    ("status",): ["--local", ("--timeout", ARG)],
    ("check",): [],
    ("port", "bind"): [ARG, ARG, "--dry-run"],
    ("port", "unbind"): [ARG, "--dry-run"],
    ("teardown",): ["--dry-run"],
}
NEVER_WRITE_PVE = {"apply", "show", "status", "check", "port", "teardown"}


@st.composite
def argvs(draw):
    command = draw(st.sampled_from(sorted(COMMANDS)))
    argv = list(command)
    for opt in draw(st.lists(st.sampled_from(COMMANDS[command] or ["--dry-run"]), max_size=4)):
        if isinstance(opt, tuple):
            argv += [opt[0], draw(opt[1])]
        elif isinstance(opt, str):
            argv.append(opt)
        else:
            argv.append(draw(opt))
    if draw(st.booleans()):
        argv += ["--output-format", draw(st.sampled_from(["json", "json-pretty", "yaml", "text", "xml"]))]
    if draw(st.integers(0, 9)) == 0:
        argv.insert(draw(st.integers(0, len(argv))), draw(ARG))
    return argv


class KernelNft(FakeNft):
    """A kernel with an empty table: what `port`, `status --local` and
    `apply --diff` read back."""

    def list_table(self, family, table):
        return []

    def set_elements(self, family, table, name):
        return []


def _run_cli(c, argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = cli.main(argv, environ=c.env, out=out)
        except SystemExit as e:          # argparse: usage errors, --help, --version
            rc = e.code if isinstance(e.code, int) else 2
            return rc, None, err.getvalue()
    return rc, out.getvalue(), err.getvalue()


@SLOW
@given(argvs(), st.one_of(st.none(), mutated([YAML_SEED, GOOD_YAML])),
       st.one_of(st.none(), mutated([LEGACY_SEED, LEGACY_GOOD])))
@example(["vnet", "enable", "web", "--gateway-mac", "zz"], None, None)
@example(["vnet", "enable", "web", "--gateway-mac", "ff:ff:ff:ff:ff:ff"], None, None)
@example(["status", "--timeout", "nan"], None, None)
@example(["guest", "attach", "--vnet", "nosuch"], None, None)
@example(["guest", "sync", "١٠١"], None, None)
@example(["import-legacy"], None, "vmbr9;192.168.9.1;52:54:00:12:34:5\n")
@example(["show", "--output-format", "json"], "[" * 40000, None)
def test_cli_exit_codes_json_and_no_change_on_refusal(cli_cluster, monkeypatch, argv, config, legacy_text):
    c = cli_cluster
    nft = KernelNft()
    monkeypatch.setattr(cli, "Nft", lambda dry_run=False: nft)
    _restore(c.root, c.snapshot)
    try:
        if config is not None:
            (c.pve / "microseg.yaml").write_text(config, errors="surrogateescape")
        if legacy_text is not None:
            (c.pve / "L2-microsegmentation.conf").write_text(legacy_text, errors="surrogateescape")
        before, everything = _snapshot(c.pve), _snapshot(c.root)
        rc, out, err = _run_cli(c, argv)
        event(f"{' '.join(a for a in argv[:2] if a.isalpha())}: exit {rc}")
        assert rc in DOCUMENTED_EXITS, (rc, err)
        assert "Traceback" not in err
        fmt = argv[argv.index("--output-format") + 1] if "--output-format" in argv[:-1] else "text"
        if out is not None and fmt in ("json", "json-pretty"):
            data = json.loads(out)
            if rc not in (0, 9, 10, 11):
                assert "error" in data
        refused = out is None or rc not in (0, 9, 10, 11)
        if refused or "--dry-run" in argv or argv[0] in NEVER_WRITE_PVE:
            assert _snapshot(c.pve) == before, f"{argv} (exit {rc}) changed /etc/pve: {err}"
        if refused and argv[0] != "port":   # port bind closes the ports it cannot decide (by design)
            assert _durable(_snapshot(c.root)) == _durable(everything), \
                f"{argv} (exit {rc}) changed a file: {err}"
    finally:
        _restore(c.root, c.snapshot)


# ----------------------------------------------------------------------------- hooks

IFACES = st.one_of(st.sampled_from(["web"] * 12 + ["vmbr9", "vnet0", "tap101i0", "../x", "/etc/passwd", "a" * 16, "web\n", "we b",
                                    "", ".", "..", "web/x", "-", "\x00", "٠"]), st.text(max_size=17))


@SLOW
@given(st.sampled_from([["up"], ["up"], ["up"], ["down"], ["down"], [], ["x"], ["up", "down"]]), IFACES,
       st.one_of(st.none(), mutated([YAML_SEED, GOOD_YAML])),
       st.sampled_from(["ok", "state-is-file", "run-is-file"]))
@example(["up"], "web", "[" * 40000, "ok")
@example(["up"], "web", None, "run-is-file")
def test_ifupdown_hook_ends_cleanly(cli_cluster, monkeypatch, argv, iface, config, layout):
    c = cli_cluster
    nft = KernelNft()
    monkeypatch.setattr(ifupdown, "Nft", lambda dry_run=False: nft)
    _restore(c.root, c.snapshot)
    env = dict(c.env, IFACE=iface)
    try:
        if config is not None:
            (c.pve / "microseg.yaml").write_text(config, errors="surrogateescape")
        if layout != "ok":
            blocker = c.root / f"{layout}.blocker"
            blocker.write_text("a file\n")
            env["PVE_MICROSEG_STATE_DIR" if layout == "state-is-file" else "PVE_MICROSEG_RUN_DIR"] = str(blocker)
        before = _snapshot(c.pve)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = ifupdown.main(argv, env)
        event(f"exit {rc}")
        assert rc in (0, 1, 2), rc
        assert "Traceback" not in err.getvalue()
        assert _snapshot(c.pve) == before
    finally:
        _restore(c.root, c.snapshot)


@SLOW
@given(st.lists(st.one_of(st.sampled_from(["101", "102", "103", "pre-start", "post-start", "pre-stop",
                                           "post-stop", "0101", "١٠١", "99999999999999999999"]), ARG),
                max_size=3),
       st.fixed_dictionaries({}, optional={"PVE_MIGRATED_FROM": st.sampled_from(["pve2", "../..", "", "/x"]),
                                           "PVE_MICROSEG_LOCK_TIMEOUT": st.sampled_from(["0.2", "0", "-1"])}))
def test_guest_hookscript_ends_cleanly(cli_cluster, argv, extra):
    c = cli_cluster
    _restore(c.root, c.snapshot)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            rc = hookscript_entry.main(argv, dict(c.env, **extra), out, err)
        assert rc in DOCUMENTED_EXITS
        assert "Traceback" not in err.getvalue() + out.getvalue()
    finally:
        _restore(c.root, c.snapshot)


def test_guest_hookscript_lock_timeout_not_a_number(cli_cluster):
    c = cli_cluster
    err = io.StringIO()
    rc = hookscript_entry.main(["101", "pre-start"], dict(c.env, PVE_MICROSEG_LOCK_TIMEOUT="soon"),
                               io.StringIO(), err)
    assert rc in DOCUMENTED_EXITS


# ----------------------------------------------------------------------------- found by the properties

def test_legacy_line_numbers_count_lf_only():
    """str.splitlines also ended lines at CR, FF, \\x85, U+2028...: the
    refusal named a line the file does not have (found: '\\r\\r0' -> line 3)."""
    with pytest.raises(ConfigError) as e:
        legacy.parse_legacy("\r\r0", "L2.conf")
    assert e.value.line == 1
    with pytest.raises(ConfigError) as e:
        legacy.parse_legacy("# note\x0c more\nvmbr1;10.0.0.1;zz\n", "L2.conf")
    assert (e.value.line, e.value.field) == (2, "GATEWAY_MAC")


def test_section_config_line_numbers_count_lf_only():
    """A \\x85 or U+2028 inside a line is not a line end (Perl splits at \\n):
    it neither ends the section nor shifts the line numbers."""
    sections = sectionconfig.parse_section_config("vnet: a\x85\n\tzone z\u2028\nvnet: b\n\tzone y\n", "vnets.cfg")
    assert [(s.id, s.line, s.props) for s in sections] == [("a", 1, {"zone": "z"}), ("b", 3, {"zone": "y"})]
