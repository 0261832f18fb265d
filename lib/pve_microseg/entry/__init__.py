"""Entry points: translate arguments into a flow call and render its result.

The `pve-microseg` command line, the ifupdown2 hooks and the guest
hookscript.  No decision and no file or process I/O beyond printing.
"""
