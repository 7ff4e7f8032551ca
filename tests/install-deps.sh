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
#  * Server add-ons unpacked next to their server: ProFTPD's mod_tls (FTPS)
#    comes in proftpd-mod-crypto, whose version must equal proftpd-core's.
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
  python3-scapy python3-openssl bpftool tcpdump nftables ethtool openssl
  systemd
)

# "<debian package>:<server name>": the binary is usr/sbin/<server name>.
SERVER_PACKAGES=(
  vsftpd:vsftpd
  pure-ftpd:pure-ftpd
  proftpd-core:proftpd
)

# "<debian package>:<server name>:<file it provides>": unpacked into the
# server's directory at exactly the server package's version.
SERVER_ADDONS=(
  proftpd-mod-crypto:proftpd:usr/lib/proftpd/mod_tls.so
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

# Downloads package spec $2 (`pkg` or `pkg=version`) into directory $1,
# retrying once after `apt-get update`.
download_deb() {
  local dir=$1 spec=$2
  log "downloading $spec"
  if ! (cd "$dir" && apt-get download -qq -o APT::Sandbox::User=root "$spec" 2>/dev/null); then
    apt_update_once
    (cd "$dir" && apt-get download -qq -o APT::Sandbox::User=root "$spec")
  fi
}

# Downloads and unpacks one server package unless already present; records
# its library dependencies in <dir>/.lib-depends and its version in
# <dir>/.version.
unpack_server() {
  local pkg=$1 name=$2
  local dest="$SERVERS_DIR/$name"
  local binary="$dest/usr/sbin/$name"
  if [[ -x $binary && -f $dest/.lib-depends ]]; then
    return
  fi
  local tmp
  tmp=$(mktemp -d)
  download_deb "$tmp" "$pkg"
  local deb
  deb=$(ls "$tmp"/*.deb)
  rm -rf "$dest"
  mkdir -p "$dest"
  dpkg-deb -x "$deb" "$dest"
  library_depends "$deb" >"$dest/.lib-depends"
  dpkg-deb -f "$deb" Version >"$dest/.version"
  rm -rf "$tmp"
  log "unpacked $pkg into $dest"
}

# Prints the Debian version of the package unpacked into server directory
# $1: <dir>/.version, or for older unpacks the head of the changelog of
# its main package $2.
server_version() {
  local dest=$1 pkg=$2
  if [[ -s $dest/.version ]]; then
    cat "$dest/.version"
    return
  fi
  local changelog="$dest/usr/share/doc/$pkg/changelog.Debian.gz"
  [[ -f $changelog ]] || return 1
  zcat "$changelog" | head -n 1 | sed -n 's/^[^(]*(\([^)]*\)).*/\1/p'
}

# Unpacks add-on package $1 into the directory of server $2 at the
# server's exact version, unless file $3 is already there; records its
# library dependencies in <dir>/.lib-depends-$1.
unpack_addon() {
  local pkg=$1 name=$2 marker=$3 server_pkg=$4
  local dest="$SERVERS_DIR/$name"
  if [[ -f $dest/$marker && -f $dest/.lib-depends-$pkg ]]; then
    return
  fi
  local version
  if ! version=$(server_version "$dest" "$server_pkg") || [[ -z $version ]]; then
    log "cannot tell the version of $server_pkg in $dest; remove it and rerun"
    exit 1
  fi
  local tmp
  tmp=$(mktemp -d)
  if ! download_deb "$tmp" "$pkg=$version"; then
    rm -rf "$tmp"
    log "$pkg=$version is not available; remove $dest and rerun to fetch both anew"
    exit 1
  fi
  local deb
  deb=$(ls "$tmp"/*.deb)
  dpkg-deb -x "$deb" "$dest"
  library_depends "$deb" >"$dest/.lib-depends-$pkg"
  rm -rf "$tmp"
  log "unpacked $pkg=$version into $dest"
}

# The Debian package that provides server $1 (from SERVER_PACKAGES).
server_package() {
  local entry
  for entry in "${SERVER_PACKAGES[@]}"; do
    if [[ ${entry##*:} == "$1" ]]; then
      printf '%s\n' "${entry%%:*}"
      return
    fi
  done
  return 1
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

# Unpacks package $1 into $SERVERS_DIR/$2 unless file $3 is there, only
# its members $4... when given. For tools the tests run without installing
# them: promtool alone from prometheus (a Go program needing only libc; no
# server, no service), fail2ban's Python (no service started).
unpack_tool() {
  local pkg=$1 name=$2 marker=$3
  shift 3
  local dest="$SERVERS_DIR/$name"
  if [[ -x $dest/$marker ]]; then
    return
  fi
  local tmp deb
  tmp=$(mktemp -d)
  download_deb "$tmp" "$pkg"
  deb=$(ls "$tmp"/*.deb)
  mkdir -p "$dest"
  if [[ $# -gt 0 ]]; then
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dest" "$@"
  else
    dpkg-deb -x "$deb" "$dest"
  fi
  rm -rf "$tmp"
  log "unpacked $pkg into $dest"
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
  local rest marker
  for entry in "${SERVER_ADDONS[@]}"; do
    pkg=${entry%%:*}
    rest=${entry#*:}
    name=${rest%%:*}
    marker=${rest#*:}
    unpack_addon "$pkg" "$name" "$marker" "$(server_package "$name")"
    mapfile -t -O "${#libs[@]}" libs <"$SERVERS_DIR/$name/.lib-depends-$pkg"
  done
  apt_install_missing "${libs[@]}"
  for entry in "${SERVER_PACKAGES[@]}"; do
    name=${entry##*:}
    check_libraries "$SERVERS_DIR/$name/usr/sbin/$name"
  done
  for entry in "${SERVER_ADDONS[@]}"; do
    rest=${entry#*:}
    check_libraries "$SERVERS_DIR/${rest%%:*}/${rest#*:}"
  done
  unpack_tool prometheus prometheus usr/bin/promtool ./usr/bin/promtool
  unpack_tool fail2ban fail2ban usr/bin/fail2ban-regex
  ensure_ftp_user
  ensure_bpffs
  log "ok (servers in $SERVERS_DIR)"
}

main "$@"
