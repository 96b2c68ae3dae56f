"""The strict STS's own tests: each rule, through real AWS clients.

Run: .venv/bin/python -m pytest -q hw/sts

The server runs as a subprocess on 127.0.0.1 (no rig needed); the clients
are the AWS CLI (.venv/bin/aws) and boto3, i.e. AWS's own signing and
error parsing. Each test names one rule and fails when the server stops
enforcing it: every refusal is paired with the same call done right being
accepted, so a test cannot pass just because everything is refused.

Clock tests move time with libfaketime (Debian's faketime package), the
same way a benchmark moves vault's and the server's clocks together.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PYTHON = sys.executable
AWS_CLI = str(Path(PYTHON).with_name("aws"))
ACCOUNT = "123456789012"
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
BOTO_CONFIG = Config(parameter_validation=False, retries={"max_attempts": 1,
                                                          "mode": "standard"})


# ------------------------------------------------------------------ helpers

def totp(seed_b32: str, step: int) -> str:
    """RFC 6238 (SHA-1, 6 digits), written here independently of the server."""
    key = base64.b32decode(seed_b32 + "=" * (-len(seed_b32) % 8))
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    o = mac[-1] & 0xF
    return "%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7FFFFFFF) % 1_000_000)


def test_totp_helper_matches_rfc_6238_vector():
    # RFC 6238 appendix B, SHA-1 seed "12345678901234567890", T = 59 s:
    # 94287082, of which a 6-digit code keeps the last six.
    seed = base64.b32encode(b"12345678901234567890").decode()
    assert totp(seed, 59 // 30) == "287082"


def step_now() -> int:
    return int(time.time() // 30)


class Server:
    def __init__(self, tmp: Path, env: dict | None = None):
        self.dir = tmp
        self.port_file = tmp / "port"
        self.recording = tmp / "recording.jsonl"
        self.admin_file = tmp / "admin.json"
        self.log = open(tmp / "server.log", "w")
        self.proc = subprocess.Popen(
            [PYTHON, str(HERE / "strict_sts.py"), "--port", "0",
             "--port-file", str(self.port_file), "--recording", str(self.recording),
             "--admin-file", str(self.admin_file)],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        )
        deadline = time.monotonic() + 30
        while not self.port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start: "
                                   + (tmp / "server.log").read_text())
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port_file.read_text().strip()}"
        admin = json.loads(self.admin_file.read_text())
        self.admin = Creds(admin["AccessKeyId"], admin["SecretAccessKey"])

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()

    def records(self) -> list[dict]:
        return [json.loads(l) for l in self.recording.read_text().splitlines()]

    # ---- clients

    def client(self, service: str, creds: "Creds"):
        return boto3.client(
            service, endpoint_url=self.url, region_name="us-east-1",
            aws_access_key_id=creds.key_id, aws_secret_access_key=creds.secret,
            aws_session_token=creds.token, config=BOTO_CONFIG,
        )

    def sts(self, creds):
        return self.client("sts", creds)

    def iam(self, creds):
        return self.client("iam", creds)

    def cli(self, creds: "Creds", *args: str, env: dict | None = None):
        """`aws ARGS --output json` with these credentials: (rc, parsed, stderr)."""
        e = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.dir),
            "AWS_CONFIG_FILE": str(self.dir / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.dir / "no-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL": self.url,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_PAGER": "",
            "AWS_MAX_ATTEMPTS": "1",
            "AWS_ACCESS_KEY_ID": creds.key_id,
            "AWS_SECRET_ACCESS_KEY": creds.secret,
            **({"AWS_SESSION_TOKEN": creds.token} if creds.token else {}),
            **(env or {}),
        }
        p = subprocess.run([AWS_CLI, *args, "--output", "json"], env=e,
                           capture_output=True, text=True, timeout=120)
        out = json.loads(p.stdout) if p.returncode == 0 and p.stdout.strip() else None
        return p.returncode, out, p.stderr


class Creds:
    def __init__(self, key_id: str, secret: str, token: str | None = None):
        self.key_id, self.secret, self.token = key_id, secret, token

    @classmethod
    def of(cls, c: dict) -> "Creds":
        return cls(c["AccessKeyId"], c["SecretAccessKey"], c.get("SessionToken"))


def error_of(call, *args, **kwargs) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as e:
        call(*args, **kwargs)
    err = e.value.response["Error"]
    return err["Code"], err["Message"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("sts"))
    yield s
    s.stop()


class User:
    """An IAM user of the test's own, with a key and (optionally) a device."""

    def __init__(self, srv: Server, mfa: bool = False):
        self.srv = srv
        self.name = "u-" + uuid.uuid4().hex[:10]
        admin = srv.iam(srv.admin)
        self.arn = admin.create_user(UserName=self.name)["User"]["Arn"]
        self.creds = Creds.of(admin.create_access_key(UserName=self.name)["AccessKey"])
        self.serial = None
        self.used: set[int] = set()
        if mfa:
            dev = admin.create_virtual_mfa_device(VirtualMFADeviceName=self.name)
            dev = dev["VirtualMFADevice"]
            self.serial = dev["SerialNumber"]
            self.seed = dev["Base32StringSeed"].decode()
            # Two consecutive codes, the later one current: a person's way.
            here = step_now()
            admin.enable_mfa_device(UserName=self.name, SerialNumber=self.serial,
                                    AuthenticationCode1=totp(self.seed, here - 1),
                                    AuthenticationCode2=totp(self.seed, here))
            self.used |= {here - 1, here}

    def code(self) -> str:
        """A code AWS has not seen yet (waits for the next step if need be)."""
        while True:
            here = step_now()
            for step in (here, here + 1):
                if step not in self.used:
                    self.used.add(step)
                    return totp(self.seed, step)
            time.sleep(1)

    def session(self, **kw) -> Creds:
        return Creds.of(self.srv.sts(self.creds).get_session_token(**kw)["Credentials"])


def make_role(srv: Server, trust: dict, max_session: int = 3600) -> str:
    name = "r-" + uuid.uuid4().hex[:10]
    return srv.iam(srv.admin).create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps(trust),
        MaxSessionDuration=max_session,
    )["Role"]["Arn"]


def trust(principal, mfa: bool = False) -> dict:
    st = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}
    if mfa:
        st["Condition"] = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
    return {"Version": "2012-10-17", "Statement": [st]}


def assume(srv, creds, role_arn, **kw) -> Creds:
    r = srv.sts(creds).assume_role(RoleArn=role_arn, RoleSessionName="s1", **kw)
    return Creds.of(r["Credentials"])


# -------------------------------------------------------------- signatures

def test_correctly_signed_requests_are_accepted_by_cli_and_boto3(srv):
    rc, out, err = srv.cli(srv.admin, "sts", "get-caller-identity")
    assert rc == 0, err
    assert out["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/vault-rig-admin"
    assert srv.sts(srv.admin).get_caller_identity()["Account"] == ACCOUNT


def test_wrong_secret_is_signature_does_not_match(srv):
    u = User(srv)
    bad = Creds(u.creds.key_id, u.creds.secret[:-1] + ("A" if u.creds.secret[-1] != "A" else "B"))
    rc, _, err = srv.cli(bad, "sts", "get-caller-identity")
    assert rc != 0 and "(SignatureDoesNotMatch)" in err, err
    code, _, status = error_of(srv.sts(bad).get_caller_identity)
    assert (code, status) == ("SignatureDoesNotMatch", 403)
    assert srv.sts(u.creds).get_caller_identity()["Arn"] == u.arn


def _signed(creds: Creds, url: str, body: str, service="sts") -> AWSRequest:
    req = AWSRequest(method="POST", url=url + "/", data=body.encode(),
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    SigV4Auth(Credentials(creds.key_id, creds.secret, creds.token), service,
              "us-east-1").add_auth(req)
    return req


def _send(req: AWSRequest, body: bytes | None = None) -> tuple[int, str]:
    p = req.prepare()
    # urllib frames the body it is given (its own Content-Length).
    headers = {k: v for k, v in p.headers.items() if k.lower() != "content-length"}
    r = urllib.request.Request(p.url, data=body if body is not None else p.body,
                               headers=headers, method="POST")
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_a_body_changed_after_signing_is_refused(srv):
    body = "Action=GetCallerIdentity&Version=2011-06-15"
    req = _signed(srv.admin, srv.url, body)
    status, text = _send(req)
    assert status == 200, text
    req = _signed(srv.admin, srv.url, body)
    status, text = _send(req, (body + "&Extra=1").encode())
    assert status == 403 and "<Code>SignatureDoesNotMatch</Code>" in text, text


def test_unknown_key_is_invalid_client_token_id(srv):
    ghost = Creds("AKIA" + "Q" * 16, "x" * 40)
    rc, _, err = srv.cli(ghost, "sts", "get-caller-identity")
    assert rc != 0 and "(InvalidClientTokenId)" in err, err
    code, msg, status = error_of(srv.iam(ghost).get_user)
    assert (code, status) == ("InvalidClientTokenId", 403)
    assert msg == "The security token included in the request is invalid"


def test_unsigned_request_is_refused(srv):
    r = urllib.request.Request(srv.url + "/", data=b"Action=GetCallerIdentity&Version=2011-06-15",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(r, timeout=30)
    assert e.value.code == 403
    assert "<Code>MissingAuthenticationToken</Code>" in e.value.read().decode()


def test_inactive_and_deleted_keys_are_refused(srv):
    u = User(srv)
    admin = srv.iam(srv.admin)
    assert srv.sts(u.creds).get_caller_identity()["Arn"] == u.arn
    admin.update_access_key(UserName=u.name, AccessKeyId=u.creds.key_id, Status="Inactive")
    assert error_of(srv.sts(u.creds).get_caller_identity)[0] == "InvalidClientTokenId"
    admin.update_access_key(UserName=u.name, AccessKeyId=u.creds.key_id, Status="Active")
    assert srv.sts(u.creds).get_caller_identity()["Arn"] == u.arn
    admin.delete_access_key(UserName=u.name, AccessKeyId=u.creds.key_id)
    assert error_of(srv.sts(u.creds).get_caller_identity)[0] == "InvalidClientTokenId"


def test_session_key_is_only_good_with_its_own_token(srv):
    u = User(srv)
    a, b = u.session(), u.session()
    assert srv.sts(a).get_caller_identity()["Arn"] == u.arn
    no_token = Creds(a.key_id, a.secret)
    assert error_of(srv.sts(no_token).get_caller_identity)[0] == "InvalidClientTokenId"
    wrong_token = Creds(a.key_id, a.secret, b.token)
    assert error_of(srv.sts(wrong_token).get_caller_identity)[0] == "InvalidClientTokenId"
    # A long-term key with a token is not a session either.
    with_token = Creds(u.creds.key_id, u.creds.secret, a.token)
    assert error_of(srv.sts(with_token).get_caller_identity)[0] == "InvalidClientTokenId"


# --------------------------------------------------------- GetSessionToken

def test_get_session_token_issues_fresh_credentials(srv):
    u = User(srv)
    before = time.time()
    r1 = srv.sts(u.creds).get_session_token(DurationSeconds=900)["Credentials"]
    r2 = srv.sts(u.creds).get_session_token()["Credentials"]
    assert r1["AccessKeyId"] != r2["AccessKeyId"]
    assert r1["SecretAccessKey"] != r2["SecretAccessKey"]
    assert r1["SessionToken"] != r2["SessionToken"]
    for r in (r1, r2):
        assert r["AccessKeyId"].startswith("ASIA") and len(r["AccessKeyId"]) == 20
        assert len(r["SecretAccessKey"]) == 40
        assert len(r["SessionToken"]) > 100
    assert abs(r1["Expiration"].timestamp() - (before + 900)) < 30
    assert abs(r2["Expiration"].timestamp() - (before + 43200)) < 30  # the default


def test_get_session_token_duration_limits(srv):
    u = User(srv)
    sts = srv.sts(u.creds)
    for bad, bound in ((899, "greater than or equal to 900"),
                       (129601, "less than or equal to 129600")):
        code, msg, status = error_of(sts.get_session_token, DurationSeconds=bad)
        assert (code, status) == ("ValidationError", 400)
        assert bound in msg
    sts.get_session_token(DurationSeconds=900)
    sts.get_session_token(DurationSeconds=129600)


def test_get_session_token_with_session_credentials_is_access_denied(srv):
    u = User(srv)
    s = u.session()
    rc, _, err = srv.cli(s, "sts", "get-session-token")
    assert rc != 0 and "(AccessDenied)" in err
    assert "Cannot call GetSessionToken with session credentials" in err
    role = make_role(srv, trust(u.arn))
    r = assume(srv, u.creds, role)
    assert error_of(srv.sts(r).get_session_token)[0] == "AccessDenied"
    assert srv.sts(u.creds).get_session_token()  # the long-term key may


# --------------------------------------------------------------------- MFA

def test_mfa_code_is_accepted_once(srv):
    u = User(srv, mfa=True)
    code = u.code()
    rc, out, err = srv.cli(u.creds, "sts", "get-session-token",
                           "--serial-number", u.serial, "--token-code", code)
    assert rc == 0, err
    rc, _, err = srv.cli(u.creds, "sts", "get-session-token",
                         "--serial-number", u.serial, "--token-code", code)
    assert rc != 0 and "(AccessDenied)" in err, err
    assert "MultiFactorAuthentication failed with invalid MFA one time pass code." in err
    # Also in AssumeRole: the same ledger of spent codes.
    role = make_role(srv, trust(u.arn, mfa=True))
    code = u.code()
    assume(srv, u.creds, role, SerialNumber=u.serial, TokenCode=code)
    c, msg, status = error_of(srv.sts(u.creds).assume_role, RoleArn=role,
                              RoleSessionName="again", SerialNumber=u.serial,
                              TokenCode=code)
    assert (c, status) == ("AccessDenied", 403), msg


def test_wrong_mfa_code_is_refused(srv):
    u = User(srv, mfa=True)
    right = totp(u.seed, step_now())
    wrong = "%06d" % ((int(right) + 500000) % 1_000_000)
    code, msg, status = error_of(srv.sts(u.creds).get_session_token,
                                 SerialNumber=u.serial, TokenCode=wrong)
    assert (code, status) == ("AccessDenied", 403)
    assert msg == "MultiFactorAuthentication failed with invalid MFA one time pass code."
    # A code of the right seed but minutes old is just as wrong.
    stale = totp(u.seed, step_now() - 10)
    assert error_of(srv.sts(u.creds).get_session_token, SerialNumber=u.serial,
                    TokenCode=stale)[0] == "AccessDenied"
    srv.sts(u.creds).get_session_token(SerialNumber=u.serial, TokenCode=u.code())


def test_mfa_device_must_be_the_callers(srv):
    alice, bob = User(srv, mfa=True), User(srv, mfa=True)
    code, msg, _ = error_of(srv.sts(alice.creds).get_session_token,
                            SerialNumber=bob.serial, TokenCode=bob.code())
    assert code == "AccessDenied"
    assert "unable to validate MFA code" in msg
    srv.sts(alice.creds).get_session_token(SerialNumber=alice.serial, TokenCode=alice.code())


def test_enable_mfa_device_checks_both_codes(srv):
    u = User(srv)
    admin = srv.iam(srv.admin)
    dev = admin.create_virtual_mfa_device(VirtualMFADeviceName=u.name)["VirtualMFADevice"]
    seed, serial = dev["Base32StringSeed"].decode(), dev["SerialNumber"]
    here = step_now()
    code, _, status = error_of(admin.enable_mfa_device, UserName=u.name, SerialNumber=serial,
                               AuthenticationCode1=totp(seed, here),
                               AuthenticationCode2=totp(seed, here + 5))
    assert (code, status) == ("InvalidAuthenticationCode", 403)
    # Consecutive, but the later one two steps old: outside the window.
    code, _, _ = error_of(admin.enable_mfa_device, UserName=u.name, SerialNumber=serial,
                          AuthenticationCode1=totp(seed, here - 3),
                          AuthenticationCode2=totp(seed, here - 2))
    assert code == "InvalidAuthenticationCode"
    assert admin.list_mfa_devices(UserName=u.name)["MFADevices"] == []
    # The card's way (vault hw enroll): the current step and the next.
    admin.enable_mfa_device(UserName=u.name, SerialNumber=serial,
                            AuthenticationCode1=totp(seed, here),
                            AuthenticationCode2=totp(seed, here + 1))
    assert [d["SerialNumber"] for d in admin.list_mfa_devices(UserName=u.name)["MFADevices"]] \
        == [serial]


# -------------------------------------------------------------- AssumeRole

def test_assume_role_over_max_session_duration_is_refused(srv):
    u = User(srv)
    role = make_role(srv, trust(u.arn), max_session=3600)
    code, msg, status = error_of(srv.sts(u.creds).assume_role, RoleArn=role,
                                 RoleSessionName="sess", DurationSeconds=7200)
    assert (code, status) == ("ValidationError", 400)
    assert msg == "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
    long_role = make_role(srv, trust(u.arn), max_session=7200)
    assume(srv, u.creds, long_role, DurationSeconds=7200)


def test_chained_role_session_is_limited_to_one_hour(srv):
    u = User(srv)
    # Trusting the account: the role session below is a principal of it too.
    role = make_role(srv, trust(f"arn:aws:iam::{ACCOUNT}:root"), max_session=43200)
    chained = "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
    # With GetSessionToken credentials, through the AWS CLI.
    rc, _, err = srv.cli(u.session(), "sts", "assume-role", "--role-arn", role,
                         "--role-session-name", "sess", "--duration-seconds", "7200")
    assert rc != 0 and "(ValidationError)" in err and chained in err, err
    # With a role session (role chaining proper).
    r = assume(srv, u.creds, role, DurationSeconds=3600)
    code, msg, _ = error_of(srv.sts(r).assume_role, RoleArn=role, RoleSessionName="s2",
                            DurationSeconds=7200)
    assert (code, msg) == ("ValidationError", chained)
    # One hour is fine chained; longer is fine from the long-term key.
    assume(srv, u.session(), role, DurationSeconds=3600)
    assume(srv, r, role, DurationSeconds=3600)
    assume(srv, u.creds, role, DurationSeconds=7200)


def test_assume_role_duration_bounds(srv):
    u = User(srv)
    role = make_role(srv, trust(u.arn), max_session=43200)
    assert error_of(srv.sts(u.creds).assume_role, RoleArn=role, RoleSessionName="sess",
                    DurationSeconds=899)[0] == "ValidationError"
    assert error_of(srv.sts(u.creds).assume_role, RoleArn=role, RoleSessionName="sess",
                    DurationSeconds=43201)[0] == "ValidationError"
    before = time.time()
    r = srv.sts(u.creds).assume_role(RoleArn=role, RoleSessionName="sess")
    assert abs(r["Credentials"]["Expiration"].timestamp() - (before + 3600)) < 30


def test_trust_policy_principal_is_enforced(srv):
    alice, bob = User(srv), User(srv)
    role = make_role(srv, trust(bob.arn))
    code, msg, status = error_of(srv.sts(alice.creds).assume_role, RoleArn=role,
                                 RoleSessionName="sess")
    assert (code, status) == ("AccessDenied", 403)
    assert alice.arn in msg and role in msg
    assume(srv, bob.creds, role)
    # The account as principal trusts everyone in it.
    assume(srv, alice.creds, make_role(srv, trust(f"arn:aws:iam::{ACCOUNT}:root")))
    assume(srv, alice.creds, make_role(srv, trust(ACCOUNT)))
    # A role that does not exist looks the same as one that refuses.
    assert error_of(srv.sts(alice.creds).assume_role,
                    RoleArn=f"arn:aws:iam::{ACCOUNT}:role/nope",
                    RoleSessionName="sess")[0] == "AccessDenied"


def test_trust_policy_mfa_condition_and_its_propagation(srv):
    u = User(srv, mfa=True)
    role = make_role(srv, trust(u.arn, mfa=True))
    sts = srv.sts(u.creds)
    # Long-term key, no MFA: refused. With a valid code: allowed.
    assert error_of(sts.assume_role, RoleArn=role, RoleSessionName="sess")[0] == "AccessDenied"
    assume(srv, u.creds, role, SerialNumber=u.serial, TokenCode=u.code())
    # A GetSessionToken session without MFA: refused; with MFA: allowed,
    # with no code in the AssumeRole call itself.
    plain = u.session()
    assert error_of(srv.sts(plain).assume_role, RoleArn=role,
                    RoleSessionName="sess")[0] == "AccessDenied"
    with_mfa = u.session(SerialNumber=u.serial, TokenCode=u.code())
    r1 = assume(srv, with_mfa, role)
    # ... and on through a chain of role sessions.
    r2 = assume(srv, r1, make_role(srv, trust(role, mfa=True)))
    assert ":assumed-role/" in srv.sts(r2).get_caller_identity()["Arn"]


# ------------------------------------------------------- GetCallerIdentity

def test_caller_identity_names_the_real_principal(srv):
    u = User(srv)
    user_id = srv.iam(srv.admin).get_user(UserName=u.name)["User"]["UserId"]
    ident = srv.sts(u.creds).get_caller_identity()
    assert (ident["Arn"], ident["UserId"], ident["Account"]) == (u.arn, user_id, ACCOUNT)

    rc, out, err = srv.cli(u.session(), "sts", "get-caller-identity")
    assert rc == 0, err
    assert (out["Arn"], out["UserId"]) == (u.arn, user_id)

    role = make_role(srv, trust(u.arn))
    role_id = srv.iam(srv.admin).get_role(RoleName=role.split("/")[-1])["Role"]["RoleId"]
    r = srv.sts(u.creds).assume_role(RoleArn=role, RoleSessionName="who-am-i")
    ident = srv.sts(Creds.of(r["Credentials"])).get_caller_identity()
    expected_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/{role.split('/')[-1]}/who-am-i"
    assert ident["Arn"] == expected_arn == r["AssumedRoleUser"]["Arn"]
    assert ident["UserId"] == f"{role_id}:who-am-i" and role_id.startswith("AROA")

    f = srv.sts(u.creds).get_federation_token(Name="fed-bob")
    ident = srv.sts(Creds.of(f["Credentials"])).get_caller_identity()
    assert ident["Arn"] == f"arn:aws:sts::{ACCOUNT}:federated-user/fed-bob"
    assert ident["UserId"] == f"{ACCOUNT}:fed-bob"


# ------------------------------------------------------ GetFederationToken

def test_federation_token_rules(srv):
    u = User(srv)
    sts = srv.sts(u.creds)
    assert error_of(sts.get_federation_token)[0] == "ValidationError"  # Name required
    assert error_of(sts.get_federation_token, Name="n", DurationSeconds=129601)[0] \
        == "ValidationError"
    f = Creds.of(sts.get_federation_token(Name="fed")["Credentials"])
    code, msg, _ = error_of(srv.sts(u.session()).get_federation_token, Name="fed")
    assert (code, msg) == ("AccessDenied", "Cannot call GetFederationToken with session credentials")
    # Federation credentials: no IAM, no STS but GetCallerIdentity.
    assert error_of(srv.iam(f).list_users)[0] == "InvalidClientTokenId"
    assert error_of(srv.sts(f).get_session_token)[0] == "AccessDenied"


# ------------------------------------------------- IAM with session creds

def test_iam_with_mfa_session_acts_as_that_user(srv):
    u = User(srv, mfa=True)
    admin = srv.iam(srv.admin)
    # Without MFA, GetSessionToken credentials cannot call IAM at all.
    rc, _, err = srv.cli(u.session(), "iam", "create-access-key")
    assert rc != 0 and "(InvalidClientTokenId)" in err, err
    assert len(admin.list_access_keys(UserName=u.name)["AccessKeyMetadata"]) == 1

    s = u.session(SerialNumber=u.serial, TokenCode=u.code())
    rc, out, err = srv.cli(s, "iam", "create-access-key")
    assert rc == 0, err
    assert out["AccessKey"]["UserName"] == u.name
    keys = {k["AccessKeyId"] for k in admin.list_access_keys(UserName=u.name)["AccessKeyMetadata"]}
    assert keys == {u.creds.key_id, out["AccessKey"]["AccessKeyId"]}
    # The other implicit-user calls too.
    iam = srv.iam(s)
    assert iam.get_user()["User"]["UserName"] == u.name
    assert {k["AccessKeyId"] for k in iam.list_access_keys()["AccessKeyMetadata"]} == keys
    assert [d["SerialNumber"] for d in iam.list_mfa_devices()["MFADevices"]] == [u.serial]
    iam.delete_access_key(AccessKeyId=u.creds.key_id)
    assert {k["AccessKeyId"] for k in admin.list_access_keys(UserName=u.name)
            ["AccessKeyMetadata"]} == {out["AccessKey"]["AccessKeyId"]}
    # The new key works, the deleted one not.
    new = Creds.of(out["AccessKey"])
    assert srv.sts(new).get_caller_identity()["Arn"] == u.arn
    assert error_of(srv.sts(u.creds).get_caller_identity)[0] == "InvalidClientTokenId"


# ------------------------------------------------------------------ clock

def faketime_env(offset_file: Path) -> dict:
    """libfaketime settings that work with Python (see hw/README.md)."""
    assert Path(LIBFAKETIME).exists(), "libfaketime missing: apt-get install faketime"
    return {
        "LD_PRELOAD": LIBFAKETIME,
        "FAKETIME_TIMESTAMP_FILE": str(offset_file),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


@pytest.fixture
def faked(tmp_path):
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    env = faketime_env(offset)
    s = Server(tmp_path, env)
    yield s, offset, env
    s.stop()


def test_session_expires_when_the_clock_passes_it(faked):
    srv, offset, env = faked
    u = User(srv)
    rc, out, err = srv.cli(u.creds, "sts", "get-session-token", "--duration-seconds", "900",
                           env=env)
    assert rc == 0, err
    s = Creds.of(out["Credentials"])
    rc, _, err = srv.cli(s, "sts", "get-caller-identity", env=env)
    assert rc == 0, err
    # 14 minutes on: still valid.
    offset.write_text("+840\n")
    rc, _, err = srv.cli(s, "sts", "get-caller-identity", env=env)
    assert rc == 0, err
    # 16 minutes on (server and client alike): expired.
    offset.write_text("+960\n")
    rc, _, err = srv.cli(s, "sts", "get-caller-identity", env=env)
    assert rc != 0 and "(ExpiredToken)" in err, err
    assert "The security token included in the request is expired" in err
    # Not a clock problem: the long-term key signs fine at the same time.
    rc, _, err = srv.cli(u.creds, "sts", "get-caller-identity", env=env)
    assert rc == 0, err


def test_signature_from_a_skewed_clock_is_refused(faked):
    srv, offset, env = faked
    u = User(srv)
    client_offset = offset.parent / "client-faketime"
    client_env = faketime_env(client_offset)
    client_offset.write_text("-1200\n")  # the client's clock 20 minutes behind
    rc, _, err = srv.cli(u.creds, "sts", "get-caller-identity", env=client_env)
    assert rc != 0 and "(SignatureDoesNotMatch)" in err and "Signature expired" in err, err
    client_offset.write_text("+1200\n")  # 20 minutes ahead
    rc, _, err = srv.cli(u.creds, "sts", "get-caller-identity", env=client_env)
    assert rc != 0 and "(SignatureDoesNotMatch)" in err and "not yet current" in err, err
    client_offset.write_text("-600\n")  # 10 minutes: within AWS's 15
    rc, _, err = srv.cli(u.creds, "sts", "get-caller-identity", env=client_env)
    assert rc == 0, err


# ------------------------------------------------------------ recording etc.

def test_recording_format(srv):
    u = User(srv)
    srv.sts(u.creds).get_session_token(DurationSeconds=900)
    error_of(srv.sts(Creds(u.creds.key_id, "x" * 40)).get_caller_identity)
    records = srv.records()
    assert records[0]["event"] == "started"
    mine = [r for r in records[1:] if r.get("key_id") == u.creds.key_id]
    ok, bad = mine[-2], mine[-1]
    for r in (ok, bad):
        assert r["method"] == "POST" and r["path"] == "/" and r["service"] == "sts"
        assert r["body_encoded"] is True
        assert f"Credential={u.creds.key_id}/" in r["headers"]["Authorization"]
    assert base64.b64decode(ok["body"]).decode().startswith("Action=GetSessionToken")
    assert (ok["action"], ok["status"], ok["error"]) == ("GetSessionToken", 200, None)
    assert (bad["action"], bad["status"], bad["error"]) == \
        ("GetCallerIdentity", 403, "SignatureDoesNotMatch")


def test_admin_file_is_private_and_its_key_verified(srv):
    assert (srv.admin_file.stat().st_mode & 0o777) == 0o600
    admin = json.loads(srv.admin_file.read_text())
    assert admin["UserName"] == "vault-rig-admin" and admin["Account"] == ACCOUNT
    bad = Creds(srv.admin.key_id, srv.admin.secret[::-1])
    assert error_of(srv.iam(bad).list_users)[0] == "SignatureDoesNotMatch"


def test_listens_on_loopback_only(srv):
    port = int(srv.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    addrs = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    for addr in addrs - {"127.0.0.1"}:
        with pytest.raises(OSError):
            socket.create_connection((addr, port), timeout=2).close()
