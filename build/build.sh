#!/usr/bin/env bash
# Build the one-file executable dist/phonebook-appliance for this machine.
#
# The binary runs on the OS, CPU architecture and C library it is built on: run
# this script on x86_64 Linux for a NUC and on 64-bit Raspberry Pi OS for a Pi.
#
# Usage: build/build.sh [--clean]
#   --clean   make the build venv and PyInstaller's work folder anew
# Environment:
#   PYTHON    interpreter the build venv is made from (default: python3); it
#             needs its shared library (libpython3.11.so), as Debian's has
#
# Writes dist/phonebook-appliance, dist/phonebook-appliance.size.txt and the
# release archive dist/phonebook-appliance-VERSION-linux-ARCH.tar.gz.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/build/work"
venv="$work/venv"
dist="$root/dist"
python=${PYTHON:-python3}
clean=no

for argument in "$@"; do
  case "$argument" in
    --clean) clean=yes ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown option $argument (expected --clean or --help)" >&2; exit 2 ;;
  esac
done

for tool in objdump strip; do
  if ! command -v "$tool" >/dev/null; then
    echo "build.sh: $tool not found; PyInstaller needs it: apt-get install binutils" >&2
    exit 1
  fi
done

mkdir -p "$work" "$dist"
# Builds started at the same time in one checkout share the work folder and
# would overwrite each other's files, so each waits for the one before it.
exec 9>"$work/build.lock"
flock 9

started=$(date +%s)
cd "$root"

# The build venv holds only the runtime packages and the pinned PyInstaller, so
# nothing from a development venv can slip into the bundle. It is made anew
# whenever a pin or the interpreter changes.
build_pins=$(grep -iE '^pyinstaller(-hooks-contrib)?==' tests/requirements.txt || true)
if ! grep -qiE '^pyinstaller==' <<<"$build_pins"; then
  echo "build.sh: tests/requirements.txt pins no pyinstaller==VERSION" >&2
  exit 1
fi
stamp=$({ "$python" -c 'import sys; print(sys.version)'; cat requirements.txt; echo "$build_pins"; } \
  | sha256sum | cut -d' ' -f1)
if [ "$clean" = yes ] || [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "build venv: creating $venv"
  rm -rf "$venv" "$work/pyinstaller"
  "$python" -m venv "$venv"
  # shellcheck disable=SC2086  # one pin per word
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt $build_pins
  echo "$stamp" >"$venv/.stamp"
else
  echo "build venv: reusing $venv (pins unchanged)"
fi

# Build details that --version prints. SOURCE_DATE_EPOCH, when set, fixes the
# build date, as reproducible-build tooling expects.
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo "")
if [ -n "$commit" ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  commit="$commit-dirty"
fi
if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
  build_date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
else
  build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
fi
export PHONEBOOK_BUILD_INFO="$work/build_info.json"
COMMIT="$commit" BUILD_DATE="$build_date" "$venv/bin/python" - <<'EOF' >"$PHONEBOOK_BUILD_INFO"
import json, os, platform
import PyInstaller

print(json.dumps({
    "commit": os.environ["COMMIT"],
    "build_date": os.environ["BUILD_DATE"],
    "pyinstaller": PyInstaller.__version__,
    "build_python": platform.python_version(),
    "build_machine": platform.machine(),
}, indent=2))
EOF

# Built aside and renamed into dist/, so a program running or copying the
# previous binary never sees a half-written file.
"$venv/bin/pyinstaller" --noconfirm --log-level WARN \
  --distpath "$work/dist" --workpath "$work/pyinstaller" pyinstaller.spec
binary="$dist/phonebook-appliance"
mv -f "$work/dist/phonebook-appliance" "$binary"
"$venv/bin/python" build/size_report.py "$binary" | tee "$dist/phonebook-appliance.size.txt"

# Release archive: what an admin downloads and unpacks on the box.
version=$("$binary" --version | sed -n '1s/^phonebook-appliance \([^ ]*\).*/\1/p')
arch=$(uname -m)
release="phonebook-appliance-$version-linux-$arch"
staging="$work/$release"
rm -rf "$staging"
mkdir -p "$staging"
cp "$binary" build/install.sh build/phonebook-appliance.service "$staging/"
[ -f config.example.ini ] && cp config.example.ini "$staging/"
[ -f docs/install.md ] && cp docs/install.md "$staging/INSTALL.md"
tar -C "$work" -czf "$dist/$release.tar.gz" "$release"
rm -rf "$staging"

echo "built $binary for $arch in $(( $(date +%s) - started )) s"
echo "release archive: $dist/$release.tar.gz"
