"""Dataplane tests: real kernel, real ifupdown2, real packets (inside QEMU).

See README.md in this directory.
"""
