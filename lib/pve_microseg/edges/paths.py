"""Every file system path pve-microseg reads or writes, from one place.

Each path can be pointed at a test tree with an environment variable, so the
CLI, the ifupdown hooks and the tests all see the same layout.
"""

import os
from dataclasses import dataclass, fields
from pathlib import Path

_ENV = {
    "pve_dir": ("PVE_MICROSEG_PVE_DIR", "/etc/pve"),
    "state_dir": ("PVE_MICROSEG_STATE_DIR", "/var/lib/pve-microseg"),
    "run_dir": ("PVE_MICROSEG_RUN_DIR", "/run/pve-microseg"),
    "network_dir": ("PVE_MICROSEG_NETWORK_DIR", "/etc/network"),
    "sys_class_net": ("PVE_MICROSEG_SYS_CLASS_NET", "/sys/class/net"),
    "share_dir": ("PVE_MICROSEG_SHARE_DIR", "/usr/share/pve-microseg"),
    "pvesh": ("PVE_MICROSEG_PVESH", "/usr/bin/pvesh"),
    "ssh": ("PVE_MICROSEG_SSH", "/usr/bin/ssh"),
    "dpkg_status": ("PVE_MICROSEG_DPKG_STATUS", "/var/lib/dpkg/status"),
    "dot": ("PVE_MICROSEG_DOT", "/usr/bin/dot"),
    "textfile_dir": ("PVE_MICROSEG_TEXTFILE_DIR", "/var/lib/prometheus/node-exporter"),
}


@dataclass(frozen=True)
class Paths:
    pve_dir: Path
    state_dir: Path
    run_dir: Path
    network_dir: Path
    sys_class_net: Path
    share_dir: Path
    pvesh: Path
    ssh: Path
    dpkg_status: Path           # dpkg's database of installed packages (read only)
    dot: Path                   # graphviz's dot, for `graph` pictures (package graphviz)
    textfile_dir: Path          # node_exporter's textfile collector (package prometheus-node-exporter)

    @classmethod
    def from_env(cls, environ=None):
        environ = os.environ if environ is None else environ
        return cls(**{f.name: Path(environ.get(_ENV[f.name][0]) or _ENV[f.name][1])
                      for f in fields(cls)})

    # cluster-wide files on pmxcfs
    @property
    def config(self):
        return self.pve_dir / "microseg.yaml"

    @property
    def legacy_config(self):
        return self.pve_dir / "L2-microsegmentation.conf"

    @property
    def sdn_running_config(self):
        return self.pve_dir / "sdn" / ".running-config"

    @property
    def sdn_subnets(self):
        return self.pve_dir / "sdn" / "subnets.cfg"

    @property
    def sdn_vnets(self):
        return self.pve_dir / "sdn" / "vnets.cfg"

    @property
    def sdn_lock(self):
        """Present while someone holds the global SDN lock (its token): PVE 9."""
        return self.pve_dir / "sdn" / ".lock"

    @property
    def sdn_zones(self):
        return self.pve_dir / "sdn" / "zones.cfg"

    @property
    def hookscript(self):
        """The hookscript as the package installs it."""
        return self.share_dir / "pve-microseg-hookscript"

    @property
    def ipam_state(self):
        return self.pve_dir / "sdn" / "pve-ipam-state.json"

    @property
    def legacy_ipam_state(self):
        return self.pve_dir / "priv" / "ipam.db"

    @property
    def firewall_dir(self):
        return self.pve_dir / "firewall"

    def guest_fw(self, vmid):
        return self.firewall_dir / f"{vmid}.fw"

    @property
    def cluster_fw(self):
        return self.firewall_dir / "cluster.fw"

    def host_fw(self, node):
        return self.nodes_dir / node / "host.fw"

    @property
    def vnet_fw_dir(self):
        return self.pve_dir / "sdn" / "firewall"

    def vnet_fw(self, vnet):
        return self.vnet_fw_dir / f"{vnet}.fw"

    @property
    def lock_dir(self):
        """pmxcfs cluster-wide locks (PVE::Cluster::cfs_lock)."""
        return self.pve_dir / "priv" / "lock"

    @property
    def nodes_dir(self):
        return self.pve_dir / "nodes"

    @property
    def vmlist(self):
        """pmxcfs's list of every guest and its node."""
        return self.pve_dir / ".vmlist"

    @property
    def members(self):
        """pmxcfs's list of the cluster's nodes and their addresses."""
        return self.pve_dir / ".members"

    def guest_config(self, node, guest_type, vmid):
        sub = "qemu-server" if guest_type == "qemu" else "lxc"
        return self.nodes_dir / node / sub / f"{vmid}.conf"

    @property
    def storage_cfg(self):
        return self.pve_dir / "storage.cfg"

    @property
    def local_node_link(self):
        """/etc/pve/local -> nodes/<this node>."""
        return self.pve_dir / "local"

    @property
    def pmxcfs_marker(self):
        """A file pmxcfs always shows while /etc/pve is mounted."""
        return self.pve_dir / ".version"

    # node-local state
    @property
    def cache(self):
        return self.state_dir / "last-good.json"

    @property
    def applied_dir(self):
        """One file per bridge whose rules are loaded (tmpfs: empty after boot)."""
        return self.run_dir / "bridges"

    @property
    def bindings(self):
        """The port bindings loaded into bind-* (tmpfs, like the rules)."""
        return self.run_dir / "bindings.json"

    @property
    def drop_log(self):
        """Present while the loaded table logs its drops (`log: on`; tmpfs, like the rules)."""
        return self.run_dir / "drop-log"

    @property
    def ignored_dir(self):
        """One empty file per bridge found unmanaged (see state.py)."""
        return self.run_dir / "ignored"

    @property
    def held_dir(self):
        """One file per VM whose backup start must hold its tap devices down (see state.py)."""
        return self.run_dir / "held"

    @property
    def stamp_files(self):
        """The files whose change makes the if-up.d hook decide again."""
        return (self.config, self.legacy_config, self.sdn_running_config)

    @property
    def textfile(self):
        """The Prometheus textfile `metrics --textfile` writes by default."""
        return self.textfile_dir / "pve_microseg.prom"

    @property
    def lock(self):
        return self.run_dir / "lock"

    @property
    def ifupdown2_conf(self):
        return self.network_dir / "ifupdown2" / "ifupdown2.conf"
