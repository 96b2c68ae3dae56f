#!/usr/bin/env python3
"""An 8-hour workday of credential_process callers, inside a rig whose
clock is moved for vault and the strict STS alike (libfaketime, through
the file in VAULT_RIG_FAKETIME_FILE): run by hw/workday, not by hand.

Two worlds side by side in one run, each with its own IAM user, MFA device
(its seed in the virtual YubiKey's OATH applet, touch required) and
token-backed key profile (the IAM key wrapped by a PIV slot, touch
always), three role profiles on it, and the key profile itself; every
profile is asked for credentials (`vault exec P --json`, as the AWS CLI's
credential_process does) every 5 minutes from 9:00 to 17:00, half of the
calls from the rig's session keyring and half each from a session keyring
of its own (`keyctl session -`: another terminal, an IDE, an ssh login):
  - "vault": vault's defaults;
  - "aws-vault durations": the same, with aws-vault's documented default
    session lengths (AWS_SESSION_TOKEN_TTL=1h for the key profile itself,
    AWS_CHAINED_SESSION_TOKEN_TTL=8h as a role's source; roles 1 h).
Prints touches (PIV and OATH, from the virtual key's APDU log), MFA codes
sent and STS calls (from the STS's recording) per world, and fails if a
caller failed or got credentials that had already expired.
"""
import base64
import json
import os
import subprocess
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
VAULT = os.environ["WORKDAY_VAULT"]
FAKETIME_FILE = os.environ["VAULT_RIG_FAKETIME_FILE"]
LIBFAKETIME = os.environ["WORKDAY_LIBFAKETIME"]
STEP = 300  # a caller every 5 minutes
DAY = 8 * 3600
PROFILES = ["key", "r1", "r2", "r3"]


def set_offset(seconds: int) -> None:
    # Written whole and renamed: libfaketime re-reads it on every call.
    tmp = FAKETIME_FILE + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"+{seconds}s\n")
    os.replace(tmp, FAKETIME_FILE)


def faked_env(extra: dict) -> dict:
    env = dict(os.environ)
    env.update(
        LD_PRELOAD=LIBFAKETIME,
        FAKETIME_TIMESTAMP_FILE=FAKETIME_FILE,
        FAKETIME_NO_CACHE="1",
        FAKETIME_DONT_FAKE_MONOTONIC="1",
    )
    env.update(extra)
    return env


def run(args, env=None, stdin=None, check=True):
    p = subprocess.run(args, env=env, input=stdin, capture_output=True, text=True)
    if check and p.returncode != 0:
        sys.exit(f"workday: {' '.join(args[:4])}… failed ({p.returncode}):\n{p.stderr}")
    return p


def provision(spec: dict) -> dict:
    out = run([sys.executable, os.path.join(HERE, "sts", "provision.py")], stdin=json.dumps(spec))
    return json.loads(out.stdout)


class World:
    def __init__(self, name: str, tag: str, env: dict):
        self.name, self.tag, self.env = name, tag, env
        self.config = os.path.join(os.environ["VAULT_RIG_DIR"], f"config-{tag}")
        self.fails = 0
        self.expired = 0

    def setup(self):
        user = f"workday-{self.tag}"
        roles = [f"{r}-{self.tag}" for r in PROFILES[1:]]
        out = provision(
            {"users": [{"name": user, "mfa": True}], "roles": [{"name": r} for r in roles]}
        )
        u = out["users"][user]
        self.key_id, self.serial = u["access_key_id"], u["mfa_serial"]
        self.role_arns = [out["roles"][r]["arn"] for r in roles]
        lines = [f"[profile key-{self.tag}]", "region = eu-west-1", f"mfa_serial = {self.serial}"]
        for p, arn in zip(PROFILES[1:], self.role_arns):
            lines += [
                f"[profile {p}-{self.tag}]",
                f"source_profile = key-{self.tag}",
                f"role_arn = {arn}",
                f"mfa_serial = {self.serial}",
                "region = eu-west-1",
            ]
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        env = dict(os.environ, AWS_CONFIG_FILE=self.config)
        run(
            [VAULT, "add", f"key-{self.tag}", "--env"],
            env=dict(env, AWS_ACCESS_KEY_ID=u["access_key_id"], AWS_SECRET_ACCESS_KEY=u["secret_access_key"]),
        )
        run(
            [VAULT, "hw", "enroll", "--serial", os.environ["VAULT_RIG_SERIAL"], "--profile", f"key-{self.tag}",
             "--totp-secret", "-", "--mfa-serial", self.serial],
            env=env,
            stdin=u["seed"] + "\n",
        )

    def call(self, profile: str, fake_now: float, own_session: bool):
        env = faked_env(dict(self.env, AWS_CONFIG_FILE=self.config))
        argv = [VAULT, "exec", f"{profile}-{self.tag}", "--json"]
        if own_session:
            # A caller from another login (an IDE, an ssh session): a
            # session keyring of its own, sharing vault's per-user cache.
            argv = ["keyctl", "session", "-"] + argv
        p = run(argv, env=env, check=False)
        if p.returncode != 0:
            self.fails += 1
            print(f"workday: {self.name}: {profile} failed: {p.stderr.strip()}", file=sys.stderr)
            return
        exp = json.loads(p.stdout)["Expiration"]
        when = time.mktime(time.strptime(exp, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
        if when <= fake_now:
            self.expired += 1


def apdu_touches():
    counts = {"piv": 0, "oath": 0}
    with open(os.environ["VAULT_RIG_APDU_LOG"]) as f:
        for line in f:
            e = json.loads(line)
            if e.get("touch") == "given":
                counts[e.get("applet", "?")] = counts.get(e.get("applet", "?"), 0) + 1
    return counts


def sts_requests():
    with open(os.environ["VAULT_RIG_RECORDING"]) as f:
        lines = [json.loads(l) for l in f]
    assert lines and lines[0].get("event") == "started", "the STS recording has no started line"
    for e in lines[1:]:
        if "event" in e:
            continue
        body = base64.b64decode(e["body"]).decode() if e.get("body_encoded") else e.get("body", "")
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
        yield e, form


def main():
    worlds = [
        World("vault", "v", {}),
        World("aws-vault durations", "a", {"AWS_SESSION_TOKEN_TTL": "1h", "AWS_CHAINED_SESSION_TOKEN_TTL": "8h"}),
    ]
    os.environ.update(
        VAULT_ATTESTATION_ROOTS=os.environ["VAULT_RIG_ATTESTATION_ROOT"],
        VAULT_NEW_PIN="246810",
        VAULT_NEW_PUK="13579246",
        VAULT_PIN="246810",
    )
    set_offset(0)
    for w in worlds:
        w.setup()
    start_real = time.time()
    per_world = {w.name: {"piv": 0, "oath": 0} for w in worlds}
    for tick in range(0, DAY + 1, STEP):
        set_offset(tick)
        fake_now = time.time() + tick
        for w in worlds:
            t0 = apdu_touches()
            for i, p in enumerate(PROFILES):
                # Half the callers come from a session keyring of their own.
                w.call(p, fake_now, own_session=(tick // STEP + i) % 2 == 1)
            t1 = apdu_touches()
            for k in ("piv", "oath"):
                per_world[w.name][k] += t1.get(k, 0) - t0.get(k, 0)
    set_offset(0)
    # The sessions live in this uid's user keyring, shared with whatever
    # else runs beside this rig: clear exactly this run's own.
    for w in worlds:
        for p in PROFILES:
            run([VAULT, "clear", "--force", f"{p}-{w.tag}"], env=dict(os.environ, AWS_CONFIG_FILE=w.config))

    rows = []
    for w in worlds:
        codes = calls = gst = ar = refused = 0
        for e, form in sts_requests():
            action = form.get("Action")
            mine = form.get("SerialNumber") == w.serial or form.get("RoleArn") in w.role_arns or (
                w.key_id in e.get("headers", {}).get("Authorization", "")
            )
            if not mine or action not in ("GetSessionToken", "AssumeRole"):
                continue
            calls += 1
            gst += action == "GetSessionToken"
            ar += action == "AssumeRole"
            codes += "TokenCode" in form
            refused += e.get("status") != 200
        t = per_world[w.name]
        rows.append((w.name, t["piv"], t["oath"], t["piv"] + t["oath"], codes, calls, gst, ar, refused, w.fails, w.expired))
    callers = (DAY // STEP + 1) * len(PROFILES)
    print(f"workday: {callers} credential_process calls per world, 09:00–17:00 every 5 min "
          f"(real time {time.time() - start_real:.0f} s)")
    print("| world | PIV touches | OATH touches | touches | MFA codes | STS calls | GetSessionToken | AssumeRole | refused by STS | failed callers | expired creds |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")
    bad = [r for r in rows if r[8] or r[9] or r[10]]
    if bad:
        sys.exit(f"workday: failures: {bad}")
    vault_touches = rows[0][3]
    if vault_touches > 2:
        sys.exit(f"workday: vault needed {vault_touches} touches (goal: at most 2)")


if __name__ == "__main__":
    main()
