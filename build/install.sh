#!/usr/bin/env bash
# Install Phonebook Appliance as a systemd service, or remove it.
#
# Usage: install.sh [--root DIR] [--binary FILE] [--no-start]
#        install.sh --uninstall [--purge] [--root DIR]
#   --root DIR     install below DIR instead of / (also read from DESTDIR);
#                  below another root no user is created, nothing is chowned
#                  and systemctl is not called
#   --binary FILE  the executable to install (default: phonebook-appliance
#                  beside this script, else ../dist/phonebook-appliance)
#   --no-start     install and enable, but do not (re)start the service
#   --uninstall    stop and remove the binary, unit and user definition; the
#                  config, data and logs stay unless --purge is given too
#   --purge        with --uninstall: also remove config, data, logs and user
#
# Running it again with a newer binary upgrades in place: the config file is
# never overwritten and the service is restarted.
set -euo pipefail

name=phonebook-appliance
user=phonebook
here=$(cd "$(dirname "$0")" && pwd)

root=${DESTDIR:-/}
binary=""
action=install
start=yes
purge=no

fail() { echo "install.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || fail "--root needs a folder"; root=$2; shift ;;
    --root=*) root=${1#--root=} ;;
    --binary) [ $# -ge 2 ] || fail "--binary needs a file"; binary=$2; shift ;;
    --binary=*) binary=${1#--binary=} ;;
    --no-start) start=no ;;
    --uninstall) action=uninstall ;;
    --purge) purge=yes ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) fail "unknown option $1 (see --help)" ;;
  esac
  shift
done
[ "$purge" = no ] || [ "$action" = uninstall ] || fail "--purge only goes with --uninstall"

mkdir -p "$root" || fail "cannot create the root folder $root"
root=$(cd "$root" && pwd)
prefix=${root%/}  # "" for the real root, so paths read /etc/..., not //etc/...
on_real_root=no
[ "$root" = / ] && on_real_root=yes
systemd_running=no
[ "$on_real_root" = yes ] && [ -d /run/systemd/system ] && systemd_running=yes

bin_path=$prefix/usr/local/bin/$name
unit_path=$prefix/etc/systemd/system/$name.service
sysusers_path=$prefix/etc/sysusers.d/$name.conf
doc_dir=$prefix/usr/local/share/doc/$name
config_dir=$prefix/etc/$name
state_dir=$prefix/var/lib/$name
log_dir=$prefix/var/log/$name

if [ "$on_real_root" = yes ] && [ "$(id -u)" -ne 0 ]; then
  fail "installing into / needs root: run it with sudo"
fi

find_file() {  # first existing file among the arguments
  for candidate in "$@"; do
    [ -f "$candidate" ] && { echo "$candidate"; return 0; }
  done
  return 1
}

uninstall() {
  if [ "$systemd_running" = yes ]; then
    systemctl disable --now "$name.service" 2>/dev/null || true
  fi
  rm -f "$bin_path" "$unit_path" "$sysusers_path"
  rm -rf "$doc_dir"
  if [ "$systemd_running" = yes ]; then
    systemctl daemon-reload
  fi
  if [ "$purge" = yes ]; then
    rm -rf "$config_dir" "$state_dir" "$log_dir"
    if [ "$on_real_root" = yes ] && id "$user" >/dev/null 2>&1; then
      userdel "$user"
    fi
    echo "removed $name with its config, data, logs and user"
  else
    echo "removed $name; kept $config_dir, $state_dir and $log_dir (--purge removes them)"
  fi
}

create_user() {
  id "$user" >/dev/null 2>&1 && return 0
  if command -v systemd-sysusers >/dev/null; then
    systemd-sysusers "$sysusers_path"
  else
    useradd --system --user-group --home-dir "/var/lib/$name" --no-create-home \
      --shell /usr/sbin/nologin --comment "Phonebook Appliance" "$user"
  fi
}

install_binary() {
  if [ -z "$binary" ]; then
    binary=$(find_file "$here/$name" "$here/../dist/$name") \
      || fail "no $name executable beside this script or in ../dist: build it with build/build.sh or give --binary FILE"
  fi
  [ -f "$binary" ] || fail "executable $binary not found"
  if ! version=$("$binary" --version 2>&1); then
    fail "$binary does not run on this machine ($(uname -m)); build it here with build/build.sh. It said: $version"
  fi
  # A new file renamed over the old one, so a running service keeps its copy.
  install -D -m 0755 "$binary" "$bin_path.new"
  mv -f "$bin_path.new" "$bin_path"
  echo "installed ${version%%$'\n'*} as $bin_path"
}

install_files() {
  local unit docs
  unit=$(find_file "$here/$name.service") || fail "$name.service not found beside this script"
  install -D -m 0644 "$unit" "$unit_path"

  mkdir -p "$(dirname "$sysusers_path")"
  printf 'u %s - "Phonebook Appliance" /var/lib/%s /usr/sbin/nologin\n' "$user" "$name" \
    >"$sysusers_path"
  chmod 0644 "$sysusers_path"

  if docs=$(find_file "$here/INSTALL.md" "$here/../docs/install.md"); then
    install -D -m 0644 "$docs" "$doc_dir/install.md"
  fi
}

install_folders() {
  # The config folder is readable by the service's group; data and logs hold
  # contacts and request details, so only the service user may enter them.
  install -d -m 0750 "$config_dir"
  install -d -m 0700 "$state_dir" "$log_dir" "$state_dir/tmp"

  # The config is written once and then belongs to the admin; the example is
  # refreshed on every install so new settings show up there.
  "$bin_path" init-config >"$config_dir/config.example.ini"
  chmod 0644 "$config_dir/config.example.ini"
  if [ ! -e "$config_dir/config.ini" ]; then
    "$bin_path" init-config --service >"$config_dir/config.ini.new"
    chmod 0640 "$config_dir/config.ini.new"
    mv "$config_dir/config.ini.new" "$config_dir/config.ini"
    echo "wrote $config_dir/config.ini"
  else
    echo "kept $config_dir/config.ini"
  fi

  if [ "$on_real_root" = yes ]; then
    chown -R "$user:$user" "$state_dir" "$log_dir"
    chown "root:$user" "$config_dir" "$config_dir/config.ini"
  fi
}

start_service() {
  if [ "$on_real_root" = no ]; then
    echo "installed below $root; on the box it runs with: systemctl enable --now $name"
    return 0
  fi
  if [ "$systemd_running" = no ]; then
    echo "systemd is not running here: start $bin_path by hand, as docs/install.md shows"
    return 0
  fi
  systemctl daemon-reload
  systemctl enable "$name.service"
  if [ "$start" = yes ]; then
    systemctl restart "$name.service"
    echo "started $name.service; see: systemctl status $name"
  fi
}

if [ "$action" = uninstall ]; then
  uninstall
  exit 0
fi
install_binary
install_files
if [ "$on_real_root" = yes ]; then
  create_user
fi
install_folders
start_service
