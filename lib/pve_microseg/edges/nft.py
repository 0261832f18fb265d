"""Apply nftables JSON transactions through libnftables (the edge).

python3-nftables is imported lazily: the ifupdown hooks must stay cheap for
interfaces we do not manage.
"""

from ..model.errors import NftablesError, NftablesUnavailable


class Nft:
    """A libnftables context.  `dry_run` makes the kernel check, not commit."""

    def __init__(self, dry_run=False):
        try:
            import nftables
        except ImportError:
            raise NftablesUnavailable(
                "python3-nftables is not installed (apt install python3-nftables)") from None
        try:
            self._nft = nftables.Nftables()
        except OSError as e:
            raise NftablesUnavailable(f"cannot load libnftables: {e}") from None
        self._nft.set_json_output(True)
        self._nft.set_handle_output(False)
        self._nft.set_dry_run(bool(dry_run))

    def run(self, transaction):
        """Run one transaction (a {"nftables": [...]} dict); atomic."""
        rc, out, err = self._nft.json_cmd(transaction)
        if rc != 0:
            raise NftablesError(_explain(err))
        return out

    def knows_nd_target(self):
        """Whether this libnftables reads `icmpv6 taddr`, a neighbour
        advertisement's target (nftables >= 1.1; Debian 12's 1.0.6 does
        not): a rule using it is checked, never committed, in a scratch
        table.  False when the check cannot run (no CAP_NET_ADMIN)."""
        probe = {"family": "inet", "table": "pve_microseg_probe", "chain": "probe"}
        dry_run = self._nft.get_dry_run()
        self._nft.set_dry_run(True)
        try:
            rc, _, _ = self._nft.json_cmd({"nftables": [
                {"add": {"table": {"family": "inet", "name": probe["table"]}}},
                {"add": {"chain": {"family": "inet", "table": probe["table"], "name": probe["chain"]}}},
                {"add": {"rule": dict(probe, expr=[
                    {"match": {"op": "==", "left": {"payload": {"protocol": "icmpv6", "field": "type"}},
                               "right": "nd-neighbor-advert"}},
                    {"match": {"op": "==", "left": {"payload": {"protocol": "icmpv6", "field": "taddr"}},
                               "right": "fe80::1"}}])}},
            ]})
        finally:
            self._nft.set_dry_run(dry_run)
        return rc == 0

    def list_table(self, family, table):
        """The table as libnftables JSON objects, or None if it does not exist."""
        rc, out, err = self._nft.json_cmd(
            {"nftables": [{"list": {"table": {"family": family, "name": table}}}]})
        if rc != 0:
            if "No such file or directory" in err:
                return None
            raise NftablesError(_explain(err))
        return out["nftables"] if out else []

    def list_meters(self, family, table):
        """The meters of a table as libnftables JSON objects ({"meter": ...}):
        nftables 1.0.6 lists the drop meters only here (1.1 lists them as
        sets of the table too)."""
        rc, out, err = self._nft.json_cmd({"nftables": [{"list": {"meters": None}}]})
        if rc != 0:
            raise NftablesError(_explain(err))
        return [o for o in (out or {}).get("nftables", []) if isinstance(o, dict) and "meter" in o
                and o["meter"].get("family") == family and o["meter"].get("table") == table]

    def set_elements(self, family, table, name):
        """The elements of a set as libnftables JSON, or None if it does not exist."""
        rc, out, err = self._nft.json_cmd(
            {"nftables": [{"list": {"set": {"family": family, "table": table, "name": name}}}]})
        if rc != 0:
            if "No such file or directory" in err:
                return None
            raise NftablesError(_explain(err))
        sets = [o["set"] for o in (out or {}).get("nftables", []) if "set" in o]
        return sets[0].get("elem", []) if sets else None


def _explain(err):
    err = (err or "").strip()
    if "Operation not supported" in err or "No such file or directory" in err and "ibrname" in err:
        err += ("\n(the kernel lacks bridge support in nf_tables: modules nf_tables, "
                "nft_meta_bridge, nf_tables_bridge)")
    if "Operation not permitted" in err:
        err += "\n(changing nftables needs root / CAP_NET_ADMIN)"
    return f"nftables refused the transaction, nothing was changed:\n{err}"
