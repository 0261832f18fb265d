"""Policy: every decision pve-microseg makes, as pure functions of the model.

Resolve bridges against SDN, the nftables ruleset, what a run changes, each
guest's anti-spoofing sets and .fw edit, the VNet firewall and its
prerequisites, the firewall linter and strict checker, microseg.yaml edits,
what status reports, what an SDN apply did on each node.  No I/O: testable
without root, kernel or Proxmox.
"""
