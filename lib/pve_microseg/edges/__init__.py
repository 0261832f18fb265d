"""Edges: everything that touches the system.

Files (one reader with a size cap, one atomic writer), pmxcfs locks, the
cluster configuration as pmxcfs holds it, libnftables, pvesh, ssh to other
nodes, facts about this node, node-local state, the journal.  Every path
comes from paths.Paths and can be pointed at a test tree.
"""
