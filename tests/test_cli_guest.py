"""pve-microseg guest attach|detach|sync on the simulated cluster."""

import io
import json
import os
import sys

import pytest

from pvesim import HOOKSCRIPT, Cluster
from pve_microseg import cli

OURS = f"local:snippets/{HOOKSCRIPT.name}"
MAC = "BC:24:11:2C:69:EC"
YAML = "bridges:\n  web:\n    gateway-mac: 02:00:00:00:01:01\n    gateway-ip: 10.100.0.1\n"

# a minimal stand-in for pvesh's guest config PUT (the full fake lives in tests/pvesim)
FAKE_PVESH = """#!/usr/bin/python3
import os, re, sys
args = sys.argv[1:]
verb, path = args[0], args[1]
opts = dict(zip(args[2::2], args[3::2]))
m = re.match(r"^/nodes/([^/]+)/(qemu|lxc)/(\\d+)/config$", path)
if verb != "set" or not m:
    print(f"no '{verb}' handler for '{path}'", file=sys.stderr); sys.exit(255)
sub = "qemu-server" if m.group(2) == "qemu" else "lxc"
conf = os.path.join(os.environ["PVE_MICROSEG_PVE_DIR"], "nodes", m.group(1), sub, m.group(3) + ".conf")
with open(os.environ["PVESH_LOG"], "a") as f:
    f.write(" ".join(args) + "\\n")
lines = [l for l in open(conf).read().splitlines() if not l.startswith("hookscript:")]
if "--hookscript" in opts:
    lines.insert(0, "hookscript: " + opts["--hookscript"])
open(conf, "w").write("\\n".join(lines) + "\\n")
"""


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    c.write("microseg.yaml", YAML)
    fake = tmp_path / "pvesh"
    fake.write_text(FAKE_PVESH)
    fake.chmod(0o755)
    c.env.update(PVE_MICROSEG_PVESH=str(fake), PVESH_LOG=str(tmp_path / "pvesh.log"))
    c.add_vm(101, {0: f"virtio={MAC},bridge=web,firewall=1"}, {0: "ip=10.100.0.5/24"}, hookscript=False)
    c.add_vm(102, {0: "virtio=BC:24:11:00:00:02,bridge=vmbr0"}, node="pve2",
             hookscript=False)
    c.add_ct(201, {0: "name=eth0,bridge=web,firewall=1,hwaddr=BC:24:11:00:00:03,ip=10.100.0.6/24"})
    path = c.guest_path(201, "lxc")
    path.write_text(path.read_text().replace(f"hookscript: {OURS}", "hookscript: local:snippets/site.sh"))
    return c


def run(cluster, *argv):
    out = io.StringIO()
    old = dict(os.environ)
    os.environ.update(cluster.env)
    try:
        rc = cli.main(["guest", *argv], environ=cluster.env, out=out)
    finally:
        os.environ.clear()
        os.environ.update(old)
    return rc, out.getvalue()


def hookscript(cluster, vmid, gtype="qemu", node=None):
    for line in cluster.guest_path(vmid, gtype, node).read_text().splitlines():
        if line.startswith("hookscript: "):
            return line.split(": ", 1)[1]
    return None


def test_attach_by_vnet_chains_an_existing_hookscript_and_detach_restores_it(cluster):
    rc, out = run(cluster, "attach", "--vnet", "web", "--dry-run")
    assert rc == 0 and f"would run: pvesh set /nodes/pve1/qemu/101/config --hookscript {OURS}" in out
    assert hookscript(cluster, 101) is None                                 # dry run: nothing changed
    rc, out = run(cluster, "attach", "--vnet", "web")
    assert rc == 0, out
    assert hookscript(cluster, 101) == OURS and hookscript(cluster, 201, "lxc") == OURS
    assert hookscript(cluster, 102, node="pve2") is None                    # not on web
    assert "201 (lxc on pve1): attached (its hookscript local:snippets/site.sh now runs after ours)" in out
    yaml_text = (cluster.pve / "microseg.yaml").read_text()
    assert yaml_text.startswith(YAML) and "  201:\n    chain: local:snippets/site.sh\n" in yaml_text
    rc, out = run(cluster, "attach", "101")
    assert "101 (qemu on pve1): already attached" in out
    rc, out = run(cluster, "detach", "--all", "--output-format", "json")
    data = {g["vmid"]: g["result"] for g in json.loads(out)["guests"]}
    assert data == {101: "detached", 102: "not attached (hookscript: none)",
                    201: "detached, local:snippets/site.sh restored"}
    assert hookscript(cluster, 101) is None and hookscript(cluster, 201, "lxc") == "local:snippets/site.sh"
    assert (cluster.pve / "microseg.yaml").read_text() == YAML + "\nguests:\n"


def test_attach_on_another_node_uses_that_node(cluster):
    rc, out = run(cluster, "attach", "102")
    assert rc == 0 and hookscript(cluster, 102, node="pve2") == OURS
    assert "set /nodes/pve2/qemu/102/config --hookscript" in (cluster.root / "pvesh.log").read_text()
    assert "installed on pve2" in out


def test_unknown_guest_and_no_selection(cluster):
    assert run(cluster, "attach", "999")[0] == 1
    assert run(cluster, "attach")[0] == 1


def test_sync_writes_the_sets_of_a_running_guest(cluster):
    cluster.install_hookscript()
    rc, out = run(cluster, "sync", "101")
    assert rc == 0, out
    assert "10.100.0.5" in cluster.fw(101)
