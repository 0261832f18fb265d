"""Flows: read (edges) -> decide (policy) -> act (edges), one module per job.

Each flow takes explicit parameters and returns a Result (data and an
ExitCode); it never parses arguments and never prints for the command line.
"""
