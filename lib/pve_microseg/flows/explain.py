"""`pve-microseg explain FROM TO`: which of our rules a frame from one
endpoint to the other meets, in order, and the verdict.  Changes nothing.

Reads the configuration as `apply` does (microseg.yaml, SDN, guest configs,
the IPAM), builds the frame and the bridges it crosses
(policy/explainpath.py), and evaluates it (policy/explain.py) on each
node's desired ruleset -- the transaction `apply` would load there -- or,
with `loaded`, on this node's table as the kernel holds it (the hops on
other nodes keep their desired ruleset, and say so).
"""

from ..edges import cluster, node, pveconf
from ..model.errors import ExitCode
from ..policy import explain as X, explainpath, ruleset
from . import reconcile
from .result import Result


def explain(paths, source, target, proto="icmp", family=None, port=None, loaded=False, nft_factory=None,
            environ=None):
    here = node.local_node(paths, environ)
    cfg = pveconf.config(paths)
    configs = [(g, gc) for g, gc, _ in cluster.guest_configs(paths, cluster.guests(paths)) if gc is not None]
    sources = {}

    def node_source(name):
        if name not in sources:
            sources[name] = reconcile.read_live(paths, here=name)
        return sources[name]

    def bindings_of(name, port_name):
        return next((b for b in node_source(name).bindings or () if b.port == port_name), None)

    a = explainpath.endpoint(source, cfg, configs, bindings_of)
    b = explainpath.endpoint(target, cfg, configs, bindings_of)
    p = explainpath.plan(a, b, proto, family, port)
    nd = reconcile.nd_target(nft_factory)
    tables, origin = {}, {}
    for hop in p.hops:
        if hop.node in tables:
            continue
        if loaded and hop.node == here:
            listing = nft_factory().list_table(ruleset.FAMILY, ruleset.TABLE)
            tables[hop.node] = X.from_listing(listing, ruleset.FAMILY, ruleset.TABLE)
            origin[hop.node] = "loaded" if listing is not None else "loaded (no table: nothing of ours)"
        else:
            s = node_source(hop.node)
            tables[hop.node] = X.from_transactions([ruleset.full(s.bridges, s.bindings or (), nd, s.log)],
                                                   ruleset.FAMILY, ruleset.TABLE)
            origin[hop.node] = "desired" + (" (not loaded here: another node)" if loaded else "")
    verdict, traces = X.path_verdict(tables, p.frame, p.hops)
    decided = None
    for hop, hooks in traces:
        for t in hooks:
            if t.verdict == X.DROP:
                decided = t.decided_by
    data = {
        "from": p.source.to_json(), "to": p.target.to_json(), "proto": proto, "frame": p.frame.to_json(),
        "frame-summary": p.frame.summary(), "node": here,
        "hops": [{"node": hop.node, "bridge": hop.bridge, "in": hop.iif, "out": hop.oif,
                  "ruleset": origin[hop.node], "hooks": [t.to_json() for t in hooks]}
                 for hop, hooks in traces],
        "not-crossed": [{"node": h.node, "bridge": h.bridge, "in": h.iif, "out": h.oif}
                        for h in p.hops[len(traces):]],
        "verdict": verdict,
        "decided-by": None if decided is None else decided.to_json(),
        "not-evaluated": p.notes,
        "cannot-see": p.unseen,
    }
    if not p.hops:
        data["note"] = ("the node itself sends this frame (it is the gateway): it takes the bridge's output "
                        "path, where pve-microseg has no rule")
    return Result(data, ExitCode.OK)
