"""yamledit: microseg.yaml edited in place, comments and layout kept."""

import pytest

from pve_microseg.parse import microseg_yaml
from pve_microseg.policy import yamledit
from pve_microseg.model.errors import ConfigError

BASE = """\
# cluster-wide pve-microseg configuration
bridges:
  # the DMZ
  web:
    gateway-mac: 02:00:00:00:01:01   # VRRP
    gateway-ip: [10.100.0.1]

  db:
    gateway-mac: 02:00:00:00:02:01
# guests below
guests:
  101:
    net0: [10.100.0.5]
"""


def parses(text):
    return microseg_yaml.parse_document(text, "microseg.yaml")


def test_add_a_bridge_after_its_siblings():
    new = yamledit.set_entry(BASE, ("bridges", "app"), {"gateway-mac": "02:00:00:00:03:01"})
    assert new == BASE.replace("    gateway-mac: 02:00:00:00:02:01\n",
                               "    gateway-mac: 02:00:00:00:02:01\n  app:\n    gateway-mac: 02:00:00:00:03:01\n")
    assert [b.name for b in parses(new).bridges] == ["web", "db", "app"]


def test_replace_and_remove_keep_every_other_line():
    new = yamledit.set_entry(BASE, ("bridges", "db"), {"gateway-mac": "02:00:00:00:02:02",
                                                      "gateway-ip": ["10.200.0.1"]})
    assert "  db:\n    gateway-mac: 02:00:00:00:02:02\n    gateway-ip: [10.200.0.1]\n# guests below\n" in new
    assert new.startswith(BASE.split("  db:")[0])
    gone = yamledit.remove_entry(BASE, ("bridges", "web"))
    assert gone == BASE.replace("  web:\n    gateway-mac: 02:00:00:00:01:01   # VRRP\n"
                                "    gateway-ip: [10.100.0.1]\n", "")
    assert [b.name for b in parses(gone).bridges] == ["db"]
    assert yamledit.remove_entry(BASE, ("bridges", "nope")) == BASE


def test_merge_keeps_the_entries_other_fields():
    new = yamledit.set_entry(BASE, ("guests", "101"), {"chain": "local:snippets/site.sh"}, merge=True)
    g = parses(new).guests[101]
    assert g.chain == "local:snippets/site.sh" and g.addresses == {0: ("10.100.0.5",)}


def test_new_section_and_empty_file():
    new = yamledit.set_entry(BASE, ("hookscript", "x"), {"a": 1})
    assert new.startswith(BASE) and new.endswith("\nhookscript:\n  x:\n    a: 1\n")
    assert yamledit.set_entry("", ("bridges", "web"), {"gateway-mac": "02:00:00:00:01:01"}) == \
        "bridges:\n  web:\n    gateway-mac: 02:00:00:00:01:01\n"
    assert yamledit.set_entry("bridges:\n", ("bridges", "web"), {"gateway-mac": "m"}) == \
        "bridges:\n  web:\n    gateway-mac: m\n"


def test_refuses_what_it_cannot_edit_safely():
    with pytest.raises(ConfigError):
        yamledit.set_entry("bridges: {web: {gateway-mac: x}}\n", ("bridges", "db"), {"gateway-mac": "y"})
    with pytest.raises(ConfigError):
        yamledit.set_entry("bridges: [\n", ("bridges", "db"), {})


def test_merge_touches_only_the_given_keys():
    text = ("bridges:\n  web:   # DMZ, ticket 42\n    # router A/B\n    gateway-mac:\n      - 02:00:00:00:01:01\n"
            "      - 02:00:00:00:01:02\n    gateway-ip: 10.100.0.1   # VIP\n")
    new = yamledit.set_entry(text, ("bridges", "web"), {"gateway-ip": ["10.100.0.2"], "isolate-ports": True},
                             merge=True)
    assert new == text.replace("gateway-ip: 10.100.0.1   # VIP", "gateway-ip: [10.100.0.2]   # VIP") + \
        "    isolate-ports: true\n"
    assert [str(i) for i, _ in parses(new).bridges[0].ips] == ["10.100.0.2"]


# --- every value reads back as exactly the string written -------------------

import re  # noqa: E402

import yaml  # noqa: E402
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

TRICKY = ["local:snippets/site.sh # v2", "a: b", "a:", "#", "x #y", "*x", "&x", "!x", "%x", "@x", "`x", "'x", '"x',
          "{x", "[x", "x]", "a,b", ",", "- x", "-", "? x", "?", "|", ">", "<<", "=", "yes", "no", "on", "off", "y",
          "N", "true", "False", "null", "~", "", "1", "-1", "0x1F", "0o7", "017", "1e3", ".inf", ".NaN", "1_000",
          "12:34:56", "52:54:00:12:34:56", "2001-12-14", "a\nb", "a\r\nb", "\n", "é", "€ x", "x ", " x", "\t",
          "a\x85b", "a\u2028b", "\u2028 ", " \u2029 ", "\x00", "\ufeff", "it's", 'say "hi"', "back\\slash", "\U0001F600"]


def written(text, where, fields, merge=True):
    return yamledit.set_entry(text, where, fields, merge=merge)


def read_before(text):
    return parses(text).bridge("web").vnet_firewall_before


@pytest.mark.parametrize("value", TRICKY)
def test_a_value_reads_back_exactly_in_every_position(value):
    block = written(BASE, ("bridges", "web"), {"vnet-firewall-before": {"enable": value}})     # flow map
    assert yaml.safe_load(block)["bridges"]["web"]["vnet-firewall-before"] == {"enable": value}
    assert read_before(block) == {"enable": value}
    one = written(BASE, ("guests", "101"), {"chain": value})                                # block key
    assert yaml.safe_load(one)["guests"][101]["chain"] == value
    listed = written(BASE, ("guests", "101"), {"net1": [value, "x"]})                       # flow list
    assert yaml.safe_load(listed)["guests"][101]["net1"] == [value, "x"]
    new = written(BASE, ("bridges", "new"), {"vnet-firewall-before": {"enable": value}})    # a new entry
    assert yaml.safe_load(new)["bridges"]["new"]["vnet-firewall-before"] == {"enable": value}


def test_a_chained_hookscript_with_a_hash_is_recorded_whole():
    new = written(BASE, ("guests", "101"), {"chain": "local:snippets/site.sh # v2"})
    assert "    chain: 'local:snippets/site.sh # v2'\n" in new
    assert parses(new).guests[101].chain == "local:snippets/site.sh # v2"
    again = written(new, ("guests", "101"), {"chain": "local:snippets/site.sh"})
    assert "    chain: local:snippets/site.sh\n" in again                  # plain when plain is safe
    assert parses(again).guests[101].chain == "local:snippets/site.sh"


def test_a_changed_value_keeps_its_comment_even_with_a_hash_inside_quotes():
    text = "guests:\n  101:\n    chain: 'local:snippets/a.sh # old'   # the site's\n"
    new = written(text, ("guests", "101"), {"chain": "local:snippets/b.sh"})
    assert new == "guests:\n  101:\n    chain: local:snippets/b.sh   # the site's\n"


def test_lines_written_use_the_files_own_line_breaks():
    text = BASE.replace("\n", "\r\n")
    new = written(text, ("guests", "101"), {"chain": "local:snippets/x.sh"})
    assert new == text + "    chain: local:snippets/x.sh\r\n"


VALUES = st.text(alphabet=st.one_of(st.sampled_from(list("#: '\"\\-?*&!%@`{}[],|>=<~\n\r\t é€\x85\u2028ab01.y")),
                                    st.characters(blacklist_categories=("Cs",))), max_size=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=VALUES)
def test_any_value_round_trips(value):
    new = written(BASE, ("bridges", "web"), {"vnet-firewall-before": {"enable": value, "policy_forward": "DROP"}})
    assert read_before(new) == {"enable": value, "policy_forward": "DROP"}
    assert yaml.safe_load(new)["bridges"]["web"]["vnet-firewall-before"]["enable"] == value
    one = written(BASE, ("guests", "101"), {"chain": value, "net1": [value]})
    assert yaml.safe_load(one)["guests"][101] == {"net0": ["10.100.0.5"], "chain": value, "net1": [value]}


# A file with comments, odd indentation, a flow entry and trailing comments:
# whatever we edit, every line outside the edited entry comes back as it was.
LAYOUT = """\
# top comment
bridges:     # managed
    web:   # DMZ
        gateway-mac:
            - 02:00:00:00:01:01     # A
            -   02:00:00:00:01:02   # B
        gateway-ip: "10.100.0.1"    # VIP

    db: {gateway-mac: 02:00:00:00:02:01}
  # stray comment
guests:
 101:
   net0: [10.100.0.5]
   # kept
   chain: local:snippets/a.sh   # site
 102: {net0: [10.100.0.6]}
port-security: mac+ip   # the default
"""
ENTRIES = {("bridges", "web"): (2, 8), ("bridges", "db"): (8, 9), ("bridges", "app"): (9, 9),
           ("guests", "101"): (11, 15), ("guests", "102"): (15, 16), ("guests", "103"): (16, 16)}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=st.sampled_from(sorted(ENTRIES)), key=st.sampled_from(["chain", "gateway-ip", "isolate-ports", "x y"]),
       value=VALUES, merge=st.booleans())
def test_an_edit_leaves_every_other_line_byte_for_byte(where, key, value, merge):
    old = LAYOUT.splitlines(keepends=True)
    new = yamledit.set_entry(LAYOUT, where, {key: value}, merge=merge).splitlines(keepends=True)
    start, end = ENTRIES[where]
    assert new[:start] == old[:start]
    assert new[len(new) - (len(old) - end):] == old[end:]
    assert yaml.safe_load("".join(new))[where[0]][int(where[1]) if where[0] == "guests" else where[1]][key] == value


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=st.sampled_from(sorted(k for k, (s, e) in ENTRIES.items() if s < e)),
       key=st.sampled_from(["chain", "gateway-ip", "net0"]))
def test_a_removal_leaves_every_other_line_byte_for_byte(where, key):
    old = LAYOUT.splitlines(keepends=True)
    start, end = ENTRIES[where]
    for new in (yamledit.remove_key(LAYOUT, where, key), yamledit.remove_entry(LAYOUT, where)):
        new = new.splitlines(keepends=True)
        assert new[:start] == old[:start] and new[len(new) - (len(old) - end):] == old[end:]


def test_a_removed_key_takes_only_its_own_lines():
    new = yamledit.remove_key(LAYOUT, ("guests", "101"), "chain")
    assert new == LAYOUT.replace("   chain: local:snippets/a.sh   # site\n", "")
    new = yamledit.remove_key(LAYOUT, ("bridges", "web"), "gateway-mac")
    assert new == re.sub(r"        gateway-mac:\n.*# B\n", "", LAYOUT, flags=re.S)


# --- aliases and merge keys: never edited through ---------------------------

ALIASED = """\
bridges:
  base: &base
    gateway-mac: 02:00:00:00:01:01   # shared
  web: *base
  app:
    <<: *base
    gateway-ip: 10.0.0.1
  db:
    gateway-mac: &macs [02:00:00:00:02:01]
  db2:
    gateway-mac: *macs
"""


@pytest.mark.parametrize("edit, line, field, says", [
    (lambda t: written(t, ("bridges", "web"), {"gateway-ip": "10.1.1.1"}), 4, "bridges.web", "alias of &base"),
    (lambda t: written(t, ("bridges", "base"), {"gateway-ip": "10.1.1.1"}), 2, "bridges.base", "anchor &base"),
    (lambda t: written(t, ("bridges", "app"), {"gateway-ip": "10.1.1.1"}), 6, "bridges.app", "merge key"),
    (lambda t: written(t, ("bridges", "db"), {"gateway-mac": ["02:00:00:00:02:09"]}), 9, "bridges.db.gateway-mac",
     "anchor &macs"),
    (lambda t: written(t, ("bridges", "base"), {"gateway-mac": "x"}, merge=False), 2, "bridges.base", "&base"),
    (lambda t: yamledit.remove_entry(t, ("bridges", "base")), 2, "bridges.base", "anchor &base"),
    (lambda t: yamledit.remove_key(t, ("bridges", "web"), "gateway-mac"), 4, "bridges.web", "alias of &base"),
    (lambda t: yamledit.remove_key(t, ("bridges", "base"), "gateway-mac"), 2, "bridges.base.gateway-mac", "&base"),
])
def test_an_edit_never_lands_on_an_anchor(edit, line, field, says):
    with pytest.raises(ConfigError) as e:
        edit(ALIASED)
    assert (e.value.line, e.value.field) == (line, field) and says in str(e.value), str(e.value)


def test_what_an_alias_does_not_reach_is_edited_as_usual():
    new = written(ALIASED, ("bridges", "db"), {"gateway-ip": "10.2.0.1"})        # beside the anchored list
    assert new == ALIASED.replace("[02:00:00:00:02:01]\n", "[02:00:00:00:02:01]\n    gateway-ip: 10.2.0.1\n")
    new = written(ALIASED, ("bridges", "db2"), {"gateway-mac": ["02:00:00:00:03:01"]})   # replaces the alias only
    assert new.endswith("  db2:\n    gateway-mac: [02:00:00:00:03:01]\n") and "&macs" in new
    gone = yamledit.remove_entry(ALIASED, ("bridges", "web"))                      # the alias entry, not the anchor
    assert gone == ALIASED.replace("  web: *base\n", "")
    replaced = written(ALIASED, ("bridges", "web"), {"gateway-mac": "02:00:00:00:09:09"}, merge=False)
    assert replaced == ALIASED.replace("  web: *base\n", "  web:\n    gateway-mac: 02:00:00:00:09:09\n")


def test_an_alias_on_a_later_line_belongs_to_its_entry():
    text = "ips: &ip 10.0.0.1\nbridges:\n  web:\n    gateway-mac: m\n    gateway-ip:\n      - *ip\n  db:\n    x: y\n"
    new = written(text, ("bridges", "web"), {"gateway-mac": "m2"}, merge=False)
    assert new == "ips: &ip 10.0.0.1\nbridges:\n  web:\n    gateway-mac: m2\n  db:\n    x: y\n"


def test_a_recursive_alias_is_no_crash():
    text = "bridges:\n  web: &w\n    gateway-mac: [*w]\n"
    with pytest.raises(ConfigError):
        written(text, ("bridges", "web"), {"gateway-ip": "10.0.0.1"})
    new = written(text, ("bridges", "db"), {"gateway-ip": "10.0.0.1"})
    assert new.startswith(text)


# --- taking an edit back ----------------------------------------------------

OURS = {"chain": "local:snippets/site.sh # v2"}


def test_inverse_of_an_edit_nobody_else_touched_is_the_old_text():
    new = written(BASE, ("guests", "101"), OURS)
    assert yamledit.inverse(BASE, new, new, ("guests", "101")) == (BASE, [])


def test_inverse_keeps_what_another_edit_wrote_in_between():
    new = written(BASE, ("guests", "101"), OURS)
    theirs = written(new, ("bridges", "app"), {"gateway-mac": "02:00:00:00:03:01"})
    theirs = written(theirs, ("guests", "101"), {"port-security": "mac"})
    text, kept = yamledit.inverse(BASE, new, theirs, ("guests", "101"))
    assert kept == []
    assert text == written(written(BASE, ("bridges", "app"), {"gateway-mac": "02:00:00:00:03:01"}),
                           ("guests", "101"), {"port-security": "mac"})


def test_inverse_leaves_a_field_someone_changed_since_and_says_so():
    new = written(BASE, ("guests", "101"), OURS)
    theirs = written(new, ("guests", "101"), {"chain": "local:snippets/third.sh"})
    text, kept = yamledit.inverse(BASE, new, theirs, ("guests", "101"))
    assert text == theirs and kept == [("guests.101.chain", "local:snippets/third.sh")]


def test_inverse_puts_the_old_lines_back_verbatim_and_drops_an_entry_it_created():
    old = BASE.replace("    net0: [10.100.0.5]\n", "    net0: [10.100.0.5]\n    chain: \"local:snippets/a.sh\"  # A\n")
    new = written(old, ("guests", "101"), OURS)
    theirs = written(new, ("bridges", "app"), {"gateway-mac": "m"})
    text, kept = yamledit.inverse(old, new, theirs, ("guests", "101"))
    assert kept == [] and text == written(old, ("bridges", "app"), {"gateway-mac": "m"})
    created = written(BASE, ("guests", "102"), OURS)
    theirs = written(created, ("bridges", "app"), {"gateway-mac": "m"})
    text, _ = yamledit.inverse(BASE, created, theirs, ("guests", "102"))
    assert text == written(BASE, ("bridges", "app"), {"gateway-mac": "m"})


def test_a_flow_entry_merged_into_becomes_a_block_entry_with_its_values_and_comment_as_written():
    text = "guests:\n  101: {net0: [10.0.0.5, '10.0.0.6'], chain: \"/x\"}   # web CT\n  102:\n    net0: []\n"
    new = written(text, ("guests", "101"), {"port-security": "mac"})
    assert new == ("guests:\n  101:   # web CT\n    net0: [10.0.0.5, '10.0.0.6']\n    chain: \"/x\"\n"
                   "    port-security: mac\n  102:\n    net0: []\n")
    assert yamledit.remove_key(text, ("guests", "101"), "chain") == \
        "guests:\n  101:   # web CT\n    net0: [10.0.0.5, '10.0.0.6']\n  102:\n    net0: []\n"
