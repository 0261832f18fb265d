"""pve-microseg import-legacy: the article's file into microseg.yaml."""

import json

from pvesim import Cluster
from pve_microseg.parse import microseg_yaml

LEGACY = """\
# BRIDGE;GATEWAY_IP;GATEWAY_MAC
vnet1;10.100.0.1;00:00:5E:00:01:64
vnet1;10.100.0.2;00:00:5E:00:01:65
db;10.200.0.1;02:00:00:00:02:01
"""


def run(cluster, *argv):
    return cluster.cli("import-legacy", *argv)


def test_import_keeps_existing_entries_and_comments(tmp_path):
    c = Cluster(tmp_path)
    c.write("L2-microsegmentation.conf", LEGACY)
    mine = "# ours\nbridges:\n  db:   # hand-written\n    gateway-mac: 02:00:00:00:02:09\n    gateway-ip: 10.200.0.9\n"
    c.write("microseg.yaml", mine)
    rc, out = run(c, "--dry-run")
    assert rc == 0 and "would import: vnet1" in out and "db: not imported, already in" in out
    assert (c.pve / "microseg.yaml").read_text() == mine
    rc, out = run(c)
    assert rc == 0 and "imported: vnet1" in out
    text = (c.pve / "microseg.yaml").read_text()
    assert text.startswith(mine)
    assert text.endswith("  vnet1:\n    gateway-mac: [00:00:5e:00:01:64, 00:00:5e:00:01:65]\n"
                         "    gateway-ip: [10.100.0.1, 10.100.0.2]\n")
    spec = {b.name: b for b in microseg_yaml.parse_document(text, "m").bridges}["vnet1"]
    assert [str(ip) for ip, _ in spec.ips] == ["10.100.0.1", "10.100.0.2"]
    rc, out = run(c, "--output-format", "json")
    assert json.loads(out)["imported"] == []                     # idempotent
    assert not any((c.pve / "priv/lock").iterdir())


def test_nothing_to_import(tmp_path):
    c = Cluster(tmp_path)
    rc, _ = run(c)
    assert rc == 1
