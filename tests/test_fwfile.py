"""fwfile: lossless parse/render of .fw files, edits that touch only what is ours."""


import pytest
from hypothesis import given, settings, strategies as st

from conftest import FIXTURES
from pve_microseg.parse import fwfile

FW_FIXTURES = sorted(p for p in FIXTURES.rglob("*.fw"))


@pytest.mark.parametrize("path", FW_FIXTURES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_fixture_round_trips_byte_for_byte(path):
    text = path.read_text()
    assert fwfile.parse(text).render() == text


# lines that look like what real files hold: headers, options, entries, rules, junk
_LINE = st.one_of(
    st.sampled_from(["[OPTIONS]", "[options]", "[RULES]", "[ALIASES]", "[IPSET ipfilter-net0]",
                     "[IPSET ipfilter-net1] # managed by pve-microseg", "[ipset ipfilter-net2]",
                     "[group web]", "[IPSET other] # x", "enable: 1", "ipfilter: 0", "policy_in: DROP",
                     "10.0.0.1", "fe80::1 # c", "IN ACCEPT -p tcp -dport 22", "# comment", "", "  ",
                     "[bogus", "\r", "\x1e", "a\x85b", "\u2028"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30))
_TEXT = st.builds(lambda lines, end: "\n".join(lines) + end,
                  st.lists(_LINE, max_size=25), st.sampled_from(["", "\n", "\r\n"]))


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_any_text_round_trips(text):
    assert fwfile.parse(text).render() == text


def _foreign_lines(text):
    """Every line outside our (marked) ipfilter sets, without line endings."""
    fw = fwfile.parse(text)
    out = []
    for s in fw.sections:
        if s.managed:
            continue
        out += [l.rstrip("\n") for l in ([s.header] if s.header else []) + s.lines]
    return out


@settings(max_examples=300, deadline=None)
@given(_TEXT, st.lists(st.ip_addresses().map(str), max_size=4))
def test_editing_keeps_every_foreign_line_in_order(text, entries):
    fw = fwfile.parse(text)
    fw.put_ipset("ipfilter-net7", entries)
    result = fw.render()
    before = [l for l in _foreign_lines(text)]
    after = _foreign_lines(result)
    assert after == before                  # nothing foreign lost, changed or reordered
    again = fwfile.parse(result)
    assert [l.strip() for l in again.find("ipset", "ipfilter-net7").lines if l.strip()] == entries


def test_set_option_rewrites_in_place_and_keeps_the_line_ending():
    text = "[OPTIONS]\r\n\r\nenable: 0\r\npolicy_in: DROP\r\n\r\n[RULES]\r\n\r\nIN ACCEPT\r\n"
    fw = fwfile.parse(text)
    assert fw.option("enable") == "0"
    assert fw.set_option("enable", "1") is True
    assert fw.render() == text.replace("enable: 0", "enable: 1")
    assert fw.set_option("enable", "1") is False


def test_set_option_adds_after_the_last_option():
    fw = fwfile.parse("# top comment\n[OPTIONS]\n\nenable: 1\n\n[RULES]\n\nIN ACCEPT\n")
    fw.set_option("ipfilter", "1")
    assert fw.render() == "# top comment\n[OPTIONS]\n\nenable: 1\nipfilter: 1\n\n[RULES]\n\nIN ACCEPT\n"


def test_options_section_is_created_at_the_top():
    fw = fwfile.parse("# who wrote this\n[RULES]\n\nIN ACCEPT\n")
    fw.set_option("enable", "1")
    assert fw.render() == "# who wrote this\n[OPTIONS]\n\nenable: 1\n\n[RULES]\n\nIN ACCEPT\n"


def test_new_set_goes_after_the_last_set_and_before_rules():
    text = "[OPTIONS]\n\nenable: 1\n\n[IPSET a]\n\n10.0.0.1\n\n[RULES]\n\nIN ACCEPT\n"
    fw = fwfile.parse(text)
    fw.put_ipset("ipfilter-net0", ["10.0.0.5", "fe80::1"])
    assert fw.render() == ("[OPTIONS]\n\nenable: 1\n\n[IPSET a]\n\n10.0.0.1\n\n"
                           "[IPSET ipfilter-net0] # managed by pve-microseg\n\n10.0.0.5\nfe80::1\n\n"
                           "[RULES]\n\nIN ACCEPT\n")


def test_set_is_replaced_in_place():
    text = ("[IPSET ipfilter-net0] # managed by pve-microseg\n\n10.0.0.9\n\n"
            "[IPSET other]\n\n10.0.0.1\n")
    fw = fwfile.parse(text)
    assert fw.ipfilter_sets()[0].managed
    assert fw.put_ipset("ipfilter-net0", ["10.0.0.5"]) is True
    assert fw.render() == text.replace("10.0.0.9", "10.0.0.5")
    assert fw.put_ipset("ipfilter-net0", ["10.0.0.5"]) is False


def test_missing_final_newline_is_the_only_byte_added():
    fw = fwfile.parse("[RULES]\n\nIN ACCEPT")
    fw.put_ipset("ipfilter-net0", ["10.0.0.5"])
    assert fw.render().startswith("[IPSET ipfilter-net0]")
    fw = fwfile.parse("[OPTIONS]\nenable: 1")
    fw.put_ipset("ipfilter-net0", ["10.0.0.5"])
    assert fw.render().startswith("[OPTIONS]\nenable: 1\n[IPSET ipfilter-net0]")


def test_lowercase_set_names_are_the_same_set_for_pve_firewall():
    fw = fwfile.parse("[ipset IPFILTER-NET0]\n10.0.0.1\n")
    assert 0 in fw.ipfilter_sets()
    assert not fw.ipfilter_sets()[0].managed
