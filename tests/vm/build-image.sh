#!/bin/bash
# Build (or reuse) the Debian bookworm VM image for `make test-vm`.
#
# Usage: tests/vm/build-image.sh            prints the image directory on stdout
# Cache: $HASUPD_VM_CACHE (default /var/cache/hasupd-vm), outside the clone.
#        image-<key>/{base.qcow2,vmlinuz,initrd.img}, key = sha256 of the
#        package list + this script; a new key builds a new image, an old
#        image is reused as it is. Downloaded .debs are kept in debs/.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${HASUPD_VM_CACHE:-/var/cache/hasupd-vm}
PACKAGES=$HERE/image-packages.txt
KEY=$(cat "$PACKAGES" "$0" | sha256sum | cut -c1-16)
IMAGE=$CACHE/image-$KEY
log() { echo "build-image: $*" >&2; }

mkdir -p "$CACHE/debs"
exec 9>"$CACHE/build.lock"          # one build at a time; a second caller waits and reuses
flock -w 1200 9 || { log "timed out waiting for $CACHE/build.lock"; exit 1; }
if [ -f "$IMAGE/done" ]; then
    log "reusing $IMAGE"
    echo "$IMAGE"; exit 0
fi

t0=$(date +%s)
WORK=$CACHE/build-$KEY
ROOT=$WORK/rootfs
rm -rf "$WORK"; mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT

# The Debian mirror apt already uses on this machine.
MIRROR=${MIRROR:-$("$HERE/../../scripts/debian-mirror")}
INCLUDE=$(grep -v '^\s*#' "$PACKAGES" | xargs | tr ' ' ',')
log "debootstrap bookworm from $MIRROR"
debootstrap --variant=minbase --cache-dir="$CACHE/debs" --include="$INCLUDE" \
    bookworm "$ROOT" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
t1=$(date +%s)

# --- guest configuration ------------------------------------------------------
echo '/dev/vda / ext4 defaults,noatime 0 1' > "$ROOT/etc/fstab"
echo hasupd-vm > "$ROOT/etc/hostname"
chroot "$ROOT" passwd -d root > /dev/null
: > "$ROOT/etc/machine-id"            # each boot makes its own
rm -f "$ROOT/var/lib/dbus/machine-id"

# Root autologin on the serial console; a quiet, echo-less shell for the driver.
mkdir -p "$ROOT/etc/systemd/system/serial-getty@ttyS0.service.d"
cat > "$ROOT/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf" <<'UNIT'
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200 %I dumb
UNIT
cat > "$ROOT/root/.profile" <<'SH'
export TERM=dumb PAGER=cat SYSTEMD_PAGER= SYSTEMD_COLORS=0
stty -echo -onlcr cols 250 2>/dev/null
PS1='HVM-READY# '
SH

# Static addresses from the kernel command line: hasupd_vm.eth0=10.99.0.1/24 ...
cat > "$ROOT/usr/local/sbin/hasupd-vm-net" <<'SH'
#!/bin/sh
ip link set lo up
for arg in $(cat /proc/cmdline); do
    case $arg in
        hasupd_vm.eth*=*) dev=${arg#hasupd_vm.}; addr=${dev#*=}; dev=${dev%%=*}
                          ip link set "$dev" up && ip addr add "$addr" dev "$dev" ;;
    esac
done
SH
chmod 755 "$ROOT/usr/local/sbin/hasupd-vm-net"
cat > "$ROOT/etc/systemd/system/hasupd-vm-net.service" <<'UNIT'
[Unit]
Description=static addresses from the kernel command line
Before=network.target network-online.target
Wants=network.target
After=systemd-udevd.service sys-subsystem-net-devices-eth0.device sys-subsystem-net-devices-eth1.device
Wants=sys-subsystem-net-devices-eth0.device sys-subsystem-net-devices-eth1.device

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/hasupd-vm-net

[Install]
WantedBy=multi-user.target network-online.target
UNIT
chroot "$ROOT" systemctl enable hasupd-vm-net.service > /dev/null 2>&1

# A shorter boot: no timers or services the test does not use.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
            fstrim.timer systemd-timesyncd.service apache-htcacheclean.service; do
    ln -sf /dev/null "$ROOT/etc/systemd/system/$unit"
done
chroot "$ROOT" apt-get clean

# --- kernel and a small initrd for -kernel/-initrd ------------------------------
KVER=$(ls "$ROOT/lib/modules" | head -n1)
sed -i 's/^MODULES=.*/MODULES=list/' "$ROOT/etc/initramfs-tools/initramfs.conf"
printf 'virtio_pci\nvirtio_blk\nvirtio_net\next4\n' >> "$ROOT/etc/initramfs-tools/modules"
chroot "$ROOT" update-initramfs -u -k "$KVER" > "$WORK/initramfs.log" 2>&1 \
    || { tail -20 "$WORK/initramfs.log" >&2; exit 1; }
mkdir -p "$WORK/out"
cp "$ROOT/boot/vmlinuz-$KVER" "$WORK/out/vmlinuz"
cp "$ROOT/boot/initrd.img-$KVER" "$WORK/out/initrd.img"

# --- disk image -------------------------------------------------------------------
mkfs.ext4 -q -F -L hasupd-vm -d "$ROOT" "$WORK/base.raw" 2G
qemu-img convert -O qcow2 "$WORK/base.raw" "$WORK/out/base.qcow2"
echo "kernel=$KVER debootstrap_s=$((t1 - t0)) total_s=$(($(date +%s) - t0))" > "$WORK/out/done"
rm -rf "$IMAGE"
mv "$WORK/out" "$IMAGE"
# older keys are never reused again
find "$CACHE" -maxdepth 1 -name 'image-*' ! -name "image-$KEY" -exec rm -rf {} +
log "built $IMAGE in $(($(date +%s) - t0)) s ($(cat "$IMAGE/done"))"
echo "$IMAGE"
