#!/bin/bash
# Build (or reuse) a minimal Debian chroot for the .deb install test.
#
# Usage: tests/packaging/debian-chroot.sh SUITE      (bullseye, bookworm, trixie)
#        prints the chroot's directory on stdout.
# Cache: $HASUPD_CHROOT_CACHE (default /var/cache/hasupd-chroots), outside the
#        clone: SUITE-<key>/ (key = sha256 of this script), .debs kept in debs-SUITE/.
#        A chroot is never changed: the test installs into a copy of it.
set -euo pipefail
SUITE=${1:?usage: debian-chroot.sh SUITE}
CACHE=${HASUPD_CHROOT_CACHE:-/var/cache/hasupd-chroots}
KEY=$(sha256sum < "$0" | cut -c1-16)
ROOT=$CACHE/$SUITE-$KEY
log() { echo "debian-chroot: $*" >&2; }

mkdir -p "$CACHE/debs-$SUITE"
exec 9>"$CACHE/$SUITE.lock"          # one build per suite at a time; a second caller waits and reuses
flock -w 1200 9 || { log "timed out waiting for $CACHE/$SUITE.lock"; exit 1; }
if [ -f "$ROOT/.done" ]; then
    echo "$ROOT"; exit 0
fi

# The Debian mirror apt already uses on this machine.
MIRROR=${MIRROR:-$("$(dirname "$0")/../../scripts/debian-mirror")}
t0=$(date +%s)
WORK=$CACHE/build-$SUITE-$KEY
rm -rf "$WORK"
trap 'rm -rf "$WORK"' EXIT
log "debootstrap $SUITE from $MIRROR"
debootstrap --variant=minbase --cache-dir="$CACHE/debs-$SUITE" "$SUITE" "$WORK" "$MIRROR" \
    > "$CACHE/debootstrap-$SUITE.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap-$SUITE.log" >&2; exit 1; }
# the suite's updates (and security, where the mirror layout allows) like an installed system
echo "deb $MIRROR $SUITE main" > "$WORK/etc/apt/sources.list"
echo "deb $MIRROR $SUITE-updates main" >> "$WORK/etc/apt/sources.list"
# no daemon starts inside the chroot (policy-rc.d 101: action forbidden)
printf '#!/bin/sh\nexit 101\n' > "$WORK/usr/sbin/policy-rc.d"; chmod 0755 "$WORK/usr/sbin/policy-rc.d"
echo "built_s=$(($(date +%s) - t0))" > "$WORK/.done"
mv "$WORK" "$ROOT"
trap - EXIT
log "built $ROOT in $(($(date +%s) - t0)) s"
echo "$ROOT"
