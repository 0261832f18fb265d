"""pve-microseg: microsegmentation for Proxmox VE clusters."""

__version__ = "0.1.0"
