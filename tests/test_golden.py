"""The generated ruleset of each tests/golden/ scenario equals its reviewed .nft file.

The QEMU tier compares the same files with the kernel's own listing
(tests/dataplane/rulesets.py); `make golden` rewrites them after a
deliberate change, for review in `git diff`.
"""

import pytest

import golden
from pve_microseg.policy import nftsyntax, ruleset


@pytest.mark.parametrize("nd_target", [True, False], ids=["nft-1.1", "nft-1.0.6"])
@pytest.mark.parametrize("scenario", golden.SCENARIOS)
def test_ruleset_equals_the_golden_file(scenario, nd_target, tmp_path):
    assert golden.rendered(scenario, tmp_path, nd_target) == golden.expected(scenario, nd_target), (
        f"the ruleset of tests/golden/{scenario}.yaml changed: review it with 'make golden' and 'git diff'")


def test_the_nft_1_1_rule_is_in_every_golden_file():
    """Each file holds the one rule only nftables >= 1.1 loads, once, in guest-bind."""
    for scenario in golden.SCENARIOS:
        text = golden.expected(scenario)
        assert text.count(ruleset.ND_TARGET_COMMENT) == 1
        assert "iifname . icmpv6 taddr != @bind-ip6" in text
        assert ruleset.ND_TARGET_COMMENT not in golden.expected(scenario, nd_target=False)


def test_every_scenario_named_by_the_issue_is_there():
    assert set(golden.SCENARIOS) == {"vnet-dual-stack", "vrrp-several-macs", "ipv4-only", "plain-bridge",
                                     "port-security", "routed-zones", "drop-log"}


def test_an_unknown_rule_shape_is_refused():
    """A rule the renderer does not know must fail here, not be printed wrongly."""
    t = ruleset.full([])
    t["nftables"].append({"add": {"rule": {"family": "bridge", "table": "pve_microseg", "chain": "forward",
                                           "expr": [{"limit": {"rate": 10, "per": "second"}}]}}})
    with pytest.raises(ValueError, match="unknown statement"):
        nftsyntax.table([t], ruleset.FAMILY, ruleset.TABLE)


def test_later_transactions_change_the_table():
    """An update after a full load, and the removal of the table, as the hooks do them."""
    from pve_microseg.model.bridge import Gateway, ManagedBridge
    a = ManagedBridge("vmbr9", Gateway(macs=("02:00:00:00:02:01",)))
    b = ManagedBridge("vmbr10", Gateway(macs=("02:00:00:00:02:02",)))
    both = nftsyntax.table([ruleset.full([a, b])], ruleset.FAMILY, ruleset.TABLE)
    stepwise = nftsyntax.table([ruleset.full([a]), ruleset.update([a.name, b.name], load=[b])], ruleset.FAMILY, ruleset.TABLE)
    assert stepwise.count("chain pre-vmbr10 {") == 1 and '"vmbr10" : jump pre-vmbr10' in stepwise
    assert "chain fwd-vmbr9" not in nftsyntax.table([ruleset.full([a, b]), ruleset.remove_bridge("vmbr9", [b.name])],
                                                     ruleset.FAMILY, ruleset.TABLE)
    assert nftsyntax.table([ruleset.full([a]), ruleset.delete_table()], ruleset.FAMILY, ruleset.TABLE) is None
    assert both.count("chain ") == stepwise.count("chain ")
