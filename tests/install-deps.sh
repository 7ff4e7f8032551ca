#!/usr/bin/env bash
# Installs everything the ftpct network-namespace test lab (crate ftpct-e2e)
# needs, idempotently. Safe to run repeatedly; runs `apt-get update` only
# when something actually has to be fetched.
#
#  * Debian packages: the clients and tools the lab runs.
#  * FTP servers: Debian's vsftpd, pure-ftpd and proftpd conflict with each
#    other as packages, so they are not apt-installed: each .deb is
#    downloaded and unpacked into $FTPCT_SERVERS_DIR/<name>/ (default
#    /root/.cache/ftpct/servers), and only their shared-library
#    dependencies are apt-installed.
#  * The `ftp` system user (vsftpd maps anonymous logins to it and needs its
#    home directory to exist).
#  * bpffs mounted at /sys/fs/bpf (ftpct pins its objects there).
#
# Must run as root.
set -euo pipefail

SERVERS_DIR="${FTPCT_SERVERS_DIR:-/root/.cache/ftpct/servers}"
export DEBIAN_FRONTEND=noninteractive

# Tools the lab runs.
APT_PACKAGES=(
  iproute2 util-linux procps curl lftp python3 python3-pyftpdlib
  python3-scapy bpftool tcpdump nftables ethtool openssl
)

# "<debian package>:<server name>": the binary is usr/sbin/<server name>.
SERVER_PACKAGES=(
  vsftpd:vsftpd
  pure-ftpd:pure-ftpd
  proftpd-core:proftpd
)

log() { printf 'install-deps: %s\n' "$*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
  log "must run as root"
  exit 1
fi

is_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

APT_UPDATED=0
apt_update_once() {
  if [[ $APT_UPDATED -eq 0 ]]; then
    log "apt-get update"
    apt-get update -qq
    APT_UPDATED=1
  fi
}

# Installs the given packages that are not installed yet.
apt_install_missing() {
  local missing=() pkg
  for pkg in "$@"; do
    is_installed "$pkg" || missing+=("$pkg")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    apt_update_once
    log "apt-get install ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# Prints the library packages among a .deb's Depends (first alternative of
# each, without version constraints).
library_depends() {
  dpkg-deb -f "$1" Depends \
    | tr ',' '\n' \
    | sed -e 's/|.*//' -e 's/(.*)//' -e 's/:any//' -e 's/[[:space:]]//g' \
    | grep '^lib' || true
}

# Downloads and unpacks one server package unless already present; records
# its library dependencies in <dir>/.lib-depends.
unpack_server() {
  local pkg=$1 name=$2
  local dest="$SERVERS_DIR/$name"
  local binary="$dest/usr/sbin/$name"
  if [[ -x $binary && -f $dest/.lib-depends ]]; then
    return
  fi
  local tmp
  tmp=$(mktemp -d)
  log "downloading $pkg"
  if ! (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "$pkg" 2>/dev/null); then
    apt_update_once
    (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "$pkg")
  fi
  local deb
  deb=$(ls "$tmp"/*.deb)
  rm -rf "$dest"
  mkdir -p "$dest"
  dpkg-deb -x "$deb" "$dest"
  library_depends "$deb" >"$dest/.lib-depends"
  rm -rf "$tmp"
  log "unpacked $pkg into $dest"
}

# Fails if a server binary still has unresolved shared libraries.
check_libraries() {
  local binary=$1
  if ldd "$binary" | grep -q 'not found'; then
    log "$binary has missing libraries:"
    ldd "$binary" | grep 'not found' >&2
    exit 1
  fi
}

ensure_ftp_user() {
  if ! getent passwd ftp >/dev/null; then
    log "creating system user ftp"
    useradd --system --home-dir /srv/ftp --no-create-home \
      --gid nogroup --shell /usr/sbin/nologin ftp
  fi
  local home
  home=$(getent passwd ftp | cut -d: -f6)
  if [[ ! -d $home ]]; then
    mkdir -p "$home"
    chmod 755 "$home"
  fi
}

ensure_bpffs() {
  if ! mountpoint -q /sys/fs/bpf; then
    log "mounting bpffs on /sys/fs/bpf"
    mount -t bpf bpf /sys/fs/bpf
  fi
}

main() {
  apt_install_missing "${APT_PACKAGES[@]}"
  mkdir -p "$SERVERS_DIR"
  local entry pkg name libs=()
  for entry in "${SERVER_PACKAGES[@]}"; do
    pkg=${entry%%:*}
    name=${entry##*:}
    unpack_server "$pkg" "$name"
    mapfile -t -O "${#libs[@]}" libs <"$SERVERS_DIR/$name/.lib-depends"
  done
  apt_install_missing "${libs[@]}"
  for entry in "${SERVER_PACKAGES[@]}"; do
    name=${entry##*:}
    check_libraries "$SERVERS_DIR/$name/usr/sbin/$name"
  done
  ensure_ftp_user
  ensure_bpffs
  log "ok (servers in $SERVERS_DIR)"
}

main "$@"
