"""`pve-microseg status`: what is protected and what is not, cluster-wide.

Read in bulk from what pmxcfs already holds on this node (microseg.yaml,
SDN config, .vmlist, every guest config and firewall file, the IPAM), so
thousands of guests cost file reads, not pvesh calls.  The L2 rules are
node-local: each other node answers `pve-microseg status --local` over ssh
(edges/ssh.py), and says which proxmox-firewall it has installed (dpkg's
status file).  What counts as a problem is policy/protection.py's.
"""

from ..edges import node, pveconf, ssh, state
from ..edges.cluster import guest_configs, guests, members, nodes as cluster_nodes
from ..model.errors import ConfigError, ExitCode, MicrosegError
from ..parse import nodeanswer
from ..policy import bindings, drops, protection, ruleset
from .result import Result


def loaded_table(nft_factory):
    """(the bridges whose chains are in this node's table, whether its
    guest-bind chain binds a neighbour advertisement's target: nftables >= 1.1,
    the drop counts {(class, port): (packets, bytes)})."""
    nft = nft_factory()
    objs = nft.list_table(ruleset.FAMILY, ruleset.TABLE) or []
    prefix = ruleset.fwd_chain("")
    bridges = {o["chain"]["name"][len(prefix):] for o in objs
               if "chain" in o and o["chain"]["name"].startswith(prefix)}
    nd = any("rule" in o and o["rule"].get("chain") == ruleset.GUEST_BIND_CHAIN
             and o["rule"].get("comment") == ruleset.ND_TARGET_COMMENT for o in objs)
    # nftables 1.1 lists the drop meters as sets of the table, 1.0.6 only as meters
    meters = nft.list_meters(ruleset.FAMILY, ruleset.TABLE) if objs else []
    return bridges, nd, drops.counts(objs + meters)


def bound_ports(nft_factory):
    """The ports with a MAC binding in this node's bind-mac set, or whose MAC
    goes unchecked (bind-any-mac)."""
    nft = nft_factory()
    elems = [e for name in (ruleset.BIND_MAC, ruleset.ANY_MAC)
             for e in nft.set_elements(ruleset.FAMILY, ruleset.TABLE, name) or []]
    return {ruleset.element_port(e) for e in elems}


def _port_bridges(paths, cfg, present, bridges):
    """{port: the managed bridge (or its <bridge>v<tag>) it is on now}."""
    out = {}
    for b in cfg.bridges:
        if not bridges[b.name]["present"]:
            continue
        for name in [b.name, *protection.vlan_bridges(b.name, present, cfg.names)]:
            out.update({port: name for port in node.bridge_ports(paths, name)})
    return out


def proxmox_firewall(paths):
    """This node's proxmox-firewall: its installed version, 'not installed',
    or 'unknown: <why>' when dpkg's status file cannot be read."""
    try:
        return node.installed_version(paths, "proxmox-firewall") or protection.NOT_INSTALLED
    except ConfigError as e:
        return f"{protection.UNKNOWN}: {e}"


def local(paths, nft_factory=None, cfg=None):
    """This node's L2 state: which managed bridges exist here and carry rules,
    and which guest ports on them have no binding (they send nothing); and
    its proxmox-firewall.  Without nft_factory (tests, tools without a
    kernel): what the hooks recorded."""
    return local_detail(paths, nft_factory, cfg)[0]


def local_detail(paths, nft_factory=None, cfg=None):
    """(local()'s Result, what else it saw for the Prometheus textfile:
    {"config": the Config, "ports": [(the bridge a port is on now, its
    ManagedBridge, [guest ports])] of every managed bridge present here
    (and its <bridge>v<tag>), "bound": the ports with a binding loaded}).
    The detail is None when nftables could not be read."""
    cfg = cfg or pveconf.config(paths)
    here = node.local_node(paths)
    pfw = proxmox_firewall(paths)
    if nft_factory is not None:
        try:
            (loaded, nd, counted), bound, how = loaded_table(nft_factory), bound_ports(nft_factory), "nftables"
        except MicrosegError as e:
            data = {"node": here, "error": f"cannot read nftables: {e}", "proxmox-firewall": pfw}
            return Result(data, ExitCode.UNPROTECTED), None
    else:
        loaded, how = set(state.applied(paths)), f"markers in {paths.applied_dir}"
        bound = {b["port"] for b in state.loaded_bindings(paths) or []}
    present = node.bridges_present(paths)
    bridges = protection.local_bridges(cfg, present, loaded)
    on = [(name, b, [p for p in node.bridge_ports(paths, name) if bindings.port_owner(p) is not None])
          for b in cfg.bridges if bridges[b.name]["present"]
          for name in [b.name, *protection.vlan_bridges(b.name, present, cfg.names)]]
    ports = {name: names for name, b, names in on if b.port_security != "off" and bridges[b.name]["rules"]}
    unbound = protection.unbound_ports(ports, bound)
    data = {"node": here, "source": how, "bridges": bridges, "unbound-ports": unbound, "proxmox-firewall": pfw}
    if nft_factory is not None and loaded:
        data["nd-target-bound"] = nd
    if nft_factory is not None:
        data["drops"] = drops.rows(counted, _port_bridges(paths, cfg, present, bridges))
    bad = protection.local_unprotected(bridges) or unbound
    return Result(data, ExitCode.UNPROTECTED if bad else ExitCode.OK), {"config": cfg, "ports": on, "bound": bound}


def cluster(paths, nft_factory=None, timeout=5.0, with_drops=False):
    """Every managed bridge on every node, every guest on a managed bridge;
    with_drops: what each node's rules dropped, per guest port and class,
    top offenders first (and the nodes that could not say)."""
    sdn = pveconf.sdn(paths)
    cfg = pveconf.config(paths, sdn)
    here = node.local_node(paths)
    ips = members(paths)
    nodes = sorted(ips) or cluster_nodes(paths) or [here]
    asked = ssh.ask_nodes(str(paths.ssh), [n for n in nodes if n != here], timeout, ips, paths.nodes_dir)
    # another node's answer is believed only in exactly the expected shape (fail closed)
    answers = {n: nodeanswer.parse(a, cfg.names) for n, a in asked.items()}
    answers[here] = local(paths, nft_factory, cfg).data

    bridge_rows = [protection.bridge_row(b, nodes, answers,
                                         pveconf.firewall_or_empty(paths.vnet_fw(b.name)) if b.vnet else None)
                   for b in cfg.bridges]
    ipam_state = pveconf.ipam(paths)
    guest_rows, read = [], list(guest_configs(paths, guests(paths)))
    # the sets are planned as pre-start plans them: with every other guest's claims
    claims = bindings.claims([gc for _, gc, _ in read if gc is not None], cfg, ipam_state,
                             complete=all(error is None for _, _, error in read))
    for guest, gc, error in read:
        if error is not None:
            guest_rows.append(protection.unreadable_guest_row(guest, error))
            continue
        row = protection.guest_row(guest, gc, cfg, pveconf.firewall_or_empty(paths.guest_fw(guest.vmid)),
                                   ipam_state, paths.hookscript.name, claims)
        if row is not None:
            guest_rows.append(row)
    host_fws = {n: pveconf.firewall_or_empty(paths.host_fw(n)) for n in nodes}
    problems = protection.node_problems(answers, cfg, pveconf.firewall_or_empty(paths.cluster_fw), host_fws)
    unmanaged = sorted(set(sdn.vnets) - cfg.names)
    data = protection.report(here, nodes, answers, bridge_rows, unmanaged, guest_rows, problems,
                             protection.firewall_backends(nodes, answers, host_fws))
    data["drop-log"] = cfg.log          # `log: on` in microseg.yaml (each node logs from its next load)
    data["nd-target-bound"] = {n: answers[n]["nd-target-bound"] for n in nodes
                               if isinstance(answers.get(n, {}).get("nd-target-bound"), bool)}
    if with_drops:
        data["drops"] = sorted(({"node": n, **row} for n in nodes for row in answers.get(n, {}).get("drops", [])),
                               key=drops.sort_key)
        data["drops-unknown"] = sorted(n for n in nodes if "drops" not in answers.get(n, {}))
    data["unbound-ports"] = {n: answers[n]["unbound-ports"] for n in nodes if answers.get(n, {}).get("unbound-ports")}
    return Result(data, ExitCode.UNPROTECTED if data["problems"] else ExitCode.OK)
