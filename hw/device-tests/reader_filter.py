"""pytest plugin for hw/yubico-device-tests: show ykman one reader only.

Every vpcd entry of the rig's pcscd gives two readers named like a YubiKey,
`NAME 00 00` (the key) and an always-empty `NAME 00 01`, and the rig holds
several keys side by side. ykman (`--device SERIAL`, and the suite's own
`list_all_devices`) opens every reader whose name contains "Yubico YubiKey":
about 3 s on each empty one, and another key's reader may be held by the
pytest run next door. yubikit has no setting that narrows the list, so this
plugin narrows pyscard's reader list itself, for the whole pytest process
(the CLI tests run ykman in-process), to the reader named in
$YDT_READER.

It also skips, saying so, the tests that need the key's USB HID interfaces
(OTP, FIDO): the virtual key is reached through pcscd only, yet its reader
is named "OTP+FIDO+CCID" (so ykman accepts it), from which ykman concludes
those interfaces exist.
"""

import os

import pytest
import smartcard.System

NEEDS_HID = {
    # Opens OTP and FIDO connections besides CCID.
    "tests/device/test_interfaces.py::test_switch_interfaces",
}


def _install(reader_name):
    original = smartcard.System.readers

    def readers(*args, **kwargs):
        return [r for r in original(*args, **kwargs) if str(r) == reader_name]

    smartcard.System.readers = readers


def pytest_configure(config):
    reader_name = os.environ.get("YDT_READER")
    if not reader_name:
        raise RuntimeError("YDT_READER (the key's reader name) is not set")
    _install(reader_name)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid in NEEDS_HID:
            item.add_marker(pytest.mark.skip(reason="needs USB HID (OTP/FIDO interfaces)"))
