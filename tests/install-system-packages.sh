#!/usr/bin/env bash
# Install the Debian packages named in tests/system-packages.txt that are missing.
# Without root it only reports what is missing; tests that need them then skip.
set -euo pipefail
cd "$(dirname "$0")"

missing=()
while read -r package _; do
  case "$package" in ""|\#*) continue ;; esac
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$package")
  fi
done < system-packages.txt

[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "not installed (tests that need them will skip): ${missing[*]}" >&2
  exit 0
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
