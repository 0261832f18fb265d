"""The guest hookscript: `<script> <vmid> <phase>`, as qm/pct call it.

pre-start   write the guest's `ipfilter-net<N>` sets, `ipfilter: 1` and, if
            needed, `enable: 1` into /etc/pve/firewall/<vmid>.fw, under the
            cluster lock `firewall-vm-<vmid>`, atomically.  When that cannot
            be done completely, `hookscript.on-failure` decides: fail-closed
            (default) exits non-zero, so Proxmox does not start the guest;
            fail-open starts it and says so loudly.  A .fw file is never
            created or changed for a guest whose config proxmox-firewall
            cannot read while a node concerned runs the nftables backend:
            that would stop the firewall updates of the whole node
            (antispoof.nft_guard); that too is a failure.  On vzdump's
            paused start of a VM (`lock: backup`) a fail-closed failure does
            not fail the backup: the start goes on and post-start holds the
            VM's tap devices down (policy/onfailure.py says why).
post-start  hold the tap devices down after such a backup start; isolate
            the guest's ports on plain bridges marked `isolate-ports: true`
            (what SDN VNets offer natively).
all phases  then run the operator's own hookscript, if one is chained
            (`chain:` in microseg.yaml), with the same arguments.

Only pre-start can block a start; everything printed goes to the task log.
"""

import os
import sys

from ..edges import cluster, files, node, pmxcfs, pveconf, state
from ..model.errors import FirewallFileError, GuestConfigError, GuestRefused, MicrosegError
from ..parse import guestconf, names
from ..policy import antispoof, bindings, fwstrict, onfailure

PHASES = ("pre-start", "post-start", "pre-stop", "post-stop")
PREFIX = "pve-microseg: "


class Hook:
    def __init__(self, vmid, phase, environ, paths, out, err, lock_timeout=pmxcfs.LOCK_TIMEOUT,
                 owner_node=None):
        self.vmid, self.phase, self.environ, self.paths = vmid, phase, environ, paths
        self.out, self.err = out, err
        self.lock_timeout = lock_timeout
        self.owner_node = owner_node        # where the config is, when not this node (guest sync)
        self._guest = None

    def say(self, msg):
        print(PREFIX + msg, file=self.out, flush=True)

    def warn(self, msg):
        print(PREFIX + "WARNING: " + msg, file=self.err, flush=True)

    # ---------------------------------------------------------- inputs

    def node(self):
        return node.local_node(self.paths, self.environ)

    def migrated_from(self):
        """PVE_MIGRATED_FROM (the source node of a live migration), or "".
        It names a directory under /etc/pve/nodes: a node name, nothing else."""
        source = self.environ.get("PVE_MIGRATED_FROM") or ""
        if source and not names.is_node(source):
            raise GuestConfigError(self.paths.nodes_dir, None, "PVE_MIGRATED_FROM",
                                   f"{source!r} is not a node name")
        return source

    def guest(self):
        """The guest's config; on a live migration it is still under the source node."""
        if self._guest is not None:
            return self._guest
        source = self.migrated_from()
        owner = source or self.owner_node or self.node()
        gc = pveconf.find_guest_config(self.paths, self.vmid, owner)
        if gc is not None:
            self._guest = gc
            return gc
        where = f"node {owner}" + (" (migration source)" if source else "")
        raise GuestConfigError(self.paths.nodes_dir / owner, None, None,
                               f"no config for guest {self.vmid} on {where} "
                               "(neither qemu-server/ nor lxc/)")

    def config(self):
        """The configuration; a microseg.yaml that had to be parsed is kept
        parsed for the next start (a side effect that may fail silently:
        it only costs the next start the YAML parse)."""
        text, doc, parsed = pveconf.document(self.paths)
        if parsed:
            try:
                state.save_document(self.paths, text, doc)
            except OSError:
                pass
        return pveconf.config(self.paths, doc=doc)

    def claims(self, guest, cfg, ipam):
        """(IpamState, bindings.Claims): what the other guests of the cluster
        claim of this guest's addresses, from the configs that can bear on
        them (bindings.ClaimQuery: every config that names one of its
        bridges and its address, when an address comes from its own config;
        else only those of the guests microseg.yaml or the IPAM gives one of
        its addresses to).  A config that cannot be read makes the claims
        incomplete: no address from the guest's own config is then used."""
        query = bindings.claim_query(guest, cfg, ipam)
        others, unreadable = [], []
        if query.scan or query.listed:
            try:
                everyone = cluster.guests(self.paths)
            except MicrosegError as e:
                everyone, unreadable = [], [f"the guest list ({e})"]
            dirs = {}           # (node, type) -> directory: a Path per guest costs more than its read
            for g in everyone:
                if g.vmid == guest.vmid or not (query.scan or g.vmid in query.listed):
                    continue
                where = dirs.get((g.node, g.type))
                if where is None:
                    where = dirs[(g.node, g.type)] = str(self.paths.guest_config(g.node, g.type, g.vmid).parent)
                path = f"{where}/{g.vmid}.conf"
                try:
                    text = files.read_text(path, error=GuestConfigError)
                    if text is None:
                        raise GuestConfigError(path, None, None, "cannot read: No such file or directory")
                    if query.wanted(g.vmid, text):
                        others.append(guestconf.parse(text, g.vmid, g.type, path))
                except Exception as e:      # noqa: BLE001 -- another guest's config never stops this start
                    unreadable.append(f"guest {g.vmid} ({e})")
        if unreadable and query.scan:
            self.warn(f"guest {self.vmid}: cannot read {'; '.join(unreadable[:3])}"
                      + (f" and {len(unreadable) - 3} more" if len(unreadable) > 3 else "")
                      + ": an address from this guest's own config may be another guest's, so none is used")
        if others:
            ipam = pveconf.ipam(self.paths, {guest.vmid, *(o.vmid for o in others)})
        return ipam, bindings.claims([guest, *others], cfg, ipam, complete=not unreadable,
                                     bridges=query.bridges)

    def cluster_firewall_on(self):
        return antispoof.firewall_on(pveconf.firewall(self.paths.cluster_fw))

    def nftables_nodes(self):
        """The nodes whose proxmox-firewall reads this guest's config, now or
        once it runs here, and that run the nftables backend: this node, and
        on a live migration the source, where the config still is (for `guest
        sync`: the guest's node)."""
        source = self.migrated_from()
        nodes = [self.owner_node] if self.owner_node else [self.node()] + ([source] if source else [])
        return [n for n in dict.fromkeys(nodes)
                if antispoof.nftables_on(pveconf.firewall(self.paths.host_fw(n)))]

    # ---------------------------------------------------------- phases

    def pre_start(self, cfg):
        guest = self.guest()
        ipam, claims = self.claims(guest, cfg, pveconf.ipam(self.paths, self.vmid))
        guest_plan = antispoof.plan(guest, cfg, ipam, cluster_firewall_on=self.cluster_firewall_on(),
                                    claims=claims)
        for w in guest_plan.warnings:
            self.warn(w)
        target = self.paths.guest_fw(self.vmid)
        if guest_plan.unreadable is not None:           # host.fw is read only then
            guard = antispoof.nft_guard(guest_plan, self.nftables_nodes(), guest.path, str(target),
                                        target.exists())
            if guard.action is antispoof.Nft.REFUSE:
                raise FirewallFileError(guard.message)
            self.warn(guard.message)
            if guard.action is antispoof.Nft.LEAVE:
                return
        if guest_plan.refusals:
            raise GuestRefused("; ".join(guest_plan.refusals) +
                               " (hookscript.strict is on in microseg.yaml)")
        if not guest_plan.nics and not target.exists():
            self.say(f"guest {self.vmid}: no NIC on a managed bridge, nothing to do")
            return
        with pmxcfs.cfs_lock(self.paths, f"firewall-vm-{self.vmid}", timeout=self.lock_timeout,
                             stderr=self.err):
            old = pmxcfs.read_file(target)
            before = fwstrict.check(old, "guest")
            errors = fwstrict.errors(before)
            if errors:
                raise FirewallFileError(
                    f"{target}: {errors[0]} -- proxmox-firewall rejects this file; fix it first "
                    "(pve-microseg does not rewrite a file it cannot keep valid)")
            for p in before:
                self.warn(f"{target}: {p}; left as it is")
            try:
                new, changes = antispoof.edit_fw(old, guest_plan, cfg.hookscript, cfg.guests.get(self.vmid))
            except FirewallFileError as e:
                raise FirewallFileError(f"{target}: {e}") from None
            worse = [p for p in fwstrict.check(new, "guest") if p.message not in {b.message for b in before}]
            if worse:               # a bug of ours: never publish it
                raise FirewallFileError(
                    f"{target}: the file pve-microseg would write fails the strict check ({worse[0]}); "
                    "left unchanged -- please report this with a copy of the file")
            if new != old:
                pmxcfs.write_file(target, new)
        kept = {c.nic for c in changes if c.kind is antispoof.Edit.SET_KEPT}
        for p in guest_plan.nics:
            if p.nic.index not in kept:
                self.say(f"guest {self.vmid} {p.nic.key} ({p.why}): {', '.join(p.addresses)}"
                         + (f" [from {', '.join(p.sources)}]" if p.sources else ""))
        self.say(f"{target}: " + ("; ".join(map(str, changes)) if changes and new != old else "unchanged")
                 + ("; Proxmox's firewall picks the change up within 5-10 s" if new != old else ""))

    def post_start(self, cfg):
        isolate = {b.name for b in cfg.bridges if b.isolate_ports}
        if not isolate:
            return
        guest = self.guest()
        for nic in guest.nics:
            if nic.bridge not in isolate:
                continue
            bridges = {nic.bridge} | ({f"{nic.bridge}v{nic.tag}"} if nic.tag else set())
            ports = [guest.port(nic), guest.port(nic, fwbr=True)]
            done = [p for p in ports if self._isolate(p, bridges)]
            if done:
                self.say(f"guest {self.vmid} {nic.key}: port {done[0]} on {nic.bridge} isolated")
            else:
                self.warn(f"guest {self.vmid} {nic.key}: none of {', '.join(ports)} is a port of "
                          f"{nic.bridge}; not isolated")

    def hold_ports(self):
        """After a backup start whose pre-start could not complete the sets:
        hold the VM's tap devices down, so that a guest resumed from this
        QEMU has no network (policy/onfailure.py)."""
        try:
            reason = state.take_hold(self.paths, self.vmid)
        except OSError as e:
            self.warn(f"guest {self.vmid}: cannot read its hold ({e}); tap devices NOT held down")
            return
        if reason is None:
            return
        try:
            guest = self.guest()
        except MicrosegError as e:
            self.warn(f"guest {self.vmid}: tap devices NOT held down: {e}")
            return
        for nic in guest.nics:
            port = guest.port(nic)
            try:
                node.set_link_down(self.paths, port)
            except FileNotFoundError:
                self.warn(f"guest {self.vmid} {nic.key}: {port} does not exist, nothing to hold down")
                continue
            except (OSError, ValueError) as e:
                self.warn(f"guest {self.vmid} {nic.key}: cannot hold {port} down: {e}")
                continue
            self.warn(f"guest {self.vmid} {nic.key}: {port} held down for as long as this QEMU runs: this "
                      f"backup start could not complete the anti-spoofing sets ({reason}); once that is "
                      "fixed, stop and start the guest")

    def _guest_or_none(self):
        try:
            return self.guest()
        except Exception:           # noqa: BLE001 -- only to tell a backup start; unreadable: not one
            return None

    def _isolate(self, port, bridges):
        if node.bridge_of_port(self.paths, port) not in bridges:
            return False
        try:
            node.isolate_port(self.paths, port)
        except OSError as e:
            self.warn(f"{port}: cannot set isolated: {e.strerror}")
            return False
        return True

    def _hold(self, error):
        """Leave the hold for post-start; False (so the start is refused) if it cannot."""
        try:
            state.hold(self.paths, self.vmid, str(error))
            return True
        except OSError as e:
            self.warn(f"guest {self.vmid}: cannot record that its tap devices must be held down ({e}); "
                      "the backup start is refused instead")
            return False

    # ---------------------------------------------------------- chaining

    def chained(self, cfg):
        settings = cfg.guests.get(self.vmid) if cfg else None
        return (settings.chain if settings and settings.chain else None) or (
            cfg.hookscript.chain if cfg else None)

    def run_chained(self, volume):
        from ..edges import cluster     # storage.cfg: only when chaining
        path = cluster.snippet_path(self.paths, volume)
        if os.path.realpath(path) == os.path.realpath(sys.argv[0] or ""):
            self.warn(f"chain: {volume} is this hookscript itself; not run twice")
            return 0
        if not os.access(path, os.X_OK):
            self.warn(f"chained hookscript {volume} ({path}) is missing or not executable")
            return 1
        import subprocess           # only when chaining: it costs ~10 ms of start-up
        r = subprocess.run([str(path), str(self.vmid), self.phase], env=dict(self.environ))
        if r.returncode:
            self.warn(f"chained hookscript {volume} exited with {r.returncode} on {self.phase}")
        return r.returncode

    # ---------------------------------------------------------- main

    def run(self):
        if self.phase == "pre-start":
            try:
                state.release_hold(self.paths, self.vmid)       # a new start decides afresh
            except OSError:
                pass            # a stale hold holds the ports of the next backup start: the safe side
        elif self.phase == "post-start":
            self.hold_ports()
        cfg = None
        try:
            cfg = self.config()
            for w in cfg.warnings:
                self.warn(w)
            if self.phase == "pre-start":
                self.pre_start(cfg)
            elif self.phase == "post-start":
                self.post_start(cfg)
        except Exception as e:          # noqa: BLE001 -- every failure goes through the policy
            if not isinstance(e, MicrosegError):
                e = MicrosegError(f"internal error {e.__class__.__name__}: {e} (please report it)")
            if self.phase != "pre-start":
                self.warn(f"guest {self.vmid} {self.phase}: {e}")
            else:
                action = onfailure.on_failure(cfg.hookscript.on_failure if cfg is not None else None,
                                              onfailure.backup_start(self._guest_or_none()))
                why = ("" if cfg is not None else
                       " (microseg.yaml could not be read, so the default fail-closed applies)")
                if action is onfailure.Failure.START:
                    self.warn(f"guest {self.vmid} starts WITHOUT complete anti-spoofing sets: {e} "
                              "(hookscript.on-failure: fail-open)")
                elif action is onfailure.Failure.HOLD and self._hold(e):
                    self.warn(f"guest {self.vmid}: backup start (lock: backup: vzdump starts the VM paused, "
                              f"its guest does not run) WITHOUT complete anti-spoofing sets: {e}{why}; the "
                              "backup goes on, and the VM's tap devices are held down for as long as this "
                              "QEMU runs, so a guest resumed from it (a start or resume during the backup, or "
                              "vzdump resuming it after a stop-mode backup) has no network "
                              "(hookscript.on-failure: fail-closed)")
                else:
                    print(f"{PREFIX}guest {self.vmid} not started: {e}{why}", file=self.err, flush=True)
                    return 1
        if cfg is None:
            self.warn(f"a chained hookscript, if microseg.yaml names one, was NOT run on {self.phase}: "
                      "microseg.yaml could not be read")
        volume = self.chained(cfg)
        if volume:
            try:
                return self.run_chained(volume)
            except (MicrosegError, OSError) as e:
                self.warn(f"chain: {e}")
                return 1 if self.phase == "pre-start" else 0
        return 0
