#!/bin/bash
# run-trixie-guest.sh 'SHELL COMMAND'
#
# (Started from ../shared/examples/run-trixie-guest.sh; the Debian 13 twin of
# run-in-guest.sh, used by the dataplane tier and `make check`.)
#
# Boots Debian 13 "trixie" (the base of Proxmox VE 9) under QEMU: trixie's stock
# kernel, and a trixie root file system built once with debootstrap, shared
# read-only over 9p under a tmpfs overlay.  Runs the command as root inside,
# streams its stdout+stderr, and exits with its exit code.  Same model as
# tests/guest/run-in-guest.sh (Debian 12 kernel + the host's own root), except
# that the root file system is trixie's, not the host's.
#
# Knobs (environment):
#   GUEST_CPUS (2)  GUEST_MEM (2G)  GUEST_TIMEOUT (600 s)
#   ACCEL          tcg (default) | kvm
#   GUEST_SHARE_CWD=0  do not share the caller's cwd (default: shared read-only
#                  at the same path under a tmpfs overlay, so the command can
#                  build and write there without touching the host)
#   GUEST_RWDIR    host directory shared read-write at the same path (results)
#   GUEST_NET=user slirp NIC in the guest (e.g. for apt-get)
#   GUEST_APPEND   extra kernel command line
#   GUEST_ENV      names of host variables to pass into the guest command
#   KEEP_JOB=1     keep the job directory (console.log) and print its path
#   TRIXIE_CHROOT=1  no QEMU: run the command in a chroot of the same root file
#                  system (tmpfs overlay, private mount namespace) on this host's
#                  kernel, at native speed -- for the Python tiers, not for
#                  anything that needs trixie's kernel (nft bridge, dataplane)
#   TRIXIE_SUITE   (trixie)  the Debian suite debootstrap installs
#   TRIXIE_MIRROR  default: the host's own Debian archive URI from
#                  /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list
#   TRIXIE_PACKAGES  packages added (with apt, after debootstrap) to the base set
#                  (python3 python3-nftables python3-yaml nftables ifupdown2 iproute2
#                  iputils-ping kmod busybox-static linux-image-amd64); default: what
#                  the host tests and the package tier need (TEST_PKGS below), so
#                  one cached root file system serves every tier.
#                  The cache is keyed by suite + package lists.
#   TRIXIE_CACHE_DIR cache (default ${XDG_CACHE_HOME:-$HOME/.cache}/pve-microseg-trixie)
#
# Inside the guest: root = the trixie root file system (read-only 9p) + tmpfs
# overlay, so writes and `dpkg -i` never reach the cache; /lib/modules is the
# trixie kernel's; no udev/systemd; cwd = the caller's cwd (see GUEST_SHARE_CWD);
# ifupdown2 is installed, and IFUPDOWN2_DEB = path of its .deb (what
# tests/dataplane/scenario.py dpkg -i's, as under run-in-guest.sh).
#
# Exit codes: the command's; 255 if the guest gave none (crash, timeout);
# 77 = prerequisites missing (skip) -- but under CI=true missing prerequisites
# are an error (exit 1), never a skip.
#
# Host prerequisites (Debian 12 or later, root for the first run):
#   apt-get install -y --no-install-recommends qemu-system-x86 debootstrap cpio kmod xz-utils zstd
# The first run builds the root file system (debootstrap + apt: ~1.5-2.5 min on
# 2 cores; 520 MB cached, 1.1 GB with the package-tier tools); later runs boot
# from the cache (~6 s to the command under TCG).
# shellcheck disable=SC2054  # commas in QEMU option values, not array separators
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 'command'" >&2; exit 2; }
CMD="$*"
T0=$(date +%s.%N)
CACHE=${TRIXIE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pve-microseg-trixie}
SUITE=${TRIXIE_SUITE:-trixie}
CPUS=${GUEST_CPUS:-2}; MEM=${GUEST_MEM:-2G}; TMO=${GUEST_TIMEOUT:-600}; ACCEL=${ACCEL:-tcg}
# what every tier needs: the host tests (pytest) and the package tier (build + lintian)
TEST_PKGS="python3-pytest python3-hypothesis python3-debian make git build-essential dpkg-dev debhelper dh-python fakeroot lintian graphviz"
BASE_PKGS="python3 python3-nftables python3-yaml nftables ifupdown2 iproute2 iputils-ping kmod busybox-static linux-image-amd64"
EXTRA_PKGS=$(printf '%s\n' ${TRIXIE_PACKAGES-$TEST_PKGS} | sort -u | paste -sd' ' -)
PKGS=$(printf '%s\n' $BASE_PKGS | sort -u | paste -sd, -)

log() { echo "[run-trixie-guest] $*" >&2; }
missing() {   # prerequisites missing: skip, except under CI
  if [ "${CI:-}" = true ]; then log "ERROR: $*"; exit 1; fi
  log "SKIP: $*"; exit 77
}
for t in qemu-system-x86_64 debootstrap cpio modprobe xz zstd gzip timeout python3 sha256sum; do
  command -v "$t" >/dev/null || missing "$t not found (apt-get install qemu-system-x86 debootstrap cpio kmod xz-utils zstd)"
done

# The host's own Debian archive (never a hard-coded host): first deb URI that
# is not debian-security, from deb822 .sources files or the one-line format.
host_mirror() {
  { cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk 'tolower($1)=="uris:"{for(i=2;i<=NF;i++)print $i}'
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      awk '$1=="deb"{for(i=2;i<=NF;i++) if($i !~ /^\[/ && $i !~ /\]$/ && $i !~ /=/){print $i; break}}'
  } | grep -v -- '-security' | grep -E '^(https?|file):' | head -1 || true
}

FORMAT=2   # bump when the build steps below change: invalidates the cache
KEY=$(printf '%s %s %s %s' "$FORMAT" "$SUITE" "$PKGS" "$EXTRA_PKGS" | sha256sum | cut -c1-12)
D="$CACHE/$SUITE-$KEY"          # rootfs/, vmlinux, initrd.cpio.gz, kver
ROOT="$D/rootfs"

# ---- 1. root file system + kernel + initramfs (cached; built atomically) ----
if [ ! -f "$D/complete" ]; then
  [ "$(id -u)" = 0 ] || missing "building the $SUITE root file system needs root (debootstrap); run once as root"
  MIRROR=${TRIXIE_MIRROR:-$(host_mirror)}
  [ -n "$MIRROR" ] || missing "no Debian archive URI in /etc/apt/sources.list* (set TRIXIE_MIRROR)"
  mkdir -p "$CACHE"; exec 9>"$CACHE/build.lock"; flock 9   # one build at a time
fi
if [ ! -f "$D/complete" ]; then
  B="$D.tmp"; rm -rf "$B"; mkdir -p "$B"
  log "building the $SUITE root file system from $MIRROR (debootstrap, log: $B/debootstrap.log)"
  t=$(date +%s)
  nice -n 10 debootstrap --variant=minbase --include="$PKGS" "$SUITE" "$B/rootfs" "$MIRROR" \
      > "$B/debootstrap.log" 2>&1 || { tail -n 25 "$B/debootstrap.log" >&2; missing "debootstrap $SUITE failed"; }
  log "debootstrap: $(( $(date +%s) - t )) s"
  if [ -n "$EXTRA_PKGS" ]; then
    # apt, not debootstrap, for the rest: debootstrap does not resolve virtual
    # packages (lintian -> libnet-ssleay-perl -> perl-openssl-abi-3 fails)
    t=$(date +%s); printf '#!/bin/sh\nexit 101\n' > "$B/rootfs/usr/sbin/policy-rc.d"; chmod +x "$B/rootfs/usr/sbin/policy-rc.d"
    mount -t proc proc "$B/rootfs/proc"
    DEBIAN_FRONTEND=noninteractive nice -n 10 chroot "$B/rootfs" apt-get install -y -q --no-install-recommends $EXTRA_PKGS \
        >> "$B/debootstrap.log" 2>&1 || { umount "$B/rootfs/proc"; tail -n 25 "$B/debootstrap.log" >&2; missing "apt-get install $EXTRA_PKGS failed"; }
    umount "$B/rootfs/proc"; rm -f "$B/rootfs/usr/sbin/policy-rc.d"
    log "apt-get install $EXTRA_PKGS: $(( $(date +%s) - t )) s"
  fi
  # keep ifupdown2's .deb: the dataplane scenario dpkg -i's $IFUPDOWN2_DEB (as with run-in-guest.sh)
  mkdir -p "$B/rootfs/var/cache/pve-microseg-guest"
  cp "$B"/rootfs/var/cache/apt/archives/ifupdown2_*.deb "$B/rootfs/var/cache/pve-microseg-guest/"
  chroot "$B/rootfs" apt-get clean
  echo guest > "$B/rootfs/etc/hostname"
  # dpkg reads every *.list file: far cheaper from a tmpfs than over 9p under TCG
  tar -cf "$B/rootfs/var/cache/dpkg-db.tar" -C "$B/rootfs" var/lib/dpkg
  KVER=$(ls "$B/rootfs/lib/modules" | head -1); echo "$KVER" > "$B/kver"
  # Uncompressed ELF vmlinux: QEMU boots it via PVH and skips the decompressor.
  python3 - "$B/rootfs/boot/vmlinuz-$KVER" "$B/payload" <<'PY'
import sys
d = open(sys.argv[1], 'rb').read()
for magic in (b'\x28\xb5\x2f\xfd', b'\xfd7zXZ\x00'):       # zstd (trixie), xz (bookworm)
    i = d.find(magic)
    if i >= 0:
        open(sys.argv[2], 'wb').write(d[i:]); break
else:
    sys.exit("no zstd/xz payload in " + sys.argv[1])
PY
  { zstd -dcq "$B/payload" 2>/dev/null || xz -dcq "$B/payload" 2>/dev/null || true; } > "$B/vmlinux"
  rm -f "$B/payload"
  [ "$(head -c4 "$B/vmlinux" | od -An -c | tr -d ' ')" = 177ELF ] || { log "cannot unpack vmlinuz-$KVER; booting the bzImage"; cp "$B/rootfs/boot/vmlinuz-$KVER" "$B/vmlinux"; }
  # tiny initramfs: the root file system's static busybox + 9p/overlay modules (unpacked)
  W="$B/initrd"; mkdir -p "$W"/{bin,mods,proc,sys,dev,lower,upper,newroot}
  cp "$B/rootfs/usr/bin/busybox" "$W/bin/busybox"
  for m in virtio_pci 9pnet_virtio 9p overlay; do
    modprobe -d "$B/rootfs" -S "$KVER" --show-depends "$m"
  done | awk '$1=="insmod"{print $2}' | awk '!seen[$0]++' | while read -r ko; do
    b=$(basename "$ko")
    case "$b" in
      *.ko.xz)  xz -dc "$ko" > "$W/mods/${b%.xz}"; b=${b%.xz} ;;
      *.ko.zst) zstd -dcq "$ko" > "$W/mods/${b%.zst}"; b=${b%.zst} ;;
      *)        cp "$ko" "$W/mods/" ;;
    esac
    echo "$b" >> "$W/mods/order"
  done
  touch "$W/mods/order"
  cat > "$W/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
die() { echo "<1>initramfs: $*" > /dev/kmsg; sleep 1; poweroff -f; }
for m in $(cat /mods/order); do insmod /mods/$m || echo "insmod $m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose rootfs /lower || die "mount rootfs failed"
mount -t tmpfs -o mode=755 upper /upper && mkdir /upper/u /upper/w
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w /newroot || die "overlay failed"
mount -t tmpfs -o mode=755 run /newroot/run && mkdir /newroot/run/job
mount -t 9p -o trans=virtio,version=9p2000.L job /newroot/run/job || die "mount job failed"
echo "<1>initramfs: switching root" > /dev/kmsg
umount /proc /sys; mount --move /dev /newroot/dev 2>/dev/null || umount /dev
exec switch_root /newroot /bin/bash /run/job/stage2
EOF
  chmod +x "$W/init"
  ( cd "$W" && find . | cpio -o -H newc --quiet | gzip -1 ) > "$B/initrd.cpio.gz"; rm -rf "$W"
  date -u +%FT%TZ > "$B/complete"
  rm -rf "$D"; mv "$B" "$D"
  log "cached in $D ($(du -sh "$D" | cut -f1))"
fi
exec 9>&-
KVER=$(cat "$D/kver")

# ---- 2. per-run job dir: command, environment, stage2 init; guest writes rc here ----
JOB=$(mktemp -d "$CACHE/job.XXXXXX")
if [ -n "${KEEP_JOB:-}" ]; then log "job dir: $JOB"; else trap 'rm -rf "$JOB"' EXIT; fi
printf '%s\n' "$CMD" > "$JOB/cmd"
printf '%s\n' "$PWD" > "$JOB/cwd"
{
  f=$(ls "$ROOT"/var/cache/pve-microseg-guest/ifupdown2_*.deb 2>/dev/null | head -1 || true)
  printf 'export IFUPDOWN2_DEB=%q\n' "${f#"$ROOT"}"
  [ -z "${CI:-}" ] || printf 'export CI=%q\n' "$CI"
  for v in ${GUEST_ENV:-}; do
    if [ -n "${!v+x}" ]; then printf 'export %s=%q\n' "$v" "${!v}"; fi
  done
} > "$JOB/env"

# ---- 2b. TRIXIE_CHROOT=1: no QEMU; the same root file system as a chroot on this
# host's kernel (native speed: for tiers that need trixie's userland, not its kernel)
if [ "${TRIXIE_CHROOT:-}" = 1 ]; then
  [ "$(id -u)" = 0 ] || missing "TRIXIE_CHROOT=1 needs root"
  log "$SUITE chroot on this host's kernel $(uname -r) (no QEMU)"
  set +e
  JOB="$JOB" ROOT="$ROOT" SHARE_CWD="${GUEST_SHARE_CWD:-1}" RWDIR="${GUEST_RWDIR:-}" \
  unshare --mount --propagation private bash -euc '
    T="$JOB/mnt"; mkdir -p "$T"; mount -t tmpfs chroot "$T"; mkdir "$T"/u "$T"/w "$T"/m "$T"/cu "$T"/cw
    mount -t overlay chroot -o lowerdir="$ROOT",upperdir="$T"/u,workdir="$T"/w "$T"/m
    mount -t proc proc "$T"/m/proc; mount -t sysfs sysfs "$T"/m/sys; mount --rbind /dev "$T"/m/dev
    mount -t tmpfs -o mode=755 run "$T"/m/run; mkdir -p "$T"/m/run/job "$T"/m/run/network "$T"/m/run/lock
    cp "$JOB"/cmd "$JOB"/env "$T"/m/run/job/
    cp /etc/resolv.conf "$T"/m/etc/resolv.conf 2>/dev/null || true
    if [ "$SHARE_CWD" = 1 ] && [ "$PWD" != / ]; then mkdir -p "$T/m$PWD"
      mount -t overlay cwd -o lowerdir="$PWD",upperdir="$T"/cu,workdir="$T"/cw "$T/m$PWD"; fi
    if [ -n "$RWDIR" ]; then mkdir -p "$RWDIR" "$T/m$RWDIR"; mount --bind "$RWDIR" "$T/m$RWDIR"; fi
    exec chroot "$T"/m /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      HOME=/root TERM=dumb LANG=C.UTF-8 CWD="$PWD" /bin/bash -c \
      ". /run/job/env; cd \"\$CWD\" 2>/dev/null || cd /; unset CWD; bash -c \"\$(cat /run/job/cmd)\" </dev/null"'
  RC=$?
  log "exit code: $RC"
  exit "$RC"
fi

cat > "$JOB/stage2" <<'EOF'
mount -t proc proc /proc; mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm
mkdir -p /run/netns /run/lock /run/network; mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
stty -F /dev/ttyS1 raw -echo 2>/dev/null
echo guest > /proc/sys/kernel/hostname; ip link set lo up
if [ -f /var/cache/dpkg-db.tar ] && mount -t tmpfs -o mode=755 dpkg /var/lib/dpkg; then
  tar -xf /var/cache/dpkg-db.tar -C / || umount /var/lib/dpkg; fi
if [ -s /run/job/cwdshare ]; then      # the caller's cwd: 9p read-only + tmpfs overlay
  c=$(cat /run/job/cwdshare); mkdir -p /run/cwd/l /run/cwd/t "$c"
  mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose cwd /run/cwd/l &&
  mount -t tmpfs -o mode=755 cwdupper /run/cwd/t && mkdir /run/cwd/t/u /run/cwd/t/w &&
  mount -t overlay cwdov -o lowerdir=/run/cwd/l,upperdir=/run/cwd/t/u,workdir=/run/cwd/t/w "$c" ||
    echo "[run-trixie-guest] could not mount the caller's cwd $c" >/dev/ttyS1
fi
[ -s /run/job/rwdir ] && mkdir -p "$(cat /run/job/rwdir)" && mount -t 9p -o trans=virtio,version=9p2000.L,cache=none rwdir "$(cat /run/job/rwdir)"
modprobe -q virtio_rng 2>/dev/null; grep -qs 0x0001 /sys/bus/pci/devices/*/subsystem_device && modprobe -q virtio_net
if [ -d /sys/class/net/eth0 ]; then ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0
  ip route add default via 10.0.2.2; echo nameserver 10.0.2.3 > /etc/resolv.conf; fi
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb LANG=C.UTF-8
. /run/job/env
cd "$(cat /run/job/cwd)" 2>/dev/null || cd /
cut -d' ' -f1 /proc/uptime > /run/job/uptime
bash -c "$(cat /run/job/cmd)" </dev/null >/dev/ttyS1 2>&1; echo $? > /run/job/rc
sync; echo o > /proc/sysrq-trigger; sleep 5
EOF

SHARE=()
if [ "${GUEST_SHARE_CWD:-1}" = 1 ] && [ "$PWD" != / ]; then
  printf '%s\n' "$PWD" > "$JOB/cwdshare"
  SHARE=(-fsdev local,id=f4,path="$PWD",security_model=none,readonly=on,multidevs=remap -device virtio-9p-pci,fsdev=f4,mount_tag=cwd)
fi
RW=()
if [ -n "${GUEST_RWDIR:-}" ]; then
  mkdir -p "$GUEST_RWDIR"; GUEST_RWDIR=$(realpath "$GUEST_RWDIR"); printf '%s\n' "$GUEST_RWDIR" > "$JOB/rwdir"
  RW=(-fsdev local,id=f3,path="$GUEST_RWDIR",security_model=none -device virtio-9p-pci,fsdev=f3,mount_tag=rwdir)
fi
NET=(-net none)
[ "${GUEST_NET:-}" = user ] && NET=(-netdev user,id=n0 -device virtio-net-pci,netdev=n0)
ACC=(-accel tcg,thread=multi -cpu max); [ "$ACCEL" = kvm ] && ACC=(-accel kvm -cpu host)
T1=$(date +%s.%N)
set +e
timeout --foreground -k 5 "$TMO" qemu-system-x86_64 "${ACC[@]}" -M q35 -smp "$CPUS" -m "$MEM" \
  -nodefaults -no-user-config -display none -no-reboot \
  -serial file:"$JOB/console.log" -chardev stdio,id=out,signal=off -serial chardev:out \
  -kernel "$D/vmlinux" -initrd "$D/initrd.cpio.gz" \
  -append "console=ttyS0 loglevel=4 panic=-1 rdinit=/init ${GUEST_APPEND:-}" \
  -fsdev local,id=f0,path="$ROOT",security_model=none,readonly=on,multidevs=remap \
  -device virtio-9p-pci,fsdev=f0,mount_tag=rootfs \
  -fsdev local,id=f2,path="$JOB",security_model=none \
  -device virtio-9p-pci,fsdev=f2,mount_tag=job \
  -device virtio-rng-pci "${SHARE[@]}" "${RW[@]}" "${NET[@]}" </dev/null
QRC=$?
set -e
T2=$(date +%s.%N)
if [ -s "$JOB/rc" ]; then RC=$(cat "$JOB/rc"); else RC=255
  [ "$QRC" = 124 ] && log "timed out after $TMO s"
  log "no exit code from guest (qemu rc=$QRC); guest console tail:"
  tail -n 30 "$JOB/console.log" >&2 2>/dev/null; fi
log "$SUITE, kernel $KVER: command started at guest uptime $(cat "$JOB/uptime" 2>/dev/null || echo '?') s;" \
    "qemu ran $(python3 -c "print(round($T2-$T1,1))") s; total $(python3 -c "print(round($T2-$T0,1))") s"
log "exit code: $RC"
exit "$RC"
