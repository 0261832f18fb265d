#!/bin/bash
# run-in-guest.sh 'SHELL COMMAND'
#
# Boots Debian 12's stock kernel under QEMU with this machine's root file system
# (9p, read-only) under a tmpfs overlay, runs the command as root inside, streams
# its stdout+stderr, and exits with its exit code.  Used by the dataplane tests:
# this machine's own kernel may lack nft bridge support (nft_meta_bridge).
#
# Knobs (environment):
#   GUEST_CPUS (2)  GUEST_MEM (2G)  GUEST_TIMEOUT (600 s)
#   ACCEL          tcg (default) | kvm
#   GUEST_RWDIR    host directory shared read-write at the same path (results)
#   GUEST_NET=user slirp NIC in the guest (e.g. for apt-get)
#   GUEST_APPEND   extra kernel command line
#   GUEST_ENV      names of host variables to pass into the guest command
#   GUEST_DPKG_DB=0  do not put a snapshot of the dpkg database on tmpfs in the guest
#   GUEST_CACHE_DIR  cache (default ${XDG_CACHE_HOME:-$HOME/.cache}/pve-microseg-guest)
#   KEEP_JOB=1     keep the job directory (console.log) and print its path
#   GUEST_ICOUNT=1 deterministic clock for benchmarks: single-threaded TCG,
#                  -icount shift=0,sleep=off (1 guest instruction = 1 ns of guest
#                  time; idle time is skipped)
#
# Inside the guest: root = host / (read-only 9p) + tmpfs overlay, so writes and
# `dpkg -i` never reach the host; /lib/modules/<kver> = the Debian kernel's
# modules; no udev/systemd; cwd = the caller's cwd; IFUPDOWN2_DEB = path of a
# cached Debian ifupdown2 .deb (install it with dpkg -i).
#
# Exit codes: the command's; 255 if the guest gave none (crash, timeout);
# 77 = prerequisites missing (skip) -- but under CI=true missing prerequisites
# are an error (exit 1), never a skip.
#
# Host prerequisites (none of them touch host networking):
#   apt-get install -y --no-install-recommends qemu-system-x86 busybox-static kmod cpio
# The kernel and ifupdown2 are fetched with `apt-get download` and unpacked in the
# cache; nothing is installed into the host's /boot, /lib/modules or /etc.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 'command'" >&2; exit 2; }
CMD="$*"
D=${GUEST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pve-microseg-guest}
CPUS=${GUEST_CPUS:-2}; MEM=${GUEST_MEM:-2G}; TMO=${GUEST_TIMEOUT:-600}; ACCEL=${ACCEL:-tcg}
PY=/usr/bin/python3

missing() {   # prerequisites missing: skip, except under CI
  if [ "${CI:-}" = true ]; then echo "[run-in-guest] ERROR: $*" >&2; exit 1; fi
  echo "[run-in-guest] SKIP: $*" >&2; exit 77
}
for t in qemu-system-x86_64 cpio depmod modprobe dpkg-deb apt-get apt-cache gzip timeout; do
  command -v "$t" >/dev/null || missing "$t not found (apt-get install qemu-system-x86 busybox-static kmod cpio)"
done
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] && ! ldd "$BUSYBOX" >/dev/null 2>&1 || missing "static $BUSYBOX not found (apt-get install busybox-static)"
[ -x "$PY" ] || missing "$PY not found"
mkdir -p "$D/cache"

apt_download() {  # apt_download PKG: fetch PKG's .deb into $D/cache (apt-get update once if needed)
  ( cd "$D/cache" && apt-get download "$1" >/dev/null 2>&1 ) && return 0
  [ "$(id -u)" = 0 ] && apt-get update -q >/dev/null 2>&1 &&
    ( cd "$D/cache" && apt-get download "$1" >/dev/null 2>&1 )
}

# ---- 1. kernel (cached): Debian's current linux-image-amd64 target, unpacked ----
if [ ! -f "$D/cache/kver" ]; then
  PKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  if [ -z "$PKG" ] && [ "$(id -u)" = 0 ]; then
    apt-get update -q >/dev/null 2>&1 || true
    PKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  fi
  [ -n "$PKG" ] || missing "cannot resolve the Debian kernel package (apt-get update)"
  apt_download "$PKG" || missing "apt-get download $PKG failed"
  rm -rf "$D/cache/kroot"; dpkg-deb -x "$D/cache/$PKG"_*.deb "$D/cache/kroot"
  rm -f "$D/cache/$PKG"_*.deb
  K=$(ls "$D/cache/kroot/lib/modules"); depmod -b "$D/cache/kroot" "$K"; echo "$K" > "$D/cache/kver"
fi
KVER=$(cat "$D/cache/kver"); KROOT="$D/cache/kroot"; MODS="$KROOT/lib/modules/$KVER"
[ -d "$MODS" ] || missing "kernel cache $KROOT is incomplete (remove $D/cache/kver)"
# Uncompressed ELF vmlinux: QEMU boots it via PVH and skips the xz decompressor
# (~3.5 s under TCG).
VMLINUX="$D/cache/vmlinux-$KVER"
if [ ! -f "$VMLINUX" ]; then
  "$PY" - "$KROOT/boot/vmlinuz-$KVER" "$VMLINUX.tmp" <<'PY'
import lzma, sys
d = open(sys.argv[1], 'rb').read(); i = d.find(b'\xfd7zXZ\x00')
open(sys.argv[2], 'wb').write(lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(d[i:]))
PY
  mv "$VMLINUX.tmp" "$VMLINUX"
fi

# ---- 2. ifupdown2 .deb (cached), for the guest to dpkg -i ----
IFUPDOWN2_DEB=$(ls "$D"/cache/ifupdown2_*.deb 2>/dev/null | head -1 || true)
if [ -z "$IFUPDOWN2_DEB" ]; then
  apt_download ifupdown2 || missing "apt-get download ifupdown2 failed"
  IFUPDOWN2_DEB=$(ls "$D"/cache/ifupdown2_*.deb | head -1)
fi

# ---- 3. snapshot of the dpkg database (cached, refreshed when the host's changes) ----
# The guest mounts a tmpfs on /var/lib/dpkg and unpacks this there: dpkg reads
# ~900 *.list files, which costs ~1 min over 9p under TCG and ~1 s from tmpfs.
DPKG_DB="$D/cache/dpkg-db.tar"
if [ "${GUEST_DPKG_DB:-1}" = 1 ]; then
  if [ ! -f "$DPKG_DB" ] || [ -n "$(find /var/lib/dpkg -maxdepth 2 -newer "$DPKG_DB" -print -quit 2>/dev/null)" ]; then
    tar -cf "$DPKG_DB.$$" -C / --exclude='var/lib/dpkg/lock*' var/lib/dpkg 2>/dev/null &&
      mv "$DPKG_DB.$$" "$DPKG_DB" || rm -f "$DPKG_DB.$$"
  fi
  [ -f "$DPKG_DB" ] || DPKG_DB=
else
  DPKG_DB=
fi

# ---- 4. tiny initramfs (cached): busybox + virtio/9p/overlay modules ----
INITRD="$D/cache/initrd-$KVER.cpio.gz"
if [ ! -f "$INITRD" ]; then
  W=$(mktemp -d); mkdir -p "$W"/{bin,mods,proc,sys,dev,lower,upper,newroot}
  cp "$BUSYBOX" "$W/bin/busybox"
  for m in virtio_pci 9pnet_virtio 9p overlay; do
    modprobe -d "$KROOT" -S "$KVER" --show-depends "$m" | awk '$1=="insmod"{print $2}'
  done | awk '!seen[$0]++' | while read -r ko; do cp "$ko" "$W/mods/"; basename "$ko" >> "$W/mods/order"; done
  cat > "$W/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /mods/order); do insmod /mods/$m || echo "insmod $m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /lower || exec sh
mount -t tmpfs -o mode=755 upper /upper && mkdir /upper/u /upper/w
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w /newroot || exec sh
mkdir -p /newroot/usr/lib/modules/$(uname -r) /newroot/run
mount -t 9p -o trans=virtio,version=9p2000.L,ro kmods /newroot/usr/lib/modules/$(uname -r)
mount -t tmpfs -o mode=755 run /newroot/run && mkdir /newroot/run/job
mount -t 9p -o trans=virtio,version=9p2000.L job /newroot/run/job
echo "<1>initramfs: switching root" > /dev/kmsg
umount /proc /sys; mount --move /dev /newroot/dev 2>/dev/null || umount /dev
exec switch_root /newroot /bin/bash /run/job/stage2
EOF
  chmod +x "$W/init"
  ( cd "$W" && find . | cpio -o -H newc --quiet | gzip -1 ) > "$INITRD.tmp"; mv "$INITRD.tmp" "$INITRD"
  rm -rf "$W"
fi

# ---- 5. per-run job dir: command, environment, stage2 init; guest writes rc here ----
JOB=$(mktemp -d "$D/job.XXXXXX")
if [ -n "${KEEP_JOB:-}" ]; then echo "[run-in-guest] job dir: $JOB" >&2; else trap 'rm -rf "$JOB"' EXIT; fi
printf '%s\n' "$CMD" > "$JOB/cmd"
printf '%s\n' "$PWD" > "$JOB/cwd"
[ -z "$DPKG_DB" ] || printf '%s\n' "$DPKG_DB" > "$JOB/dpkg-db"
{
  printf 'export IFUPDOWN2_DEB=%q\n' "$IFUPDOWN2_DEB"
  [ -z "${CI:-}" ] || printf 'export CI=%q\n' "$CI"
  for v in ${GUEST_ENV:-}; do
    if [ -n "${!v+x}" ]; then printf 'export %s=%q\n' "$v" "${!v}"; fi
  done
} > "$JOB/env"
cat > "$JOB/stage2" <<'EOF'
mount -t proc proc /proc; mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm
mkdir -p /run/netns /run/lock /run/network; mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
stty -F /dev/ttyS1 raw -echo 2>/dev/null
hostname guest; ip link set lo up
if [ -s /run/job/dpkg-db ] && mount -t tmpfs -o mode=755 dpkg /var/lib/dpkg; then
  tar -xf "$(cat /run/job/dpkg-db)" -C / || umount /var/lib/dpkg; fi
[ -s /run/job/rwdir ] && mkdir -p "$(cat /run/job/rwdir)" && mount -t 9p -o trans=virtio,version=9p2000.L,cache=none rwdir "$(cat /run/job/rwdir)"
modprobe -q virtio_rng 2>/dev/null; grep -qs 0x0001 /sys/bus/pci/devices/*/subsystem_device && modprobe -q virtio_net
if [ -d /sys/class/net/eth0 ]; then ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0
  ip route add default via 10.0.2.2; echo nameserver 10.0.2.3 > /etc/resolv.conf; fi
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb LANG=C.UTF-8
. /run/job/env
cd "$(cat /run/job/cwd)" 2>/dev/null || cd /
bash -c "$(cat /run/job/cmd)" </dev/null >/dev/ttyS1 2>&1; echo $? > /run/job/rc
sync; echo o > /proc/sysrq-trigger; sleep 5
EOF

RW=()
if [ -n "${GUEST_RWDIR:-}" ]; then
  mkdir -p "$GUEST_RWDIR"; GUEST_RWDIR=$(realpath "$GUEST_RWDIR"); printf '%s\n' "$GUEST_RWDIR" > "$JOB/rwdir"
  RW=(-fsdev local,id=f3,path="$GUEST_RWDIR",security_model=none -device virtio-9p-pci,fsdev=f3,mount_tag=rwdir)
fi
NET=(-net none)
[ "${GUEST_NET:-}" = user ] && NET=(-netdev user,id=n0 -device virtio-net-pci,netdev=n0)
ACC=(-accel tcg,thread=multi -cpu max); [ "$ACCEL" = kvm ] && ACC=(-accel kvm -cpu host)
[ "${GUEST_ICOUNT:-}" = 1 ] && ACC=(-accel tcg,thread=single -icount shift=0,sleep=off -cpu max)
set +e
timeout --foreground -k 5 "$TMO" qemu-system-x86_64 "${ACC[@]}" -M q35 -smp "$CPUS" -m "$MEM" \
  -nodefaults -no-user-config -display none -no-reboot \
  -serial file:"$JOB/console.log" -chardev stdio,id=out,signal=off -serial chardev:out \
  -kernel "${GUEST_KERNEL:-$VMLINUX}" -initrd "$INITRD" \
  -append "console=ttyS0 loglevel=4 panic=-1 rdinit=/init ${GUEST_APPEND:-}" \
  -fsdev local,id=f0,path=/,security_model=none,readonly=on,multidevs=remap \
  -device virtio-9p-pci,fsdev=f0,mount_tag=hostroot \
  -fsdev local,id=f1,path="$MODS",security_model=none,readonly=on \
  -device virtio-9p-pci,fsdev=f1,mount_tag=kmods \
  -fsdev local,id=f2,path="$JOB",security_model=none \
  -device virtio-9p-pci,fsdev=f2,mount_tag=job \
  -device virtio-rng-pci "${RW[@]}" "${NET[@]}" </dev/null
QRC=$?
set -e
if [ -s "$JOB/rc" ]; then RC=$(cat "$JOB/rc"); else RC=255
  [ "$QRC" = 124 ] && echo "[run-in-guest] timed out after $TMO s" >&2
  echo "[run-in-guest] no exit code from guest (qemu rc=$QRC); guest console tail:" >&2
  tail -n 30 "$JOB/console.log" >&2 2>/dev/null; fi
echo "[run-in-guest] exit code: $RC" >&2
exit "$RC"
