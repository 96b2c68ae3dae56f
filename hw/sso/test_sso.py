"""The SSO double's own tests: independent clients through it first, then
each rule of the sign-in service and the portal.

Run: .venv/bin/python -m pytest -q hw/sso

The double and the strict STS run as subprocesses on 127.0.0.1 (no rig
needed). The clients are the registry's: aws-sso-util (device-code sign-in,
writing the AWS CLI's token cache), the AWS CLI's own SSO credential and
token providers (botocore: GetRoleCredentials, the refresh-token grant),
boto3's sso-oidc and sso clients. The authorization-code flow with PKCE has
no registry client, so `cli_v2_login` below does what the AWS CLI v2's
`aws sso login` does (awscli/botocore/utils.py, SSOTokenFetcherAuth, and
awscli/customizations/sso/utils.py, AuthCodeFetcher, on its v2 branch):
the same RegisterClient, the same authorize URL, a loopback listener for
the redirect, the same CreateToken and the same token cache entry.
Every refusal is paired with the same call done right being accepted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import string
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import boto3
import botocore
import pytest
from botocore.config import Config

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent
ACCOUNT = "123456789012"
START_URL = "https://rig-sso.awsapps.com/start"
REGION = "us-east-1"
USER = "rig-user@example.com"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
UNSIGNED = Config(signature_version=botocore.UNSIGNED, region_name=REGION,
                  retries={"max_attempts": 1, "mode": "standard"})


# ------------------------------------------------------------------ servers

def wait_for(path: Path, proc: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start: " + log.read_text())
        time.sleep(0.05)


class World:
    """The strict STS and the SSO double, optionally on a moved clock."""

    def __init__(self, tmp: Path, sso_args: list[str] = (), faketime: bool = False):
        self.dir = tmp
        self.clock = tmp / "faketime"
        env = dict(os.environ)
        for v in list(env):
            if v.startswith("AWS_"):
                del env[v]
        if faketime:
            if not Path(LIBFAKETIME).exists():
                pytest.skip("libfaketime missing: apt-get install faketime")
            self.set_clock(0)
            env.update(self.faketime_env())
        self.procs = []
        self.logs = []
        sts_log = tmp / "sts.log"
        self.logs.append(open(sts_log, "w"))
        sts = subprocess.Popen(
            [PYTHON, str(REPO / "hw/sts/strict_sts.py"), "--port", "0",
             "--port-file", str(tmp / "sts.port"), "--recording", str(tmp / "sts.jsonl"),
             "--admin-file", str(tmp / "admin.json")],
            stdout=self.logs[-1], stderr=subprocess.STDOUT, env=env)
        self.procs.append(sts)
        wait_for(tmp / "sts.port", sts, sts_log, "the strict STS")
        self.sts_url = f"http://127.0.0.1:{(tmp / 'sts.port').read_text().strip()}"
        admin = json.loads((tmp / "admin.json").read_text())
        sso_log = tmp / "sso.log"
        self.logs.append(open(sso_log, "w"))
        sso = subprocess.Popen(
            [PYTHON, str(HERE / "sso_server.py"), "--port-file", str(tmp / "sso.ports"),
             "--recording", str(tmp / "sso.jsonl"), "--sts-endpoint", self.sts_url, *sso_args],
            stdout=self.logs[-1], stderr=subprocess.STDOUT,
            env={**env, "VAULT_RIG_ADMIN_AWS_ACCESS_KEY_ID": admin["AccessKeyId"],
                 "VAULT_RIG_ADMIN_AWS_SECRET_ACCESS_KEY": admin["SecretAccessKey"]})
        self.procs.append(sso)
        wait_for(tmp / "sso.ports", sso, sso_log, "the SSO double")
        ports = json.loads((tmp / "sso.ports").read_text())
        self.oidc_url = f"http://127.0.0.1:{ports['oidc']}"
        self.portal_url = f"http://127.0.0.1:{ports['portal']}"
        self.oidc = boto3.client("sso-oidc", endpoint_url=self.oidc_url, config=UNSIGNED)
        self.portal = boto3.client("sso", endpoint_url=self.portal_url, config=UNSIGNED)

    def stop(self):
        for p in reversed(self.procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        for f in self.logs:
            f.close()

    # ---- the clock (hw/README.md, "The clock")

    def set_clock(self, seconds: int) -> None:
        tmp = self.clock.with_suffix(".tmp")
        tmp.write_text(f"{seconds:+d}s\n")
        os.replace(tmp, self.clock)

    def faketime_env(self) -> dict:
        return {"LD_PRELOAD": LIBFAKETIME, "FAKETIME_TIMESTAMP_FILE": str(self.clock),
                "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}

    # ---- instruments

    def records(self) -> list[dict]:
        return [json.loads(l) for l in (self.dir / "sso.jsonl").read_text().splitlines()][1:]

    def sts_records(self) -> list[dict]:
        return [json.loads(l) for l in (self.dir / "sts.jsonl").read_text().splitlines()][1:]

    def create_tokens(self, grant: str | None = None) -> list[dict]:
        return [r for r in self.records() if r["action"] == "CreateToken"
                and (grant is None or r["grant_type"] == grant)]

    def ctl(self, path: str, body: dict | None = None) -> dict:
        """The scripted browser's control interface."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.oidc_url + "/rig/" + path, data=data,
                                     method="POST" if data is not None else "GET")
        with urllib.request.urlopen(req) as r:
            return json.load(r)

    def browser_get(self, url: str) -> tuple[int, dict, str]:
        """A browser's GET, not following redirects."""
        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a, **k):
                return None
        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(url) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()

    # ---- clients

    def register(self, **kw) -> dict:
        return self.oidc.register_client(clientName="test", clientType="public", **kw)

    def register_auth_code(self, scopes=("sso:account:access",)) -> dict:
        """RegisterClient as the AWS CLI v2 sends it for the auth-code flow."""
        return self.register(grantTypes=["authorization_code", "refresh_token"],
                             redirectUris=["http://127.0.0.1/oauth/callback"],
                             issuerUrl=START_URL, scopes=list(scopes))

    def device_token(self, reg: dict, decision: str = "approve") -> dict:
        auth = self.oidc.start_device_authorization(
            clientId=reg["clientId"], clientSecret=reg["clientSecret"], startUrl=START_URL)
        self.ctl(decision, {"user_code": auth["userCode"]})
        return self.oidc.create_token(grantType=DEVICE_GRANT, clientId=reg["clientId"],
                                      clientSecret=reg["clientSecret"],
                                      deviceCode=auth["deviceCode"])

    def env(self, home: Path, faketime: bool = False) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(HOME=str(home), AWS_CONFIG_FILE=str(home / ".aws/config"),
                   AWS_SHARED_CREDENTIALS_FILE=str(home / ".aws/credentials"),
                   AWS_ENDPOINT_URL=self.sts_url, AWS_ENDPOINT_URL_SSO_OIDC=self.oidc_url,
                   AWS_ENDPOINT_URL_SSO=self.portal_url, AWS_EC2_METADATA_DISABLED="true",
                   AWS_MAX_ATTEMPTS="1", PATH=f"{BIN}:{env.get('PATH', '')}")
        if faketime:
            env.update(self.faketime_env())
        return env

    def aws(self, home: Path, *args: str, faketime: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "aws"), *args], env=self.env(home, faketime),
                              capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(tmp_path_factory.mktemp("sso"))
    yield w
    w.stop()


@pytest.fixture(scope="module")
def short(tmp_path_factory):
    """Codes that expire in a second or two."""
    w = World(tmp_path_factory.mktemp("sso-short"),
              ["--auth-code-seconds", "1", "--device-code-seconds", "2"])
    yield w
    w.stop()


def error_of(call, *args, **kwargs) -> tuple[str, str | None, int]:
    try:
        call(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        return (e.response["Error"]["Code"], e.response.get("error"),
                e.response["ResponseMetadata"]["HTTPStatusCode"])
    raise AssertionError("the call was accepted")


def home_with_config(tmp: Path, config: str) -> Path:
    home = tmp / f"home-{uuid.uuid4().hex[:8]}"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws/config").write_text(config)
    return home


# ------------------------------------------------ the AWS CLI v2's sign-in

class Callback(BaseHTTPRequestHandler):
    """The loopback listener the AWS CLI v2 opens for the redirect."""
    got: dict = {}

    def do_GET(self):
        q = parse_qs(urlsplit(self.path).query)
        type(self).got = {k: v[0] for k, v in q.items()}
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *a):
        pass


def pkce_pair() -> tuple[str, str]:
    """As SSOTokenFetcherAuth makes it: 64 unreserved characters, and the
    padded base64url SHA-256 with its final '=' trimmed in the URL."""
    verifier = "".join(secrets.choice(string.ascii_letters + string.digits + "-._~")
                       for _ in range(64))
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode()
    return verifier, challenge[:-1]


def authorize_url(w: World, client_id: str, redirect: str, state: str, challenge: str,
                  method: str = "S256") -> str:
    q = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": redirect,
                   "state": state, "code_challenge_method": method,
                   "scopes": "sso:account:access"})
    return f"{w.oidc_url}/authorize?{q}&code_challenge={challenge}"


def browser_sign_in(w: World, url: str, decision: str = "approve") -> str:
    """The scripted browser: open the authorize page, the user answers, the
    browser is sent back to the loopback redirect URI: its Location."""
    status, _, page = w.browser_get(url)
    assert status == 200, page
    pending = [p for p in w.ctl("pending")["pending"] if p["kind"] == "authorize"
               and p["id"] in page]
    assert len(pending) == 1, (page, pending)
    return w.ctl(decision, {"id": pending[0]["id"]})["location"]


def cli_v2_login(w: World, home: Path, session_name: str) -> dict:
    """`aws sso login --sso-session NAME` of the AWS CLI v2: registration,
    authorize with PKCE through the scripted browser, the code back to a
    loopback listener, CreateToken, and the token cache entry it writes
    (~/.aws/sso/cache/sha1(NAME).json)."""
    reg = w.register_auth_code()
    listener = HTTPServer(("127.0.0.1", 0), Callback)
    redirect = f"http://127.0.0.1:{listener.server_port}/oauth/callback"
    verifier, challenge = pkce_pair()
    state = str(uuid.uuid4())
    location = browser_sign_in(w, authorize_url(w, reg["clientId"], redirect, state, challenge))
    t = threading.Thread(target=listener.handle_request)
    t.start()
    urllib.request.urlopen(location).read()  # the browser follows the redirect
    t.join(10)
    listener.server_close()
    assert Callback.got.get("state") == state
    tok = w.oidc.create_token(grantType="authorization_code", clientId=reg["clientId"],
                              clientSecret=reg["clientSecret"], redirectUri=redirect,
                              codeVerifier=verifier, code=Callback.got["code"])
    now = datetime.now(timezone.utc)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    entry = {
        "startUrl": START_URL, "region": REGION, "accessToken": tok["accessToken"],
        "expiresAt": (now + timedelta(seconds=tok["expiresIn"])).strftime(fmt),
        "clientId": reg["clientId"], "clientSecret": reg["clientSecret"],
        "registrationExpiresAt": datetime.fromtimestamp(
            reg["clientSecretExpiresAt"], timezone.utc).strftime(fmt),
        "refreshToken": tok["refreshToken"],
    }
    cache = home / ".aws/sso/cache"
    cache.mkdir(parents=True, exist_ok=True)
    (cache / (hashlib.sha1(session_name.encode()).hexdigest() + ".json")).write_text(
        json.dumps(entry))
    return entry


# ---------------------------------------------------- independent clients

def test_aws_sso_util_signs_in_with_the_device_code_and_the_aws_cli_uses_its_cache(
        world, tmp_path):
    """aws-sso-util's device-code sign-in, approved by the scripted browser,
    writes the AWS CLI's token cache; `aws sts get-caller-identity` with a
    legacy SSO profile then gets role credentials from the portal that the
    strict STS accepts, naming the user's session of the permission set."""
    home = home_with_config(tmp_path, (
        "[profile sso]\nregion = us-east-1\n"
        f"sso_start_url = {START_URL}\nsso_region = {REGION}\n"
        f"sso_account_id = {ACCOUNT}\nsso_role_name = AdministratorAccess\n"))
    before = len(world.records())
    login = subprocess.Popen(
        [str(BIN / "aws-sso-util"), "login", START_URL, REGION, "--headless"],
        env=world.env(home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        pending = []
        while not pending and time.monotonic() < deadline and login.poll() is None:
            pending = [p for p in world.ctl("pending")["pending"] if p["kind"] == "device"]
            time.sleep(0.2)
        assert len(pending) == 1, login.communicate(timeout=5)[0] if login.poll() else pending
        code = pending[0]["user_code"]
        # The browser opens the verification page the client printed, and
        # the user approves the code shown there.
        status, _, page = world.browser_get(
            f"{world.oidc_url}/device?user_code={code}")
        assert status == 200 and code in page
        assert world.ctl("approve", {"user_code": code})["decision"] == "approve"
        out, _ = login.communicate(timeout=60)
    finally:
        if login.poll() is None:
            login.kill()
    assert login.returncode == 0, out
    assert code in out  # what aws-sso-util showed its user

    cached = json.loads((home / ".aws/sso/cache" /
                         (hashlib.sha1(START_URL.encode()).hexdigest() + ".json")).read_text())
    assert cached["startUrl"] == START_URL and cached["accessToken"].startswith("aoa")
    # Registered without sso:account:access: no refresh token, as AWS.
    assert "refreshToken" not in cached
    mine = world.records()[before:]
    actions = [r["action"] for r in mine if r["service"] == "sso-oidc"]
    assert actions[:2] == ["RegisterClient", "StartDeviceAuthorization"]
    assert [r["status"] for r in mine if r["action"] == "CreateToken"][-1] == 200

    r = world.aws(home, "sts", "get-caller-identity", "--profile", "sso", "--output", "json")
    assert r.returncode == 0, r.stderr
    ident = json.loads(r.stdout)
    assert ident["Account"] == ACCOUNT
    assert ident["Arn"].startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_"
                                   f"AdministratorAccess_")
    assert ident["Arn"].endswith("/" + USER)
    grc = [x for x in world.records() if x["action"] == "GetRoleCredentials"][-1]
    assert grc["status"] == 200
    assert grc["headers"]["x-amz-sso_bearer_token"] == cached["accessToken"]
    gci = [x for x in world.sts_records() if x["action"] == "GetCallerIdentity"][-1]
    assert gci["status"] == 200 and gci["key_id"].startswith("ASIA")


def test_aws_cli_refreshes_an_expired_access_token_with_the_refresh_token(tmp_path):
    """An sso_session profile: the AWS CLI (botocore's SSO token provider)
    uses the cached access token while it is valid; after it has expired
    (the clocks of the CLI, the double and the STS moved an hour on) it
    makes one refresh-token CreateToken, saves the new token, and the role
    credentials from the new token work downstream. The old access token
    is refused by then, so the refresh was needed."""
    (tmp_path / "w").mkdir()
    w = World(tmp_path / "w", faketime=True)
    try:
        home = home_with_config(tmp_path, (
            "[profile p]\nregion = us-east-1\nsso_session = rig\n"
            f"sso_account_id = {ACCOUNT}\nsso_role_name = ReadOnlyAccess\n"
            "[sso-session rig]\n"
            f"sso_start_url = {START_URL}\nsso_region = {REGION}\n"
            "sso_registration_scopes = sso:account:access\n"))
        first = cli_v2_login(w, home, "rig")
        cache = home / ".aws/sso/cache" / (hashlib.sha1(b"rig").hexdigest() + ".json")

        r = w.aws(home, "sts", "get-caller-identity", "--profile", "p", faketime=True)
        assert r.returncode == 0, r.stderr
        assert w.create_tokens("refresh_token") == []

        w.set_clock(3700)  # past the access token's hour, within the 8 h session
        r = w.aws(home, "sts", "get-caller-identity", "--profile", "p", "--output", "json",
                  faketime=True)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["Arn"].endswith("/" + USER)
        refreshes = w.create_tokens("refresh_token")
        assert [x["status"] for x in refreshes] == [200]
        sent = json.loads(base64.b64decode(refreshes[0]["body"]))
        assert sent["refreshToken"] == first["refreshToken"]
        assert sent["clientId"] == first["clientId"]
        saved = json.loads(cache.read_text())
        assert saved["accessToken"] != first["accessToken"]
        assert saved["refreshToken"] != first["refreshToken"]  # rotated
        grc = [x for x in w.records() if x["action"] == "GetRoleCredentials"]
        assert [x["status"] for x in grc] == [200, 200]
        assert grc[-1]["headers"]["x-amz-sso_bearer_token"] == saved["accessToken"]
        # The old access token has expired on the double's clock.
        assert error_of(w.portal.list_accounts, accessToken=first["accessToken"])[0] == \
            "UnauthorizedException"
    finally:
        w.stop()


# ------------------------------------------------------------------ PKCE

def signed_in_code(w: World, verifier_challenge=None, redirect=None):
    reg = w.register_auth_code()
    verifier, challenge = verifier_challenge or pkce_pair()
    redirect = redirect or "http://127.0.0.1:53682/oauth/callback"
    location = browser_sign_in(w, authorize_url(w, reg["clientId"], redirect, "s1", challenge))
    q = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert location.startswith(redirect + "?") and q["state"] == "s1"
    return reg, verifier, redirect, q["code"]


def exchange(w, reg, redirect, verifier, code):
    return w.oidc.create_token(grantType="authorization_code", clientId=reg["clientId"],
                               clientSecret=reg["clientSecret"], redirectUri=redirect,
                               codeVerifier=verifier, code=code)


def test_pkce_rfc_7636_appendix_b_pair_is_accepted(world):
    # RFC 7636 Appendix B: this verifier's S256 challenge.
    pair = ("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    reg, verifier, redirect, code = signed_in_code(world, pair)
    tok = exchange(world, reg, redirect, verifier, code)
    assert tok["tokenType"] == "Bearer" and tok["refreshToken"]


def test_pkce_wrong_verifier_is_refused(world):
    reg, verifier, redirect, code = signed_in_code(world)
    other, _ = pkce_pair()
    assert error_of(exchange, world, reg, redirect, other, code) == \
        ("InvalidGrantException", "invalid_grant", 400)
    reg, verifier, redirect, code = signed_in_code(world)
    assert exchange(world, reg, redirect, verifier, code)["accessToken"]


def test_pkce_missing_or_malformed_verifier_is_refused(world):
    reg, verifier, redirect, code = signed_in_code(world)
    assert error_of(world.oidc.create_token, grantType="authorization_code",
                    clientId=reg["clientId"], clientSecret=reg["clientSecret"],
                    redirectUri=redirect, code=code)[0] == "InvalidGrantException"
    reg, verifier, redirect, code = signed_in_code(world)
    assert error_of(exchange, world, reg, redirect, verifier[:42], code)[0] == \
        "InvalidGrantException"


def test_authorization_code_is_used_once_and_reuse_revokes_its_token(world):
    reg, verifier, redirect, code = signed_in_code(world)
    tok = exchange(world, reg, redirect, verifier, code)
    assert world.portal.list_accounts(accessToken=tok["accessToken"])["accountList"]
    assert error_of(exchange, world, reg, redirect, verifier, code)[0] == "InvalidGrantException"
    # RFC 6749 section 4.1.2: the tokens issued from a reused code are revoked.
    assert error_of(world.portal.list_accounts, accessToken=tok["accessToken"])[:1] == \
        ("UnauthorizedException",)


def test_authorization_code_expires(short):
    reg, verifier, redirect, code = signed_in_code(short)
    assert exchange(short, reg, redirect, verifier, code)["accessToken"]
    reg, verifier, redirect, code = signed_in_code(short)
    time.sleep(1.5)
    assert error_of(exchange, short, reg, redirect, verifier, code)[0] == "ExpiredTokenException"


def test_code_redirect_uri_must_be_the_authorize_requests(world):
    reg, verifier, redirect, code = signed_in_code(world)
    assert error_of(exchange, world, reg, "http://127.0.0.1:1/oauth/callback", verifier,
                    code)[0] == "InvalidGrantException"


def test_code_belongs_to_its_client(world):
    reg, verifier, redirect, code = signed_in_code(world)
    other = world.register_auth_code()
    assert error_of(exchange, world, other, redirect, verifier, code)[0] == \
        "InvalidGrantException"


def test_denied_authorize_redirects_with_access_denied_and_no_code(world):
    reg = world.register_auth_code()
    _, challenge = pkce_pair()
    redirect = "http://127.0.0.1:53682/oauth/callback"
    location = browser_sign_in(world, authorize_url(world, reg["clientId"], redirect, "s2",
                                                    challenge), decision="deny")
    q = parse_qs(urlsplit(location).query)
    assert q["error"] == ["access_denied"] and q["state"] == ["s2"] and "code" not in q


def test_authorize_checks_its_request(world):
    reg = world.register_auth_code()
    _, challenge = pkce_pair()
    ok = "http://127.0.0.1:40000/oauth/callback"
    # An unregistered redirect URI is shown an error, never redirected to.
    status, headers, _ = world.browser_get(authorize_url(
        world, reg["clientId"], "http://127.0.0.1:40000/elsewhere", "s", challenge))
    assert status == 400 and "Location" not in headers
    # S256 only; a challenge must be 43 base64url characters.
    for url in (authorize_url(world, reg["clientId"], ok, "s", challenge, method="plain"),
                authorize_url(world, reg["clientId"], ok, "s", challenge[:-2])):
        status, headers, _ = world.browser_get(url)
        assert status == 302
        assert parse_qs(urlsplit(headers["Location"]).query)["error"] == ["invalid_request"]
    # A device-code-only client cannot use the authorize endpoint.
    dev = world.register(scopes=["sso:account:access"])
    status, headers, _ = world.browser_get(authorize_url(world, dev["clientId"], ok, "s",
                                                         challenge))
    assert status == 400


# ------------------------------------------------------------ device code

def test_device_code_pending_then_approved_once(world):
    reg = world.register()
    auth = world.oidc.start_device_authorization(
        clientId=reg["clientId"], clientSecret=reg["clientSecret"], startUrl=START_URL)
    assert auth["interval"] == 1 and auth["expiresIn"] == 600
    assert auth["verificationUriComplete"].endswith("user_code=" + auth["userCode"])
    args = dict(grantType=DEVICE_GRANT, clientId=reg["clientId"],
                clientSecret=reg["clientSecret"], deviceCode=auth["deviceCode"])
    assert error_of(world.oidc.create_token, **args) == \
        ("AuthorizationPendingException", "authorization_pending", 400)
    time.sleep(1.05)
    world.ctl("approve", {"user_code": auth["userCode"]})
    tok = world.oidc.create_token(**args)
    assert "refreshToken" not in tok and tok["expiresIn"] == 28800
    time.sleep(1.05)
    assert error_of(world.oidc.create_token, **args)[0] == "InvalidGrantException"


def test_device_code_polled_too_fast_is_slowed_down(world):
    reg = world.register()
    auth = world.oidc.start_device_authorization(
        clientId=reg["clientId"], clientSecret=reg["clientSecret"], startUrl=START_URL)
    args = dict(grantType=DEVICE_GRANT, clientId=reg["clientId"],
                clientSecret=reg["clientSecret"], deviceCode=auth["deviceCode"])
    assert error_of(world.oidc.create_token, **args)[0] == "AuthorizationPendingException"
    assert error_of(world.oidc.create_token, **args) == ("SlowDownException", "slow_down", 400)


def test_denied_device_code_is_refused(world):
    reg = world.register()
    assert error_of(world.device_token, reg, "deny") == \
        ("AccessDeniedException", "access_denied", 400)
    assert world.device_token(reg)["accessToken"]


def test_device_code_expires(short):
    reg = short.register()
    auth = short.oidc.start_device_authorization(
        clientId=reg["clientId"], clientSecret=reg["clientSecret"], startUrl=START_URL)
    time.sleep(2.2)
    with pytest.raises(urllib.error.HTTPError):  # the browser is too late too
        short.ctl("approve", {"user_code": auth["userCode"]})
    assert error_of(short.oidc.create_token, grantType=DEVICE_GRANT, clientId=reg["clientId"],
                    clientSecret=reg["clientSecret"], deviceCode=auth["deviceCode"]) == \
        ("ExpiredTokenException", "expired_token", 400)


def test_client_secret_is_checked(world):
    reg = world.register()
    assert error_of(world.oidc.start_device_authorization, clientId=reg["clientId"],
                    clientSecret=reg["clientSecret"] + "x", startUrl=START_URL) == \
        ("InvalidClientException", "invalid_client", 401)


# ---------------------------------------------------------- refresh token

def test_refresh_tokens_only_for_clients_registered_with_sso_account_access(world):
    plain = world.register()
    tok = world.device_token(plain)
    assert "refreshToken" not in tok
    assert error_of(world.oidc.create_token, grantType="refresh_token",
                    clientId=plain["clientId"], clientSecret=plain["clientSecret"],
                    refreshToken="aor-anything")[0] == "UnauthorizedClientException"
    scoped = world.register(scopes=["sso:account:access"])
    tok = world.device_token(scoped)
    assert tok["refreshToken"] and tok["expiresIn"] == 3600


def test_refresh_token_is_rotated_and_bound_to_its_client(world):
    reg = world.register(scopes=["sso:account:access"])
    tok = world.device_token(reg)
    args = dict(grantType="refresh_token", clientId=reg["clientId"],
                clientSecret=reg["clientSecret"])
    other = world.register(scopes=["sso:account:access"])
    assert error_of(world.oidc.create_token, grantType="refresh_token",
                    clientId=other["clientId"], clientSecret=other["clientSecret"],
                    refreshToken=tok["refreshToken"])[0] == "InvalidGrantException"
    new = world.oidc.create_token(refreshToken=tok["refreshToken"], **args)
    assert new["accessToken"] != tok["accessToken"]
    assert error_of(world.oidc.create_token, refreshToken=tok["refreshToken"], **args)[0] == \
        "InvalidGrantException"
    assert world.oidc.create_token(refreshToken=new["refreshToken"], **args)["accessToken"]


# ------------------------------------------------------------------ portal

def test_portal_lists_what_was_configured_and_refuses_the_rest(world):
    tok = world.device_token(world.register())["accessToken"]
    accounts = world.portal.list_accounts(accessToken=tok)["accountList"]
    assert [a["accountId"] for a in accounts] == [ACCOUNT]
    roles = world.portal.list_account_roles(accessToken=tok, accountId=ACCOUNT)["roleList"]
    assert {r["roleName"] for r in roles} == {"AdministratorAccess", "ReadOnlyAccess"}
    page = world.portal.list_account_roles(accessToken=tok, accountId=ACCOUNT, maxResults=1)
    assert len(page["roleList"]) == 1 and page["nextToken"]
    assert error_of(world.portal.get_role_credentials, accessToken=tok, accountId=ACCOUNT,
                    roleName="NotAssigned")[:1] == ("ForbiddenException",)
    assert error_of(world.portal.get_role_credentials, accessToken="aoa-forged",
                    accountId=ACCOUNT, roleName="ReadOnlyAccess")[0] == "UnauthorizedException"
    creds = world.portal.get_role_credentials(accessToken=tok, accountId=ACCOUNT,
                                              roleName="ReadOnlyAccess")["roleCredentials"]
    assert creds["accessKeyId"].startswith("ASIA")
    assert creds["expiration"] > time.time() * 1000 + 3000 * 1000  # ms, ~1 h


def test_logout_ends_the_access_and_refresh_tokens(world):
    reg = world.register(scopes=["sso:account:access"])
    tok = world.device_token(reg)
    world.portal.logout(accessToken=tok["accessToken"])
    assert error_of(world.portal.list_accounts, accessToken=tok["accessToken"])[0] == \
        "UnauthorizedException"
    assert error_of(world.oidc.create_token, grantType="refresh_token",
                    clientId=reg["clientId"], clientSecret=reg["clientSecret"],
                    refreshToken=tok["refreshToken"])[0] == "InvalidGrantException"


def test_recording_counts_create_token_by_grant(world):
    before = len(world.create_tokens(DEVICE_GRANT))
    world.device_token(world.register())
    recs = world.create_tokens(DEVICE_GRANT)
    assert len(recs) == before + 1 and recs[-1]["status"] == 200
    assert recs[-1]["service"] == "sso-oidc" and recs[-1]["error"] is None
