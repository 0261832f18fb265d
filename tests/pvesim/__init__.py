"""A small Proxmox VE simulator for tests: a fake /etc/pve tree and fake qm/pct.

`Cluster(root)` lays out what a node shows (pmxcfs tree with nodes/<node>/
{qemu-server,lxc}, firewall/, priv/lock/, sdn/, storage.cfg, the `local`
link, .vmlist) and an environment in which our code and the fake commands in
tests/pvesim/bin see that tree.  The fake `qm start` / `pct start` call a
guest's hookscript exactly as Proxmox does (exec_hookscript in
proxmox/pve-guest-common src/PVE/GuestHelpers.pm@4a8f6cbf78e1b6992ef77facb4ff2ab3372999e7,
vm_start_nolock in proxmox/qemu-server src/PVE/QemuServer.pm
@e6352be67f70042a7433a3a3c712b36d02f9f7cb): argv
`<script> <vmid> <phase>` without a shell, PVE_MIGRATED_FROM set (empty on a
normal start), the guest config flock held during pre-start and post-start, a non-zero
pre-start aborts the start with `hookscript error for <vmid> on pre-start`.
The fake `vzdump` backs a VM up as Proxmox does as far as a hookscript can
tell: `lock: backup` in the config, a stopped VM started paused through the
same start path, resumed only by a start or resume during the backup, or by
vzdump after a stop-mode backup of a running VM (tests/pvesim/guestcmd.py).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
FIXTURES = HERE.parent / "fixtures"
HOOKSCRIPT = ROOT / "hookscripts" / "pve-microseg-hookscript"


class Cluster:
    def __init__(self, root, node="pve1", nodes=("pve1", "pve2")):
        self.root = Path(root)
        self.node = node
        self.pve = self.root / "etc/pve"
        for n in nodes:
            for sub in ("qemu-server", "lxc"):
                (self.pve / "nodes" / n / sub).mkdir(parents=True, exist_ok=True)
        for d in ("firewall", "priv/lock", "sdn"):
            (self.pve / d).mkdir(parents=True, exist_ok=True)
        (self.pve / "local").symlink_to(f"nodes/{node}")
        (self.pve / ".version").write_text("1\n")
        # the datacenter firewall on, with a management set, as a cluster using guest firewalls has it
        (self.pve / "firewall/cluster.fw").write_text(
            "[OPTIONS]\n\nenable: 1\n\n[IPSET management]\n\n192.0.2.250\n")
        self.snippets = self.root / "var/lib/vz/snippets"
        self.snippets.mkdir(parents=True)
        (self.pve / "storage.cfg").write_text(
            f"dir: local\n\tpath {self.root}/var/lib/vz\n\tcontent iso,vztmpl,backup,snippets\n\n"
            "lvmthin: local-lvm\n\tthinpool data\n\tvgname pve\n\tcontent rootdir,images\n")
        self.sys_class_net = self.root / "sys/class/net"
        self.sys_class_net.mkdir(parents=True)
        self.lock_dir = self.root / "run/lock"
        self.lock_dir.mkdir(parents=True)
        # dpkg's database of this node: proxmox-firewall 1.2.3 (PVE 9) installed
        self.dpkg_status = self.root / "var/lib/dpkg/status"
        self.dpkg_status.parent.mkdir(parents=True)
        shutil.copy(FIXTURES / "dpkg/status", self.dpkg_status)
        self.vmlist = {}
        self.env = dict(os.environ)
        self.env.update({
            "PVE_MICROSEG_PVE_DIR": str(self.pve),
            "PVE_MICROSEG_STATE_DIR": str(self.root / "var/lib/pve-microseg"),
            "PVE_MICROSEG_RUN_DIR": str(self.root / "run/pve-microseg"),
            "PVE_MICROSEG_NETWORK_DIR": str(self.root / "etc/network"),
            "PVE_MICROSEG_SYS_CLASS_NET": str(self.sys_class_net),
            "PVE_MICROSEG_DPKG_STATUS": str(self.dpkg_status),
            "PVE_SIM_LOCK_DIR": str(self.lock_dir),
            "PYTHONPATH": str(ROOT / "lib"),
            "PATH": f"{HERE / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        })
        self._write_vmlist()

    # ---------------------------------------------------------- content

    def _write_vmlist(self):
        ids = {str(v): {"node": n, "type": t, "version": 1} for v, (n, t) in self.vmlist.items()}
        data = {"version": len(ids) + 1}
        if ids:
            data["ids"] = ids
        (self.pve / ".vmlist").write_text(json.dumps(data))

    def guest_path(self, vmid, guest_type="qemu", node=None):
        sub = "qemu-server" if guest_type == "qemu" else "lxc"
        return self.pve / "nodes" / (node or self.node) / sub / f"{vmid}.conf"

    def add_guest(self, vmid, text, guest_type="qemu", node=None, hookscript=True):
        if hookscript and "hookscript:" not in text:
            text = f"hookscript: local:snippets/{HOOKSCRIPT.name}\n" + text
        path = self.guest_path(vmid, guest_type, node)
        path.write_text(text)
        self.vmlist[vmid] = (node or self.node, guest_type)
        self._write_vmlist()
        return path

    def add_vm(self, vmid, nets, ipconfig=(), node=None, **kw):
        """nets: {index: 'virtio=MAC,bridge=..,firewall=1'}; ipconfig: {index: 'ip=..'}"""
        lines = ["boot: order=scsi0", "cores: 1", "memory: 512", f"name: vm{vmid}"]
        lines += [f"net{i}: {v}" for i, v in sorted(nets.items())]
        lines += [f"ipconfig{i}: {v}" for i, v in sorted(dict(ipconfig).items())]
        return self.add_guest(vmid, "\n".join(sorted(lines)) + "\n", "qemu", node, **kw)

    def add_ct(self, vmid, nets, node=None, **kw):
        lines = ["arch: amd64", f"hostname: ct{vmid}", "memory: 512", "ostype: debian"]
        lines += [f"net{i}: {v}" for i, v in sorted(nets.items())]
        return self.add_guest(vmid, "\n".join(sorted(lines)) + "\n", "lxc", node, **kw)

    def proxmox_firewall(self, version):
        """Make this node's proxmox-firewall `version`; None: removed, its
        configuration kept (dpkg state config-files)."""
        text = (FIXTURES / "dpkg/status").read_text()
        stanza = text[text.index("Package: proxmox-firewall\n"):]
        stanza = stanza[:stanza.index("\n\n")]
        new = stanza.replace("Version: 1.2.3\n", f"Version: {version}\n") if version else \
            stanza.replace("Status: install ok installed", "Status: deinstall ok config-files")
        self.dpkg_status.write_text(text.replace(stanza, new))

    def write(self, rel, text):
        path = self.pve / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def fw(self, vmid):
        path = self.pve / "firewall" / f"{vmid}.fw"
        return path.read_text() if path.exists() else None

    def install_hookscript(self):
        dst = self.snippets / HOOKSCRIPT.name
        shutil.copy(HOOKSCRIPT, dst)
        os.chmod(dst, 0o755)
        return dst

    def add_port(self, port, bridge):
        """A guest port plugged into a bridge, as sysfs shows it."""
        brport = self.sys_class_net / port / "brport"
        brport.mkdir(parents=True)
        (brport / "bridge").symlink_to(f"../../{bridge}")
        (brport / "isolated").write_text("0\n")
        (self.sys_class_net / bridge / "bridge").mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------- commands

    def run(self, *argv, env=None, **kw):
        return subprocess.run([sys.executable, str(HERE / "bin" / argv[0]), *map(str, argv[1:])],
                              env=dict(self.env, **(env or {})), capture_output=True, text=True, **kw)

    def cli(self, *argv):
        """pve-microseg <argv> in this process, on this tree: (exit status, stdout)."""
        import io
        from pve_microseg.entry import cli
        out = io.StringIO()
        return cli.main(list(argv), environ=self.env, out=out), out.getvalue()

    def qm(self, *args, **kw):
        return self.run("qm", *args, **kw)

    def pct(self, *args, **kw):
        return self.run("pct", *args, **kw)

    def vzdump(self, *args, **kw):
        return self.run("vzdump", *args, **kw)

    def running(self, vmid):
        """Whether the guest's QEMU/container runs (a VM started paused counts, as check_running says)."""
        return (self.root / "run/sim" / f"{vmid}.running").exists()

    def state(self, vmid):
        """None, 'running' or 'prelaunch' (a VM started paused, its CPUs stopped)."""
        path = self.root / "run/sim" / f"{vmid}.running"
        return path.read_text().strip() if path.exists() else None

    def tap_up(self, vmid, index=0):
        """Whether tap<vmid>i<index> exists and is up (None: it does not exist)."""
        flags = self.sys_class_net / f"tap{vmid}i{index}" / "flags"
        return bool(int(flags.read_text(), 16) & 1) if flags.exists() else None

    def pvesh(self, *args, **kw):
        """Run the fake pvesh (tests/pvesim/pvesh.py) against this tree."""
        return self.run("pvesh", *args, **kw)

    def pvesh_proxied(self):
        """[(node, verb, path)] of the calls pvesh would have proxied to another node."""
        log = self.root / "run/sim/pvesh-proxied.log"
        if not log.exists():
            return []
        return [tuple(line.split("\t")) for line in log.read_text().splitlines()]
