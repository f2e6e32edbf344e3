#!/usr/bin/env bash
# Installs the OS packages altair's tests, sandbox and demo need, on Debian 12.
# Idempotent: does nothing (and needs no root) when everything is present.
set -euo pipefail

PACKAGES=(
  mariadb-server mariadb-client   # mariadbd, mariadb-install-db, mariadb-binlog
  zookeeper libslf4j-java         # the ZooKeeper server jar and its logger (pulls in a JRE)
  bind9 bind9-utils               # named, tsig-keygen, nsupdate, dig
  iproute2 nftables               # network namespaces and fault injection
  sysbench                        # the realistic write load of the tests and benchmarks
  haproxy                         # the client tier that follows DNS (deploy/haproxy)
  openssl curl                    # the console proxy's password hash; HTTP checks of the console
  chromium chromium-driver        # the web console's browser test (headless, WebDriver)
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "altair needs these Debian packages: ${missing[*]}" >&2
    echo "install them as root with:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  # Debian starts no daemon without systemd, but stop any that a package started: the
  # tests run their own instances.
  for svc in mariadb named zookeeper haproxy; do
    if command -v service >/dev/null 2>&1; then service "$svc" stop >/dev/null 2>&1 || true; fi
  done
fi

# The Rust toolchain comes from rustup and cannot be installed from here.
for tool in cargo rustfmt cargo-clippy; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "missing $tool: install the Rust toolchain with rustup (components rustfmt and clippy)" >&2
    exit 1
  fi
done
echo "dependencies OK"
