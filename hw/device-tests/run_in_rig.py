"""Inside a rig: run Yubico's device tests on several virtual keys at once.

Called by hw/yubico-device-tests (which fetches the suite and starts the
rig): python3 run_in_rig.py SUITE_DIR OUT_DIR [PYTEST ARGS...].

Each firmware personality in $YDT_FIRMWARE (default "5.4.3 5.7.4") gets
its own keys and its own queue of test files, so the personalities run
side by side: slot 0 holds the rig's own key (used for its firmware,
$VAULT_RIG_FIRMWARE); each further slot ($VAULT_RIG_SLOTS) gets a new
factory-fresh key, the personalities taking turns. Each key has a queue
worker that runs one pytest per test file of its personality, longest
files first. Each pytest sees only its key's reader (reader_filter.py) and is
pointed at it with --device SERIAL, as the suite's conftest asks. The
results come from each run's JUnit XML: passed/failed/skipped, every skip
reason, every failure's first line. Exit status 1 on any failure, error,
or skip whose reason is not allowed for its firmware (allowed_skips);
results are reported per personality.
"""

import os
import queue
import re
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent

# The files that cover what the virtual key emulates (PIV, OATH, the
# Management applet, ykman's CLI over them), as work items, longest first
# so the queue ends evenly; the three longest are split in two by a -k
# expression and its negation, so together they still run every test. The
# other files are for applets it does not have (OpenPGP, OTP, YubiHSM
# Auth, SCP, FIDO over HID).
PIV_SLOW = "TestMetadata or TestKeyManagement"
OATH_CLI = "TestOATH and not TestOathFips"  # -k is case-insensitive
WORK = [
    ("tests/device/cli/test_oath.py", OATH_CLI),
    ("tests/device/cli/piv/test_generate_cert_and_csr.py", "TestProtectedMgmKey"),
    ("tests/device/cli/piv/test_generate_cert_and_csr.py", "not TestProtectedMgmKey"),
    ("tests/device/test_piv.py", f"not ({PIV_SLOW})"),
    ("tests/device/test_piv.py", PIV_SLOW),
    ("tests/device/cli/piv/test_key_management.py", None),
    ("tests/device/cli/test_config.py", None),
    ("tests/device/cli/piv/test_management_key.py", None),
    ("tests/device/cli/piv/test_pin_puk.py", None),
    ("tests/device/cli/test_oath.py", f"not ({OATH_CLI})"),
    ("tests/device/test_oath.py", None),
    ("tests/device/cli/piv/test_misc.py", None),
    ("tests/device/cli/piv/test_read_write_object.py", None),
    ("tests/device/cli/piv/test_fips.py", None),
    ("tests/device/cli/test_misc.py", None),
    ("tests/device/test_ccid.py", None),
    ("tests/device/test_interfaces.py", None),
]

# Skips a real YubiKey 5 NFC gets too over USB, on either firmware: tests
# for other models (YubiKey 4 FIPS, YubiKey Bio), for firmware the suite
# gates by version (5.7's key types, PIN complexity, MOVE/DELETE; before
# 5.3: no ROCA, no certificate-verify export), and those reachable only
# over USB HID (reader_filter.py skips them). Anything else skipped is a
# gap in the emulation and fails the run.
ALLOWED_SKIPS = [
    r"^needs USB HID",
    r"^Requires YK4 FIPS = True$",
    r"^Requires YubiKey Bio with PIV$",
    r"^Version [<>] \(\d+, \d+, \d+\)$",
    r"^Not ROCA affected$",
]
# What only a key before 5.7 lacks: on the 5.7.4 personality these are
# failures of the emulation.
ALLOWED_SKIPS_BEFORE_5_7 = [
    r"^(ED25519|X25519|RSA3072|RSA4096) requires YubiKey 5\.7 or later$",
    r"^Requires YubiKey with PIN complexity enabled$",
]


def is_5_7(firmware):
    return tuple(int(x) for x in firmware.split(".")) >= (5, 7, 0)


def allowed_skips(firmware):
    if not is_5_7(firmware):
        return ALLOWED_SKIPS + ALLOWED_SKIPS_BEFORE_5_7
    return ALLOWED_SKIPS


# Tests the suite runs only on prerelease firmware (version qualifier not
# FINAL), skipped on any released key with a bare "Condition not satisfied".
PRERELEASE_ONLY = [
    r"\.TestPinComplexity::test_invalid_pins_prerelease\[",
]


def skip_allowed(firmware, name, reason):
    if any(re.search(p, reason) for p in allowed_skips(firmware)):
        return True
    return reason == "Condition not satisfied" and any(
        re.search(p, name) for p in PRERELEASE_ONLY
    )


def reader_name(slot):
    name = "Yubico YubiKey OTP+FIDO+CCID"
    if slot:
        name += f" #{slot}"
    return name + " 00 00"


def start_keys(out, firmwares):
    """The keys to test on: [(serial, reader, firmware)]. Slot 0 holds the
    rig's own key (VAULT_RIG_FIRMWARE), used when its firmware is asked
    for; each further slot gets a new key, the personalities taking turns,
    so each gets about the same number of keys and they run side by side."""
    slots = int(os.environ["VAULT_RIG_SLOTS"])
    base = int(os.environ["VAULT_RIG_VPCD_BASE_PORT"])
    rig_fw = os.environ.get("VAULT_RIG_FIRMWARE", "5.4.3")
    keys = []
    # 5.7 keys are started with PIN complexity (so Yubico's complexity tests
    # run); the rig's own key has none, so it serves only a 5.4.3 run.
    if rig_fw in firmwares and not is_5_7(rig_fw):
        keys.append((int(os.environ["VAULT_RIG_SERIAL"]), reader_name(0), rig_fw))
    for slot in range(1, slots):
        # Fill the personality with the fewest keys so far.
        firmware = min(firmwares, key=lambda f: (sum(k[2] == f for k in keys), firmwares.index(f)))
        serial = 40_000_000 + int(os.environ["VAULT_RIG_SERIAL"]) % 1_000_000 * 10 + slot
        d = out / f"key{slot}"
        d.mkdir(parents=True, exist_ok=True)
        # Lives until the rig ends: its PID namespace ends with it.
        subprocess.Popen(
            [
                "virtual-yubikey", "run", "--state", str(d / "state.json"),
                "--serial", str(serial), "--vpcd", f"127.0.0.1:{base + 2 * slot}",
                "--control", str(d / "control.sock"), "--log", str(d / "apdu.log"),
                "--firmware", firmware,
                *(["--pin-complexity"] if is_5_7(firmware) else []),
            ],
            stdin=subprocess.DEVNULL,
            stdout=open(d / "stderr.log", "w"),
            stderr=subprocess.STDOUT,
        )
        keys.append((serial, reader_name(slot), firmware))
    for serial, reader, _ in keys:
        subprocess.run(
            ["virtual-yubikey", "wait", "--reader", reader, "--timeout-ms", "20000"],
            check=True,
        )
    missing = [f for f in firmwares if not any(k[2] == f for k in keys)]
    if missing:
        sys.exit(f"run_in_rig: no slot left for firmware {', '.join(missing)}: raise VAULT_RIG_SLOTS")
    return keys


def run_item(suite, out, serial, reader, firmware, n, item, extra):
    test_file, kexpr = item
    stem = f"{firmware}-{n:02}-" + test_file.replace("/", "_").removesuffix(".py")
    xml = out / f"{stem}.xml"
    env = dict(os.environ)
    env["YDT_READER"] = reader
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    # The suite sleeps this long after each reboot of the key (2 s by
    # default, for USB re-enumeration); the virtual key is back at once.
    env.setdefault("REBOOT_TIME", "0.2")
    started = time.monotonic()
    with open(out / f"{stem}.log", "w") as log:
        rc = subprocess.call(
            [
                sys.executable, "-m", "pytest", "-p", "reader_filter", "-p", "no:cacheprovider",
                "-q", "-rfEs", "--device", str(serial), f"--junitxml={xml}", test_file,
                *(["-k", kexpr] if kexpr else []), *extra,
            ],
            cwd=suite, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
    return xml, rc, time.monotonic() - started


def main():
    suite, out, extra = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    firmwares = os.environ.get("YDT_FIRMWARE", "5.4.3 5.7.4").split()
    out.mkdir(parents=True, exist_ok=True)
    keys = start_keys(out, firmwares)
    work = {f: queue.Queue() for f in firmwares}
    for f in firmwares:
        for n, item in enumerate(WORK):
            work[f].put((n, item))
    results = []
    lock = threading.Lock()

    def worker(serial, reader, firmware):
        while True:
            try:
                n, item = work[firmware].get_nowait()
            except queue.Empty:
                return
            xml, rc, secs = run_item(suite, out, serial, reader, firmware, n, item, extra)
            f = item[0] + (f" -k {item[1]!r}" if item[1] else "")
            with lock:
                results.append((firmware, f, xml, rc, secs, serial))

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=k) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started

    status = 0
    for firmware in firmwares:
        status |= report(firmware, [r[1:] for r in results if r[0] == firmware], keys, out)
    print(f"yubico-device-tests: {wall:.0f} s for {', '.join(firmwares)} side by side")
    return status


def report(firmware, results, keys, out):
    """Prints one personality's results; 1 on a failure or a skip not allowed."""
    passed, failed, skipped, bad_skips = 0, [], [], []
    for f, xml, rc, secs, serial in sorted(results):
        print(f"  [{firmware}] {f}: {secs:.0f} s on key {serial} (pytest exit {rc})")
        if not xml.exists():
            failed.append((f, f"no results (pytest exit {rc}; see {xml.with_suffix('.log')})"))
            continue
        for case in ET.parse(xml).getroot().iter("testcase"):
            name = f"{case.get('classname')}::{case.get('name')}"
            bad = case.find("failure")
            if bad is None:
                bad = case.find("error")
            skip = case.find("skipped")
            if bad is not None:
                failed.append((name, (bad.get("message") or "").splitlines()[0][:160]))
            elif skip is not None:
                reason = (skip.get("message") or "").removeprefix("Skipped: ")
                skipped.append((name, reason))
                if not skip_allowed(firmware, name, reason):
                    bad_skips.append((name, reason))
            else:
                passed += 1
        if rc not in (0, 1, 5):  # 5: nothing collected after -k
            failed.append((f, f"pytest exit {rc}; see {xml.with_suffix('.log')}"))

    for name, reason in skipped:
        mark = "SKIP (not allowed)" if (name, reason) in bad_skips else "skip"
        print(f"[{firmware}] {mark} {name}: {reason}")
    for name, msg in failed:
        print(f"[{firmware}] FAIL {name}: {msg}")
    n_keys = sum(k[2] == firmware for k in keys)
    print(
        f"yubico-device-tests {firmware}: {passed} passed, {len(failed)} failed, "
        f"{len(skipped)} skipped ({len(bad_skips)} for a reason not allowed) on {n_keys} "
        f"virtual keys; logs in {out}"
    )
    return 1 if failed or bad_skips else 0


if __name__ == "__main__":
    sys.exit(main())
