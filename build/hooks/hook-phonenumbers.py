"""PyInstaller hook for phonenumbers that leaves out the geocoding, carrier and time zone data.

It replaces the hook in pyinstaller-hooks-contrib, which bundles every submodule.
The appliance only parses and formats numbers, so the region metadata under
phonenumbers.data and phonenumbers.shortdata is all it needs; the rest is about
3.5 MiB of compressed modules (phonenumbers 9.0) unpacked on every start.
"""

from PyInstaller.utils.hooks import collect_submodules

UNUSED = ("phonenumbers.geodata", "phonenumbers.carrierdata", "phonenumbers.tzdata",
          "phonenumbers.geocoder", "phonenumbers.carrier", "phonenumbers.timezone")

hiddenimports = collect_submodules(
    "phonenumbers", filter=lambda name: not name.startswith(UNUSED))
