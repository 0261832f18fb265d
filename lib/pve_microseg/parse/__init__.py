"""Parsers: the text of a Proxmox or pve-microseg file -> the model.

One module per format (microseg.yaml, the article's legacy file, SDN's
running config and SectionConfig files, storage.cfg, guest configs, .vmlist,
the IPAM, firewall .fw files, dpkg's status file, worker task UPIDs and the
SDN apply's task log).  Pure: they get text, never a path to open; errors
name the file, line and field.
"""
