"""`pve-microseg check`: lint every firewall file of the cluster (policy/fwlint.py).

It runs on this node only: whether proxmox-firewall is new enough for
ipfilter (1.2.0) is checked for this node (dpkg's status file); other nodes
with nftables: 1 get a note that it is not checked from here, since
`status` asks every node over ssh.
"""

from ..edges import cluster, node, pmxcfs
from ..model.errors import ExitCode, MicrosegError
from ..parse import fwfile, guestconf, names
from ..policy import antispoof, fwlint
from .result import Result
from .status import proxmox_firewall


def _fw_files(paths, directory):
    try:
        return sorted(directory.glob("*.fw")) if directory.is_dir() else []
    except OSError:
        return []


class _Reader:
    """Reads each file; one that cannot be read is a finding, and the rest
    are still read."""

    def __init__(self, paths):
        self.paths = paths
        self.findings = []

    def name(self, path):
        try:
            return str(path.relative_to(self.paths.pve_dir))
        except ValueError:
            return str(path)

    def read(self, path):
        """The file's text ('' when it does not exist), or None when it cannot be read."""
        try:
            return pmxcfs.read_file(path)
        except MicrosegError as e:
            self.findings.append(fwlint.Finding(self.name(path), 0, "error", f"not checked: {e}"))
            return None


def collect(paths):
    """([(name, text, kind)] with cluster.fw first, [nodes with nftables: 1], [nodes],
    [fwlint.GuestConfig of each guest that has a .fw file], [findings of files
    that cannot be read or that pre-start refuses])."""
    files, nft_nodes, guest_configs = [], [], []
    reader = _Reader(paths)
    if paths.cluster_fw.exists():
        text = reader.read(paths.cluster_fw)
        if text is not None:
            files.append(("cluster.fw", text, "cluster"))
    nodes = cluster.nodes(paths)
    for n in nodes:
        text = reader.read(paths.host_fw(n))
        if text:
            files.append((f"nodes/{n}/host.fw", text, "host"))
        if text is not None and antispoof.nftables_on(fwfile.parse(text)):
            nft_nodes.append(n)
    guests = cluster.vmlist(paths)
    for f in _fw_files(paths, paths.firewall_dir):
        if f.name != "cluster.fw" and names.is_vmid(f.stem):
            name = f"firewall/{f.name}"
            text = reader.read(f)
            if text is not None:
                files.append((name, text, "guest"))
            # proxmox-firewall reads the config of a guest with a .fw file on its node
            g = guests.get(names.vmid(f.stem))
            if g is not None:
                path = paths.guest_config(g.node, g.type, g.vmid)
                conf = reader.read(path)
                if conf is None:
                    continue
                guest_configs.append(fwlint.GuestConfig(name, g.vmid, g.node, g.type, reader.name(path), conf))
                try:                    # what the hookscript's pre-start reads first
                    guestconf.parse(conf, g.vmid, g.type, path)
                except MicrosegError as e:
                    reader.findings.append(fwlint.Finding(
                        name, 0, "error", f"the pve-microseg hookscript, where attached, refuses to start "
                                          f"guest {g.vmid}: {e}"))
    for f in _fw_files(paths, paths.vnet_fw_dir):
        text = reader.read(f)
        if text is not None:
            files.append((f"sdn/firewall/{f.name}", text, "vnet"))
    return files, nft_nodes, nodes, guest_configs, reader.findings


def check(paths):
    files, nft_nodes, nodes, guest_configs, unread = collect(paths)
    here, installed = node.local_node(paths), proxmox_firewall(paths)
    findings = fwlint.ordered(unread + fwlint.lint_cluster(files, nft_nodes, nodes, here, installed,
                                                           guest_configs))
    bad = any(f.severity in ("error", "warning") for f in findings)
    data = {"files": [n for n, _, _ in files], "node": here, "proxmox-firewall": installed,
            "findings": [{"file": f.file, "line": f.line, "severity": f.severity, "message": f.message}
                         for f in findings]}
    return Result(data, ExitCode.FINDINGS if bad else ExitCode.OK)
