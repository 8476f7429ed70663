"""Entry point for ``python -m appliance`` and the frozen one-file binary."""

import sys

from appliance.cli import main

if __name__ == "__main__":
    sys.exit(main())
