"""The model: what pve-microseg knows once every input has been read.

Plain dataclasses (bridges and their gateways, guests and their NICs, SDN
subnets, storages, the IPAM, microseg.yaml's settings) and the errors an
administrator can act on.  Nothing here reads, writes or decides.
"""
