#!/usr/bin/env bash
# Install everything the tests need, then run the whole suite.
# System packages (tests/system-packages.txt) are installed with apt-get when this
# runs as root and they are missing; Python packages go into ./.venv.
# Extra arguments are passed to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/install-system-packages.sh
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
exec .venv/bin/python -m pytest "$@"
