#!/usr/bin/env bash
# Usage: deps.sh
# Installs what the tests need beyond Go: nginx, which the integration
# tests run on loopback (internal/nginxtest). Quick when it is there
# already; as root it installs Debian's nginx-light when it is missing,
# otherwise it fails with the command to run.
set -euo pipefail

have_nginx() {
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || [ -x /usr/local/sbin/nginx ]
}

have_nginx && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "deps: nginx is missing, and the tests need it; install it as root: apt-get install nginx-light" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "deps: nginx is missing, and the tests need it; this system has no apt-get: install nginx with its package manager" >&2
  exit 1
fi
echo "deps: installing nginx-light" >&2
apt-get update -qq
# Releases without nginx-light have nginx itself.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
have_nginx || { echo "deps: nginx-light was installed, but no nginx binary is found" >&2; exit 1; }
