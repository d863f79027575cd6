#!/bin/sh
# Install the Debian packages listed in a file, only those missing (quiet
# when everything is there).  Usage: scripts/deps.sh scripts/apt-packages.txt
set -eu
list=$(grep -v '^#' "$1" | grep -v '^$')
missing=""
for p in $list; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "hasupd: these Debian packages are missing and I am not root:$missing" >&2
    exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing >/dev/null
