"""`pve-microseg check`: lint every firewall file of the cluster (policy/fwlint.py).

It runs on this node only: whether proxmox-firewall is new enough for
ipfilter (1.2.0) is checked for this node (dpkg's status file); other nodes
with nftables: 1 get a note that it is not checked from here, since
`status` asks every node over ssh.
"""

from ..edges import cluster, node, pmxcfs
from ..model.errors import ExitCode
from ..parse import fwfile
from ..policy import fwlint
from .result import Result
from .status import proxmox_firewall


def _fw_files(paths, directory):
    try:
        return sorted(directory.glob("*.fw")) if directory.is_dir() else []
    except OSError:
        return []


def collect(paths):
    """([(name, text, kind)] with cluster.fw first, [nodes with nftables: 1], [nodes])."""
    files, nft_nodes = [], []
    if paths.cluster_fw.exists():
        files.append(("cluster.fw", pmxcfs.read_file(paths.cluster_fw), "cluster"))
    nodes = cluster.nodes(paths)
    for n in nodes:
        text = pmxcfs.read_file(paths.host_fw(n))
        if text:
            files.append((f"nodes/{n}/host.fw", text, "host"))
        if fwfile.parse(text).option("nftables") == "1":
            nft_nodes.append(n)
    for f in _fw_files(paths, paths.firewall_dir):
        if f.name != "cluster.fw" and f.stem.isdigit():
            files.append((f"firewall/{f.name}", pmxcfs.read_file(f), "guest"))
    for f in _fw_files(paths, paths.vnet_fw_dir):
        files.append((f"sdn/firewall/{f.name}", pmxcfs.read_file(f), "vnet"))
    return files, nft_nodes, nodes


def check(paths):
    files, nft_nodes, nodes = collect(paths)
    here, installed = node.local_node(paths), proxmox_firewall(paths)
    findings = fwlint.lint_cluster(files, nft_nodes, nodes, here, installed)
    bad = any(f.severity in ("error", "warning") for f in findings)
    data = {"files": [n for n, _, _ in files], "node": here, "proxmox-firewall": installed,
            "findings": [{"file": f.file, "line": f.line, "severity": f.severity, "message": f.message}
                         for f in findings]}
    return Result(data, ExitCode.FINDINGS if bad else ExitCode.OK)
