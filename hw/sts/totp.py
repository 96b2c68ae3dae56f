"""RFC 6238 TOTP as AWS's virtual MFA devices use it: SHA-1, 6 digits, 30 s.

AWS takes a code of the current time step or one step either side (clock
drift between the device and AWS), and each code only once per device.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import threading

STEP_SECONDS = 30
DIGITS = 6
# Steps either side of "now" that are still accepted.
WINDOW = 1


def seed_bytes(base32_seed: str) -> bytes:
    s = base32_seed.strip().upper()
    return base64.b32decode(s + "=" * (-len(s) % 8))


def code(seed: bytes, step: int) -> str:
    """RFC 4226 HOTP of the counter `step` (RFC 6238: counter = time / 30)."""
    mac = hmac.new(seed, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**DIGITS).zfill(DIGITS)


def current_step(now: float) -> int:
    return int(now // STEP_SECONDS)


def matching_step(seed: bytes, given: str, now: float) -> int | None:
    """The step within the window whose code is `given`, if any."""
    here = current_step(now)
    for step in range(here - WINDOW, here + WINDOW + 1):
        if hmac.compare_digest(code(seed, step), given):
            return step
    return None


class UsedCodes:
    """Which (device, step) pairs AWS has already taken a code for.

    Keyed by the device's seed as well as its serial: a device deleted and
    created again under the same name is a new device with a new seed, and
    its codes have never been used.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._used: set[tuple[str, str, int]] = set()

    def take(self, serial: str, seed: str, step: int) -> bool:
        """Mark the step used; False if it already was."""
        key = (serial, hashlib.sha256(seed.encode()).hexdigest(), step)
        with self._lock:
            if key in self._used:
                return False
            self._used.add(key)
            return True
