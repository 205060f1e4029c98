#!/usr/bin/env bash
# Installs what gpu-usage needs on a Debian 12 machine, as root: Slurm (slurmctld,
# slurmd, slurmdbd, client, slurmrestd; debootstrap for the other releases), munge, MariaDB, Python 3.11+ with venv; then makes
# ./.venv and installs the project into it with the extras given as arguments
# (default: testcluster; "test" adds Chromium and poppler-utils). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-testcluster}"

say() { printf '\n== %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "setup-debian.sh: run as root (it installs Debian packages)" >&2
  exit 1
fi

apt_packages=(slurmctld slurmd slurmdbd slurm-client slurmrestd slurm-wlm-jwt-plugin munge
              mariadb-server mariadb-client debootstrap
              python3 python3-venv python3-pip util-linux passwd procps
              prometheus systemd fonts-dejavu-core)
# The tests also need a real headless browser and PDF tools (Debian's own Chromium,
# never a downloaded one), and a real reverse proxy in front of the dashboard (nginx).
# ... and Slurm 25.11, which no Debian release carries, built from its verified source
# (testcluster/slurmbuild.py), with pyslurm built against it (Python's headers);
# and Java for Apache Spark, which reads the network export in a test.
case ",$extras," in
  *,test,*) apt_packages+=(chromium chromium-driver poppler-utils nginx-light
                           build-essential pkg-config libmunge-dev libmariadb-dev
                           libjson-c-dev libhttp-parser-dev libjwt-dev libyaml-dev
                           libdbus-1-dev python3-dev openjdk-17-jre-headless) ;;
esac
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Package scripts must not start the system's own munge/MariaDB/Slurm services.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d.gpu-usage
  chmod +x /usr/sbin/policy-rc.d.gpu-usage
  [ -e /usr/sbin/policy-rc.d ] || ln -s /usr/sbin/policy-rc.d.gpu-usage /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$(readlink /usr/sbin/policy-rc.d 2>/dev/null)" = /usr/sbin/policy-rc.d.gpu-usage ]; then
    rm -f /usr/sbin/policy-rc.d
  fi
  rm -f /usr/sbin/policy-rc.d.gpu-usage
fi

python=""
for candidate in python3.13 python3.12 python3.11 python3; do
  if command -v "$candidate" >/dev/null &&
     "$candidate" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    python="$candidate"; break
  fi
done
if [ -z "$python" ]; then
  echo "setup-debian.sh: no Python 3.11+ with the venv module found" >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  say "making .venv with $($python --version)"
  "$python" -m venv .venv
fi
say "installing gpu-usage[$extras] into .venv"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# compat: the checkout itself on sys.path (a .pth line), not setuptools' import hook,
# which every command would import first (about 20 ms of each start).
.venv/bin/python -m pip install -q -e ".[$extras]" --config-settings editable_mode=compat
echo "ready: $(.venv/bin/gpu-usage --version); Slurm $(dpkg-query -W -f='${Version}' slurm-client)"
