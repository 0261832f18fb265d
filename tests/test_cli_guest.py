"""pve-microseg guest attach|detach|sync on the simulated cluster."""

import json

import pytest

from pvesim import HERE, HOOKSCRIPT, Cluster


OURS = f"local:snippets/{HOOKSCRIPT.name}"
MAC = "BC:24:11:2C:69:EC"
YAML = "bridges:\n  web:\n    gateway-mac: 02:00:00:00:01:01\n    gateway-ip: 10.100.0.1\n"

@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    c.write("microseg.yaml", YAML)
    c.env["PVE_MICROSEG_PVESH"] = str(HERE / "bin" / "pvesh")     # checked against the API schema
    c.install_hookscript()
    (c.snippets / "site.sh").write_text("#!/bin/sh\nexit 0\n")        # the operator's own hookscript
    (c.snippets / "site.sh").chmod(0o755)
    c.add_vm(101, {0: f"virtio={MAC},bridge=web,firewall=1"}, {0: "ip=10.100.0.5/24"}, hookscript=False)
    c.add_vm(102, {0: "virtio=BC:24:11:00:00:02,bridge=vmbr0"}, node="pve2",
             hookscript=False)
    c.add_ct(201, {0: "name=eth0,bridge=web,firewall=1,hwaddr=BC:24:11:00:00:03,ip=10.100.0.6/24"})
    path = c.guest_path(201, "lxc")
    path.write_text(path.read_text().replace(f"hookscript: {OURS}", "hookscript: local:snippets/site.sh"))
    return c


def run(cluster, *argv):
    return cluster.cli("guest", *argv)


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
    assert any(p[0] == "pve2" and "/nodes/pve2/qemu/102/config" in p[2] for p in cluster.pvesh_proxied())
    assert "installed on pve2" in out


def test_unknown_guest_and_no_selection(cluster):
    assert run(cluster, "attach", "999")[0] == 1
    assert run(cluster, "attach")[0] == 1


def test_sync_writes_the_sets_of_a_running_guest(cluster):
    cluster.install_hookscript()
    rc, out = run(cluster, "sync", "101")
    assert rc == 0, out
    assert "10.100.0.5" in cluster.fw(101)


def test_sync_never_writes_a_file_that_would_freeze_the_guests_node(cluster, capsys):
    cluster.add_vm(103, {0: "e1000e=BC:24:11:00:00:04,bridge=web,firewall=1"}, {0: "ip=10.100.0.7/24"},
                   node="pve2", hookscript=False)
    cluster.write("nodes/pve2/host.fw", "[OPTIONS]\nnftables: 1\n")      # the guest's node, not this one
    rc, out = run(cluster, "sync", "103")
    err = capsys.readouterr().err
    assert rc == 5 and "guest 103 net0" in err and "pve2 runs proxmox-firewall" in err, err
    assert cluster.fw(103) is None
    cluster.write("nodes/pve2/host.fw", "[OPTIONS]\nnftables: 0\n")
    rc, out = run(cluster, "sync", "103")
    assert rc == 0 and "10.100.0.7" in cluster.fw(103), out


def test_attach_never_loses_a_chained_hookscript(cluster):
    assert run(cluster, "attach", "201")[0] == 0                        # chain: local:snippets/site.sh
    other = cluster.root / "mnt/other"
    (other / "snippets").mkdir(parents=True)
    (other / "snippets" / HOOKSCRIPT.name).write_bytes(HOOKSCRIPT.read_bytes())
    (other / "snippets" / HOOKSCRIPT.name).chmod(0o755)
    cfg = cluster.pve / "storage.cfg"
    cfg.write_text(cfg.read_text() + f"\ndir: other\n\tpath {other}\n\tcontent snippets\n")
    rc, out = run(cluster, "attach", "201", "--storage", "other")      # ours, from another storage
    assert rc == 0 and "attached (was " in out
    assert "chain: local:snippets/site.sh" in (cluster.pve / "microseg.yaml").read_text()
    path = cluster.guest_path(201, "lxc")
    path.write_text(path.read_text().replace("hookscript: other:snippets/pve-microseg-hookscript",
                                             "hookscript: local:snippets/third.sh"))
    rc, out = run(cluster, "attach", "201")
    assert rc == 1 and "would replace the chained local:snippets/site.sh" in out
    assert hookscript(cluster, 201, "lxc") == "local:snippets/third.sh"


def test_attach_goes_on_after_one_guest_fails(cluster):
    path = cluster.guest_path(101)
    path.write_text("lock: backup\n" + path.read_text())                # pvesh refuses a locked guest
    rc, out = run(cluster, "attach", "--vnet", "web")
    assert rc == 1
    assert "101 (qemu on pve1): FAILED" in out and "201 (lxc on pve1): attached" in out
    assert hookscript(cluster, 201, "lxc") == OURS
    assert run(cluster, "attach", "101", "--all")[0] == 1               # VMIDs and --all: refused


def test_attach_without_the_installed_hookscript_fails_as_proxmox_does(cluster):
    (cluster.snippets / HOOKSCRIPT.name).unlink()
    rc, out = run(cluster, "attach", "101")
    assert rc == 1 and "does not exist" in out and hookscript(cluster, 101) is None


def test_sync_json(cluster):
    rc, out = run(cluster, "sync", "101", "--output-format", "json")
    data = json.loads(out)
    assert rc == 0 and data["synced"][0]["vmid"] == 101
    assert any("10.100.0.5" in line for line in data["synced"][0]["log"])


def failing_pvesh(cluster, tmp_path, meanwhile):
    """A pvesh that, asked to set guest 201's hookscript, lets another
    command edit microseg.yaml (`meanwhile`, a shell line) and then fails."""
    wrapper = tmp_path / "pvesh-meanwhile"
    wrapper.write_text(f"""#!/bin/sh
if [ "$1" = set ] && [ "$2" = /nodes/pve1/lxc/201/config ]; then
  cd {cluster.pve} && {meanwhile}
  echo "VM 201 is locked (backup)" >&2; exit 255
fi
exec {HERE / "bin" / "pvesh"} "$@"
""")
    wrapper.chmod(0o755)
    cluster.env["PVE_MICROSEG_PVESH"] = str(wrapper)


DB = "  db:\\n    gateway-mac: 02:00:00:00:02:01\\n    gateway-ip: 10.200.0.1"


def test_a_failed_attach_takes_back_its_own_edit_only(cluster, tmp_path):
    """Another command adds a bridge between our record and the failure: it stays."""
    failing_pvesh(cluster, tmp_path, f"sed -i 's/^bridges:$/bridges:\\n{DB}/' microseg.yaml")
    rc, out = run(cluster, "attach", "201")
    assert rc == 1 and "VM 201 is locked" in out and "undone: the chain recorded" in out, out
    assert (cluster.pve / "microseg.yaml").read_text() == YAML.replace(
        "bridges:\n", "bridges:\n" + DB.replace("\\n", "\n") + "\n") + "\nguests:\n"
    assert hookscript(cluster, 201, "lxc") == "local:snippets/site.sh"


def test_a_failed_attach_leaves_a_chain_someone_changed_meanwhile_and_says_so(cluster, tmp_path):
    failing_pvesh(cluster, tmp_path, "sed -i 's|chain: local:snippets/site.sh|chain: local:snippets/v2.sh|' "
                                     "microseg.yaml")
    rc, out = run(cluster, "attach", "201")
    assert rc == 1 and "guests.201.chain was changed by another edit meanwhile" in out, out
    assert "    chain: local:snippets/v2.sh\n" in (cluster.pve / "microseg.yaml").read_text()


def test_a_failed_attach_with_nobody_else_editing_leaves_the_file_as_it_was(cluster, tmp_path):
    failing_pvesh(cluster, tmp_path, "true")
    rc, out = run(cluster, "attach", "201")
    assert rc == 1 and "undone: the chain recorded" in out
    assert (cluster.pve / "microseg.yaml").read_text() == YAML


def test_a_chain_with_a_hash_is_chained_and_restored_whole(cluster):
    (cluster.snippets / "site.sh # v2").write_text("#!/bin/sh\nexit 0\n")
    (cluster.snippets / "site.sh # v2").chmod(0o755)
    path = cluster.guest_path(201, "lxc")
    path.write_text(path.read_text().replace("hookscript: local:snippets/site.sh",
                                             "hookscript: local:snippets/site.sh # v2"))
    assert run(cluster, "attach", "201")[0] == 0
    assert "    chain: 'local:snippets/site.sh # v2'\n" in (cluster.pve / "microseg.yaml").read_text()
    rc, out = run(cluster, "detach", "201")
    assert rc == 0 and "local:snippets/site.sh # v2 restored" in out, out
    assert hookscript(cluster, 201, "lxc") == "local:snippets/site.sh # v2"


def test_detach_removes_the_chain_line_only(cluster):
    assert run(cluster, "attach", "201")[0] == 0
    text = (cluster.pve / "microseg.yaml").read_text().replace(
        "  201:\n", "  201:   # the web CT\n    port-security: mac   # DHCP\n    net0: [10.100.0.6]\n")
    (cluster.pve / "microseg.yaml").write_text(text)
    assert run(cluster, "detach", "201")[0] == 0
    assert (cluster.pve / "microseg.yaml").read_text() == text.replace("    chain: local:snippets/site.sh\n", "")


def test_sync_goes_on_after_one_guest_fails_and_names_each_failure(cluster, capsys):
    cluster.add_vm(103, {0: "e1000e=BC:24:11:00:00:04,bridge=web,firewall=1"}, {0: "ip=10.100.0.7/24"},
                   node="pve2", hookscript=False)
    cluster.write("nodes/pve2/host.fw", "[OPTIONS]\nnftables: 1\n")      # 103's .fw would freeze pve2
    rc, out = run(cluster, "sync", "103", "999", "101")
    err = capsys.readouterr().err
    assert rc == 1                                                      # two different failures
    assert "10.100.0.5" in cluster.fw(101)                              # the last one still synced
    assert "guest 103 (qemu on pve2): NOT synced: " in out and "pve2 runs proxmox-firewall" in out
    assert "guest 999: NOT synced: no guest 999 in this cluster" in out
    assert "synced 1 of 3 guest(s); not synced: 103, 999" in out
    assert "warning: guest 103 (qemu on pve2): NOT synced: " in err
    rc, out = run(cluster, "sync", "103", "101", "--output-format", "json")
    data = json.loads(out)
    assert rc == 5 and [g["vmid"] for g in data["synced"]] == [101]
    assert [(f["vmid"], f["node"], f["exit-code"]) for f in data["failed"]] == [(103, "pve2", 5)]


def test_sync_names_the_guest_in_each_warning(cluster, capsys):
    cluster.write("firewall/101.fw", "[RULES]\nIN ACCEPT -p tcp -dport 22 # a # b\n")
    rc, out = run(cluster, "sync", "101")
    err = capsys.readouterr().err
    assert rc == 0 and err.strip(), err
    assert all(line.startswith("warning: guest 101 (qemu on pve1): ") for line in err.splitlines()), err


@pytest.mark.parametrize("action", ["attach", "detach"])
def test_an_unknown_vnet_is_an_error_naming_the_known_ones(cluster, capsys, action):
    rc, out = run(cluster, action, "--vnet", "nosuch", "--dry-run")
    err = capsys.readouterr().err
    assert rc == 1 and out == ""
    assert "--vnet nosuch: no such VNet or bridge (known: vmbr0, web)" in err


def test_a_known_vnet_without_guests_is_no_error(cluster):
    cluster.write("microseg.yaml", YAML + "  empty:\n    gateway-mac: 02:00:00:00:01:02\n"
                                          "    gateway-ip: 10.101.0.1\n")
    rc, out = run(cluster, "attach", "--vnet", "empty", "--dry-run")
    assert rc == 0
