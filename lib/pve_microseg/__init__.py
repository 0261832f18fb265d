"""pve-microseg: microsegmentation for Proxmox VE clusters."""

__version__ = "0.4.0"
