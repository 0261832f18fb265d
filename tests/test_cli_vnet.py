"""pve-microseg vnet enable|disable, through the simulator's pvesh (checked against the API schema)."""

import json
import os
import re
import signal
import time

import pytest

from pvesim import HERE, Cluster
from pve_microseg.policy import fwstrict

PVESH = str(HERE / "bin" / "pvesh")
VNETS_CFG = "vnet: web\n\tzone dmz\n\ttag 100\n"
ZONES_CFG = "vlan: dmz\n\tbridge vmbr0\n\tipam pve\n"
SUBNETS_CFG = "subnet: dmz-10.100.0.0-24\n\tvnet web\n\tgateway 10.100.0.1\n"


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    c.write("sdn/vnets.cfg", VNETS_CFG)
    c.write("sdn/zones.cfg", ZONES_CFG)
    c.write("sdn/subnets.cfg", SUBNETS_CFG)
    for n in ("pve1", "pve2"):
        c.write(f"nodes/{n}/host.fw", "[OPTIONS]\n\nnftables: 1\n")
    c.env["PVE_MICROSEG_PVESH"] = PVESH
    return c


def run(cluster, *argv):
    return cluster.cli("vnet", *argv)


def apply_sdn(cluster):
    r = cluster.pvesh("set", "/cluster/sdn")
    assert r.returncode == 0, r.stderr


def vnet_fw(cluster):
    path = cluster.pve / "sdn/firewall/web.fw"
    return path.read_text() if path.exists() else None


def test_enable_is_checked_idempotent_and_disable_undoes_it(cluster):
    apply_sdn(cluster)
    rc, out = run(cluster, "enable", "web", "--gateway-mac", "02:00:00:00:01:01", "--allow", "dns", "--dry-run")
    assert rc == 0, out
    assert "would run: pvesh set /cluster/sdn/vnets/web/firewall/options --enable 1 --policy_forward DROP" in out
    assert vnet_fw(cluster) is None and not (cluster.pve / "microseg.yaml").exists()

    rc, out = run(cluster, "enable", "web", "--gateway-mac", "02:00:00:00:01:01", "--allow", "dns")
    assert rc == 0, out
    fw = vnet_fw(cluster)
    assert fwstrict.check(fw, "vnet") == [], fw
    assert "policy_forward: DROP" in fw and "enable: 1" in fw
    for want in ("FORWARD ACCEPT -source +sdn/web-gateway -dest +sdn/web-all # pve-microseg: gateway-to-guests",
                 "FORWARD ACCEPT -source +sdn/web-all -dest +sdn/web-gateway # pve-microseg: guests-to-gateway",
                 "-p udp -dport 53", "-p tcp -dport 53"):
        assert want in fw, fw
    yaml_text = (cluster.pve / "microseg.yaml").read_text()
    assert "  web:\n    gateway-mac: [02:00:00:00:01:01]\n" in yaml_text
    assert "vnet-firewall-before: {enable: '', policy_forward: '', added-bridge: true}" in yaml_text

    rc, out = run(cluster, "enable", "web", "--allow", "dns")
    assert rc == 0 and "nothing to change" in out and vnet_fw(cluster) == fw

    rc, out = run(cluster, "disable", "web", "--output-format", "json")
    assert rc == 0, out
    after = vnet_fw(cluster)
    assert after is None or "pve-microseg" not in after and "DROP" not in after
    assert "web" not in (cluster.pve / "microseg.yaml").read_text()


def test_prerequisites_are_explained_and_nothing_changes(cluster):
    cluster.write("nodes/pve2/host.fw", "[OPTIONS]\n\nnftables: 0\n")
    rc, _ = run(cluster, "enable", "web", "--gateway-mac", "02:00:00:00:01:01")
    assert rc == 8
    assert vnet_fw(cluster) is None and not (cluster.pve / "microseg.yaml").exists()


def test_datacenter_firewall_and_lockout(cluster, capsys):
    apply_sdn(cluster)
    cluster.write("firewall/cluster.fw", "[OPTIONS]\n\nenable: 0\n")
    args = ("enable", "web", "--gateway-mac", "02:00:00:00:01:01")
    assert run(cluster, *args)[0] == 8
    assert "datacenter firewall is off" in capsys.readouterr().err
    assert run(cluster, *args, "--enable-datacenter-firewall")[0] == 8
    err = capsys.readouterr().err
    assert "locks you out" in err and "pve-firewall stop" in err
    rc, out = run(cluster, *args, "--enable-datacenter-firewall", "--i-have-console-access")
    assert rc == 0, out
    assert "enable: 1" in (cluster.pve / "firewall/cluster.fw").read_text()


ENABLE = ("enable", "web", "--gateway-mac", "02:00:00:00:01:01", "--apply")


def switch(cluster, name, text=""):
    (cluster.root / "run/sim").mkdir(parents=True, exist_ok=True)
    (cluster.root / "run/sim" / name).write_text(text)


def nodes_of(out):
    return {n["node"]: n for n in json.loads(out)["sdn-apply"]["nodes"]}


def srvreload(node):
    return rf"UPID:{node}:[0-9A-F]{{8}}:[0-9A-F]{{8,9}}:[0-9A-F]{{8}}:srvreload:networking:root@pam:"


def test_apply_without_quorum_fails_and_undoes_the_run(cluster, capsys):
    """The apply's own task fails only when it cannot start the nodes' reloads."""
    assert run(cluster, "enable", "web", "--gateway-mac", "02:00:00:00:01:01")[0] == 8    # not applied yet
    switch(cluster, "reloadnetworkall.no-quorum")
    rc, _ = run(cluster, *ENABLE)
    err = capsys.readouterr().err
    assert rc == 1 and "the SDN apply failed: cluster not ready - no quorum?" in err
    assert vnet_fw(cluster) is None


def test_apply_reports_each_nodes_reload(cluster):
    rc, out = run(cluster, *ENABLE)
    assert rc == 0, out
    assert "web" in json.loads((cluster.pve / "sdn/.running-config").read_text())["vnets"]["ids"]
    assert "pve-microseg: guests-to-gateway" in vnet_fw(cluster)
    assert re.search(r"^SDN applied \(UPID:pve1:\S+:reloadnetworkall::root@pam:\); each node's network reload:$",
                     out, re.M), out
    for node in ("pve1", "pve2"):
        assert re.search(rf"^  {node}: network reloaded \(task {srvreload(node)}\)$", out, re.M), out

    rc, out = run(cluster, *ENABLE, "--output-format", "json")
    assert rc == 0, out
    data = json.loads(out)
    assert re.fullmatch(r"UPID:pve1:\S+:reloadnetworkall::root@pam:", data["sdn-apply"]["upid"])
    for node, n in nodes_of(out).items():
        assert (n["outcome"], n["exitstatus"]) == ("ok", "OK") and re.fullmatch(srvreload(node), n["upid"])
    assert sorted(nodes_of(out)) == ["pve1", "pve2"]


def test_a_node_whose_ifreload_failed_is_named_and_the_exit_status_is_11(cluster, capsys):
    switch(cluster, "ifreload.pve2", "error: vmbr0: bridge port eno9 does not exist\n")
    rc, out = run(cluster, *ENABLE)
    err = capsys.readouterr().err
    assert rc == 11, out
    m = re.search(rf"^  pve2: network reload FAILED: command 'ifreload -a' failed: exit code 1; read its log: "
                  rf"pvesh get /nodes/pve2/tasks/({srvreload('pve2')})/log$", out, re.M)
    assert m, out
    assert re.search(rf"^  pve1: network reloaded \(task {srvreload('pve1')}\)$", out, re.M), out
    assert "pve2: network reload FAILED" in err
    assert "the network reload failed on pve2: fix the cause (the task log named above), then reload: " \
           "pvesh set /nodes/pve2/network" in err
    assert "pve1: network reloaded" not in err
    # the command given reads the log that says why
    log = cluster.pvesh("get", f"/nodes/pve2/tasks/{m.group(1)}/log", "--output-format", "json")
    assert "vmbr0 : error: vmbr0: bridge port eno9 does not exist " in [line["t"] for line in json.loads(log.stdout)]
    # the other node did reload: the run is not undone
    assert "pve-microseg: guests-to-gateway" in vnet_fw(cluster)
    assert "web:" in (cluster.pve / "microseg.yaml").read_text()

    rc, out = run(cluster, *ENABLE, "--output-format", "json")
    assert rc == 11, out
    nodes = nodes_of(out)
    assert (nodes["pve2"]["outcome"], nodes["pve2"]["exitstatus"]) == (
        "failed", "command 'ifreload -a' failed: exit code 1")
    assert re.fullmatch(srvreload("pve2"), nodes["pve2"]["upid"])
    assert f"pvesh get /nodes/pve2/tasks/{nodes['pve2']['upid']}/log" in nodes["pve2"]["detail"]
    assert nodes["pve1"]["outcome"] == "ok"

    # a reload that failed before does not count for the next apply
    (cluster.root / "run/sim/ifreload.pve2").unlink()
    rc, out = run(cluster, *ENABLE, "--output-format", "json")
    assert rc == 0 and nodes_of(out)["pve2"]["outcome"] == "ok", out


def test_a_reload_still_running_at_the_timeout_is_unknown(cluster, capsys):
    switch(cluster, "ifreload.pve2.running", "8")
    started = time.monotonic()
    rc, out = run(cluster, *ENABLE, "--timeout", "1", "--output-format", "json")
    took = time.monotonic() - started
    err = capsys.readouterr().err
    nodes = nodes_of(out)
    pve2 = nodes["pve2"]
    try:
        assert rc == 0, out
        assert took < 8, took                            # it did not wait for the task
        assert pve2["outcome"] == "unknown" and pve2["exitstatus"] is None
        assert re.fullmatch(srvreload("pve2"), pve2["upid"])
        assert pve2["detail"].startswith(f"network reload still running after 1 s (task {pve2['upid']}): its "
                                         f"outcome: pvesh get /nodes/pve2/tasks/{pve2['upid']}/status")
        assert "the apply's call to the node failed: proxy handler failed: Connection to pve2 closed" in pve2["detail"]
        assert "pve2: network reload still running" in err
        assert nodes["pve1"]["outcome"] == "ok"
    finally:
        os.kill(int(pve2["upid"].split(":")[2], 16), signal.SIGTERM)     # the simulator's worker


def test_a_reload_that_ends_within_the_timeout_is_waited_for(cluster):
    """pve2's reload still runs for seconds after the apply: its outcome is the one it ends with."""
    switch(cluster, "ifreload.pve2.running", "5")
    switch(cluster, "ifreload.pve2", "error: vmbr0: bridge port eno9 does not exist\n")
    rc, out = run(cluster, *ENABLE, "--timeout", "20", "--output-format", "json")
    assert rc == 11, out
    pve2 = nodes_of(out)["pve2"]
    assert (pve2["outcome"], pve2["exitstatus"]) == ("failed", "command 'ifreload -a' failed: exit code 1")


def test_an_offline_node_is_unknown_and_not_asked(cluster, capsys):
    cluster.write(".members", json.dumps({"nodename": "pve1", "nodelist": {
        "pve1": {"id": 1, "online": 1, "ip": "192.0.2.11"}, "pve2": {"id": 2, "online": 0, "ip": "192.0.2.12"}}}))
    rc, out = run(cluster, *ENABLE)
    err = capsys.readouterr().err
    assert rc == 0, out
    line = next(line for line in out.splitlines() if line.startswith("  pve2: "))
    assert line.startswith("  pve2: network reload outcome unknown: the node is offline; reload its network once it "
                           "is back (pvesh set /nodes/pve2/network)"), out
    assert ("the apply's call to the node failed: proxy handler failed: ssh: connect to host 192.0.2.12 port 22: "
            "No route to host; command 'pvesh set /nodes/pve2/network --regenerate-frr 0' failed: "
            "exit code 255") in line
    assert "pve2: network reload outcome unknown" in err
    assert re.search(rf"^  pve1: network reloaded \(task {srvreload('pve1')}\)$", out, re.M), out
    assert [c for c in cluster.pvesh_proxied() if c[1] == "get"] == []          # no ssh to a node that is down

    rc, out = run(cluster, *ENABLE, "--output-format", "json")
    assert rc == 0 and nodes_of(out)["pve2"]["outcome"] == "unknown" and nodes_of(out)["pve2"]["upid"] is None


def test_apply_dry_run_changes_nothing_and_says_what_it_would_check(cluster):
    rc, out = run(cluster, *ENABLE, "--dry-run")
    assert rc == 0, out
    assert "would run: pvesh set /cluster/sdn" in out
    assert "each node's network reload (its srvreload task) would then be checked" in out
    assert not (cluster.pve / "sdn/.running-config").exists() and vnet_fw(cluster) is None
    assert not (cluster.root / "var/log/pve/tasks").exists()
    rc, out = run(cluster, *ENABLE, "--dry-run", "--output-format", "json")
    assert rc == 0 and json.loads(out)["sdn-apply"] is None


def test_a_failing_step_undoes_the_run(cluster, tmp_path, capsys):
    """pvesh refuses the third rule: the VNet must not be left on DROP, nor half recorded."""
    apply_sdn(cluster)
    wrapper = tmp_path / "pvesh-flaky"
    count = tmp_path / "creates"
    wrapper.write_text(f"""#!/bin/sh
if [ "$1" = create ]; then
  n=$(($(cat {count} 2>/dev/null || echo 0) + 1)); echo $n > {count}
  [ $n -eq 3 ] && {{ echo "cfs-lock 'firewall-vnet-web' error: got lock request timeout" >&2; exit 255; }}
fi
exec {PVESH} "$@"
""")
    wrapper.chmod(0o755)
    cluster.env["PVE_MICROSEG_PVESH"] = str(wrapper)
    rc, _ = run(cluster, "enable", "web", "--gateway-mac", "02:00:00:00:01:01", "--allow", "dns")
    err = capsys.readouterr().err
    assert rc == 7 and "got lock request timeout" in err and "removed the 2 rule(s)" in err
    fw = vnet_fw(cluster)
    assert fw is None or ("DROP" not in fw and "pve-microseg" not in fw)
    assert "web" not in ((cluster.pve / "microseg.yaml").read_text() if (cluster.pve / "microseg.yaml").exists() else "")


def test_disable_restores_the_options_found_and_keeps_operator_rules(cluster):
    apply_sdn(cluster)
    assert cluster.pvesh("set", "/cluster/sdn/vnets/web/firewall/options", "--enable", "1",
                         "--policy_forward", "ACCEPT").returncode == 0
    assert cluster.pvesh("create", "/cluster/sdn/vnets/web/firewall/rules", "--type", "forward",
                         "--action", "ACCEPT", "--proto", "tcp", "--dport", "22", "--enable", "1",
                         "--comment", "operator: ssh").returncode == 0
    mine = "# ours\nbridges:\n  web:   # the DMZ\n    gateway-mac: 02:00:00:00:01:01\n"
    cluster.write("microseg.yaml", mine)
    assert run(cluster, "enable", "web", "--allow", "dns", "--allow", "dns")[0] == 0
    fw = vnet_fw(cluster)
    assert fw.count("pve-microseg: dns-udp") == 1                     # a preset named twice, added once
    rc, out = run(cluster, "disable", "web", "--dry-run")
    assert rc == 0 and vnet_fw(cluster) == fw and "would change" in out
    assert run(cluster, "disable", "web")[0] == 0
    fw = vnet_fw(cluster)
    assert "policy_forward: ACCEPT" in fw and "enable: 1" in fw
    assert "operator: ssh" in fw and "pve-microseg" not in fw
    assert (cluster.pve / "microseg.yaml").read_text() == mine        # entry kept, comments too


def test_disable_without_record_refuses_to_leave_a_dropping_vnet(cluster, capsys):
    apply_sdn(cluster)
    assert run(cluster, "enable", "web", "--gateway-mac", "02:00:00:00:01:01")[0] == 0
    cluster.write("microseg.yaml", "bridges:\n  web:\n    gateway-mac: 02:00:00:00:01:01\n")
    assert run(cluster, "disable", "web")[0] == 1
    assert "no record" in capsys.readouterr().err
    assert "pve-microseg: guests-to-gateway" in vnet_fw(cluster)


def test_apply_under_the_sdn_lock_changes_nothing_and_says_why(cluster, capsys):
    """PVE 9: while someone holds the global SDN lock (/etc/pve/sdn/.lock),
    an SDN apply without its token fails; enable --apply says so first."""
    cluster.write("sdn/.lock", "token-of-someone-else\n")
    rc, _ = run(cluster, "enable", "web", "--gateway-mac", "02:00:00:00:01:01", "--apply")
    err = capsys.readouterr().err
    assert rc == 8 and "the SDN configuration is locked" in err and "nothing was changed" in err
    assert vnet_fw(cluster) is None
    assert "web" not in ((cluster.pve / "microseg.yaml").read_text() if (cluster.pve / "microseg.yaml").exists() else "")


def test_the_sdn_lock_taken_during_the_run_is_named_and_the_run_undone(cluster, tmp_path, capsys):
    wrapper = tmp_path / "pvesh-locking"
    wrapper.write_text(f"""#!/bin/sh
[ "$1" = set ] && [ "$2" = /cluster/sdn ] && echo other > {cluster.pve}/sdn/.lock
exec {PVESH} "$@"
""")
    wrapper.chmod(0o755)
    cluster.env["PVE_MICROSEG_PVESH"] = str(wrapper)
    rc, _ = run(cluster, "enable", "web", "--gateway-mac", "02:00:00:00:01:01", "--apply")
    err = capsys.readouterr().err
    assert rc != 0 and "the SDN configuration is locked" in err and "invalid lock token provided!" in err
    assert vnet_fw(cluster) is None


def test_a_failing_step_keeps_what_another_command_wrote_meanwhile(cluster, tmp_path, capsys):
    """Between our record and the failure, another command adds a guest's
    settings and a comment to microseg.yaml: undoing our edit keeps both."""
    apply_sdn(cluster)
    cluster.write("microseg.yaml",
                  "# ours\nbridges:\n  db:   # kept\n    gateway-mac: 02:00:00:00:02:01\n    gateway-ip: 10.200.0.1\n")
    wrapper = tmp_path / "pvesh-meanwhile"
    wrapper.write_text(f"""#!/bin/sh
if [ "$1" = create ]; then
  printf 'guests:\\n  101:\\n    port-security: mac   # theirs\\n' >> {cluster.pve}/microseg.yaml
  echo "cfs-lock 'firewall-vnet-web' error: got lock request timeout" >&2; exit 255
fi
exec {PVESH} "$@"
""")
    wrapper.chmod(0o755)
    cluster.env["PVE_MICROSEG_PVESH"] = str(wrapper)
    rc, _ = run(cluster, "enable", "web", "--gateway-mac", "02:00:00:00:01:01")
    err = capsys.readouterr().err
    assert rc == 7 and f"restored {cluster.pve / 'microseg.yaml'}" in err, err
    assert (cluster.pve / "microseg.yaml").read_text() == (
        "# ours\nbridges:\n  db:   # kept\n    gateway-mac: 02:00:00:00:02:01\n    gateway-ip: 10.200.0.1\n"
        "guests:\n  101:\n    port-security: mac   # theirs\n")


def test_a_failing_step_leaves_a_record_someone_changed_meanwhile_and_says_so(cluster, tmp_path, capsys):
    apply_sdn(cluster)
    wrapper = tmp_path / "pvesh-meanwhile"
    wrapper.write_text(f"""#!/bin/sh
if [ "$1" = create ]; then
  sed -i 's/gateway-mac: .02:00:00:00:01:01./gateway-mac: 02:00:00:00:01:09/' {cluster.pve}/microseg.yaml
  echo "cfs-lock 'firewall-vnet-web' error: got lock request timeout" >&2; exit 255
fi
exec {PVESH} "$@"
""")
    wrapper.chmod(0o755)
    cluster.env["PVE_MICROSEG_PVESH"] = str(wrapper)
    rc, _ = run(cluster, "enable", "web", "--gateway-mac", "02:00:00:00:01:01")
    err = capsys.readouterr().err
    assert rc == 7 and "bridges.web.gateway-mac was changed by another edit meanwhile" in err, err
    text = (cluster.pve / "microseg.yaml").read_text()
    assert text == "bridges:\n  web:\n    gateway-mac: 02:00:00:00:01:09\n", text
