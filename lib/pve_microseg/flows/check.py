"""`pve-microseg check`: lint every firewall file of the cluster (policy/fwlint.py).

It runs on this node only: whether proxmox-firewall is new enough for
ipfilter (1.2.0) is checked for this node (dpkg's status file); other nodes
with nftables: 1 get a note that it is not checked from here, since
`status` asks every node over ssh.
"""

from ..edges import cluster, node, pmxcfs
from ..model.errors import ExitCode
from ..parse import fwfile, names
from ..policy import antispoof, fwlint
from .result import Result
from .status import proxmox_firewall


def _fw_files(paths, directory):
    try:
        return sorted(directory.glob("*.fw")) if directory.is_dir() else []
    except OSError:
        return []


def collect(paths):
    """([(name, text, kind)] with cluster.fw first, [nodes with nftables: 1], [nodes],
    [fwlint.GuestConfig of each guest that has a .fw file])."""
    files, nft_nodes, guest_configs = [], [], []
    if paths.cluster_fw.exists():
        files.append(("cluster.fw", pmxcfs.read_file(paths.cluster_fw), "cluster"))
    nodes = cluster.nodes(paths)
    for n in nodes:
        text = pmxcfs.read_file(paths.host_fw(n))
        if text:
            files.append((f"nodes/{n}/host.fw", text, "host"))
        if antispoof.nftables_on(fwfile.parse(text)):
            nft_nodes.append(n)
    guests = cluster.vmlist(paths)
    for f in _fw_files(paths, paths.firewall_dir):
        if f.name != "cluster.fw" and names.is_vmid(f.stem):
            files.append((f"firewall/{f.name}", pmxcfs.read_file(f), "guest"))
            # proxmox-firewall reads the config of a guest with a .fw file on its node
            g = guests.get(names.vmid(f.stem))
            if g is not None:
                path = paths.guest_config(g.node, g.type, g.vmid)
                guest_configs.append(fwlint.GuestConfig(
                    f"firewall/{f.name}", g.vmid, g.node, g.type,
                    str(path.relative_to(paths.pve_dir)), pmxcfs.read_file(path)))
    for f in _fw_files(paths, paths.vnet_fw_dir):
        files.append((f"sdn/firewall/{f.name}", pmxcfs.read_file(f), "vnet"))
    return files, nft_nodes, nodes, guest_configs


def check(paths):
    files, nft_nodes, nodes, guest_configs = collect(paths)
    here, installed = node.local_node(paths), proxmox_firewall(paths)
    findings = fwlint.lint_cluster(files, nft_nodes, nodes, here, installed, guest_configs)
    bad = any(f.severity in ("error", "warning") for f in findings)
    data = {"files": [n for n, _, _ in files], "node": here, "proxmox-firewall": installed,
            "findings": [{"file": f.file, "line": f.line, "severity": f.severity, "message": f.message}
                         for f in findings]}
    return Result(data, ExitCode.FINDINGS if bad else ExitCode.OK)
