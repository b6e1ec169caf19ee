#!/usr/bin/env bash
# Installs Debian packages with apt, as root: what every setup script uses. apt is machine-wide, and a second apt
# beside a running one fails at once on dpkg's lock, so two runs' setups (two clones on a fresh machine) wait here
# for each other on /tmp/sr-apt.lock, and for any other apt on dpkg's lock (up to 10 min).
# Usage: scripts/apt-install.sh PACKAGE...
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
exec {lock}>/tmp/sr-apt.lock
flock "$lock"
apt-get update -qq -o DPkg::Lock::Timeout=600
apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 "$@" >/dev/null
