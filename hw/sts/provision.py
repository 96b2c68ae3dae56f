#!/usr/bin/env python3
"""Creates IAM users (with an access key and an enabled virtual MFA
device) and roles in the rig's STS/IAM, as an administrator would with
boto3: AWS's own client, signed with the rig's admin credentials
(VAULT_RIG_ADMIN_AWS_ACCESS_KEY_ID / VAULT_RIG_ADMIN_AWS_SECRET_ACCESS_KEY)
against AWS_ENDPOINT_URL. The strict STS verifies these requests like any
other, so a test's world is made exactly as a person trying vault would
make it.

Reads one JSON object on stdin:
  {"users": [{"name": "alice-x1", "mfa": true}],
   "roles": [{"name": "admin-x1", "max_session": 43200,
              "require_mfa": false, "trust": ["arn:aws:iam::123456789012:root"]}]}
and prints one JSON object:
  {"users": {"alice-x1": {"arn", "access_key_id", "secret_access_key",
                          "mfa_serial", "seed"}},
   "roles": {"admin-x1": {"arn"}}}
A role's trust defaults to the account's root (every user and role of the
account may assume it, as their own policies allow); "require_mfa" adds
the aws:MultiFactorAuthPresent condition AWS documents for MFA-protected
roles.
"""
import base64
import hashlib
import hmac
import json
import os
import struct
import sys
import time

import boto3

ACCOUNT = "123456789012"


def totp(seed_b32: str, step: int) -> str:
    """RFC 6238 with SHA-1, 6 digits, 30 s steps (AWS virtual MFA devices)."""
    key = base64.b32decode(seed_b32 + "=" * (-len(seed_b32) % 8))
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[off : off + 4])[0] & 0x7FFFFFFF) % 1_000_000
    return f"{code:06d}"


def client(service: str):
    return boto3.client(
        service,
        region_name="us-east-1",
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        aws_access_key_id=os.environ["VAULT_RIG_ADMIN_AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["VAULT_RIG_ADMIN_AWS_SECRET_ACCESS_KEY"],
    )


def make_user(iam, spec: dict) -> dict:
    name = spec["name"]
    user = iam.create_user(UserName=name)["User"]
    key = iam.create_access_key(UserName=name)["AccessKey"]
    out = {
        "arn": user["Arn"],
        "access_key_id": key["AccessKeyId"],
        "secret_access_key": key["SecretAccessKey"],
        "mfa_serial": None,
        "seed": None,
    }
    if spec.get("mfa"):
        dev = iam.create_virtual_mfa_device(VirtualMFADeviceName=name)["VirtualMFADevice"]
        seed = dev["Base32StringSeed"]
        if isinstance(seed, bytes):
            seed = seed.decode()
        # Two consecutive codes, as the console asks for them; the two
        # steps before the current one, so no code vault may send next is
        # spent here.
        step = int(time.time()) // 30
        iam.enable_mfa_device(
            UserName=name,
            SerialNumber=dev["SerialNumber"],
            AuthenticationCode1=totp(seed, step - 2),
            AuthenticationCode2=totp(seed, step - 1),
        )
        out["mfa_serial"] = dev["SerialNumber"]
        out["seed"] = seed
    return out


def make_role(iam, spec: dict) -> dict:
    principals = spec.get("trust") or [f"arn:aws:iam::{ACCOUNT}:root"]
    statement = {
        "Effect": "Allow",
        "Principal": {"AWS": principals},
        "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
    }
    if spec.get("require_mfa"):
        statement["Condition"] = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
    role = iam.create_role(
        RoleName=spec["name"],
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
        MaxSessionDuration=int(spec.get("max_session", 43200)),
    )["Role"]
    return {"arn": role["Arn"]}


def main() -> int:
    spec = json.load(sys.stdin)
    iam = client("iam")
    out = {
        "users": {u["name"]: make_user(iam, u) for u in spec.get("users", [])},
        "roles": {r["name"]: make_role(iam, r) for r in spec.get("roles", [])},
    }
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
