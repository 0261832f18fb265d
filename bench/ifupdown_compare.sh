#!/bin/bash
# ifupdown2 with N VNets: no if-up.d/if-down.d script, a no-op script, ours.
# Run inside the QEMU guest (it sets IFUPDOWN2_DEB):
#   GUEST_TIMEOUT=3600 N=500 GUEST_ENV=N tests/guest/run-in-guest.sh "bash bench/ifupdown_compare.sh"
# The no-op script separates what ifupdown2 spends on running any hook
# script from what ours adds.  One run per case, wall clock under TCG:
# expect +-20 % noise; keep the host otherwise idle.
set -e
cd "$(dirname "$0")/.."
dpkg -i "$IFUPDOWN2_DEB" >/dev/null 2>&1
make install DESTDIR=/ >/dev/null
mkdir -p /etc/pve/sdn /run/network; echo 1 > /etc/pve/.version
N=${N:-500}
/usr/bin/python3 -c "
import sys; sys.path.insert(0, 'bench'); import hooks
open('/etc/pve/microseg.yaml', 'w').write(hooks.microseg_yaml($N))
open('/etc/network/interfaces', 'w').write(hooks.interfaces_file($N))
"
up=/etc/network/if-up.d/pve-microseg; down=/etc/network/if-down.d/pve-microseg
mv $up /root/up; mv $down /root/down
printf '#!/bin/sh\nexit 0\n' > /root/noop; chmod 755 /root/noop
t() { local s e; s=$(cut -d' ' -f1 /proc/uptime); "$@" >/dev/null 2>&1 || true
      e=$(cut -d' ' -f1 /proc/uptime); awk -v s="$s" -v e="$e" -v c="$*" 'BEGIN{printf "%8.1f s  %s\n", e-s, c}'; }
echo "$N VNets, ifupdown2 $(dpkg-query -W -f='${Version}' ifupdown2), $(nproc) vCPUs"
for mode in none noop ours; do
  rm -f $up $down
  case $mode in noop) cp /root/noop $up; cp /root/noop $down;;
                ours) cp /root/up $up; cp /root/down $down;; esac
  echo "== hooks: $mode"
  t ifup -a
  t ifreload -a
  touch /etc/pve/microseg.yaml; echo -n "(after a config change) "; t ifreload -a
  rm -f $down; t ifdown -a
  nft delete table bridge pve_microseg 2>/dev/null || true; rm -rf /run/pve-microseg
done
