#!/usr/bin/env python3
"""The rig's IAM Identity Center (SSO) double: the OIDC sign-in service, its
authorize page, the access portal, and a scripted browser.

moto has no SSO, so this is written from the service definitions botocore
ships (botocore/data/sso-oidc and sso, read at start: request members and
their types are checked against them) and the OAuth RFCs the service
follows: RFC 8628 (device authorization), RFC 6749 (authorization code,
refresh token), RFC 7636 (PKCE, S256), RFC 8252 section 7.3 (loopback
redirect URIs, any port). Every rule and where it comes from is in
hw/README.md ("The SSO double").

Two listeners on 127.0.0.1, one process, one state:

* OIDC (AWS_ENDPOINT_URL_SSO_OIDC): POST /client/register,
  /device_authorization, /token (rest-json), GET /authorize (the browser's
  page of the authorization-code flow), GET /device (the verification
  page), and the scripted browser's control under /rig/;
* portal (AWS_ENDPOINT_URL_SSO): GET /federation/credentials,
  /assignment/accounts, /assignment/roles, POST /logout, the access token
  in the x-amz-sso_bearer_token header.

Role credentials are real sessions of the rig's strict STS: for each
(account, permission set) the double creates an IAM role
AWSReservedSSO_<set>_<hex> at start (as the rig's admin) and answers
GetRoleCredentials with AssumeRole on it, so the strict STS accepts them
downstream and GetCallerIdentity names the user's session.

    .venv/bin/python hw/sso/sso_server.py --port-file F --recording R.jsonl \\
        --sts-endpoint http://127.0.0.1:P [--config C.json]

with VAULT_RIG_ADMIN_AWS_ACCESS_KEY_ID/SECRET_ACCESS_KEY in the environment.
The clock is time.time() throughout (libfaketime moves it) and the server
never sleeps.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import hmac
import html
import json
import os
import re
import secrets
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit

import botocore

HOST = "127.0.0.1"
ACCOUNT = "123456789012"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
GRANTS = {"authorization_code", DEVICE_GRANT, "refresh_token"}
# The scope the AWS CLI registers with to get refreshable tokens; a client
# registered without it gets access tokens only (the legacy, 8-hour flow).
REFRESH_SCOPE = "sso:account:access"
# RFC 7636 section 4.1: code_verifier = 43*128unreserved.
VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
# RFC 7636 section 4.2: BASE64URL(SHA256(verifier)) without padding, 43 chars.
CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")
USER_CODE_CHARS = "BCDFGHJKLMNPQRSTVWXZ"  # RFC 8628 section 6.1: no vowels

DEFAULT_CONFIG = {
    "user": "rig-user@example.com",
    "accounts": [{
        "accountId": ACCOUNT,
        "accountName": "rig",
        "emailAddress": "rig@example.com",
        "roles": ["AdministratorAccess", "ReadOnlyAccess"],
    }],
}


def now() -> float:
    return time.time()


def token(prefix: str, n: int = 48) -> str:
    return prefix + secrets.token_urlsafe(n)


# ----------------------------------------------------------------- errors

class OidcError(Exception):
    """An SSO OIDC error: its modelled shape (x-amzn-ErrorType), the OAuth
    error code in the body (RFC 6749 section 5.2 / RFC 8628 section 3.5)
    and the status the model gives the shape."""

    STATUS = {"InvalidClientException": 401, "InternalServerException": 500}

    def __init__(self, shape: str, error: str, description: str):
        super().__init__(description)
        self.shape, self.error, self.description = shape, error, description
        self.status = self.STATUS.get(shape, 400)


def invalid_request(d): return OidcError("InvalidRequestException", "invalid_request", d)
def invalid_client(d): return OidcError("InvalidClientException", "invalid_client", d)
def invalid_grant(d): return OidcError("InvalidGrantException", "invalid_grant", d)
def invalid_scope(d): return OidcError("InvalidScopeException", "invalid_scope", d)
def unsupported_grant(d): return OidcError("UnsupportedGrantTypeException", "unsupported_grant_type", d)
def unauthorized_client(d): return OidcError("UnauthorizedClientException", "unauthorized_client", d)


class PortalError(Exception):
    def __init__(self, shape: str, status: int, message: str):
        super().__init__(message)
        self.shape, self.status, self.message = shape, status, message


# What the portal answers for an unknown, expired or logged-out token, as
# AWS's users report it (UnauthorizedException).
NOT_SIGNED_IN = ("UnauthorizedException", 401, "Session token not found or invalid")


# ----------------------------------------------------------- the model

class Model:
    """The operations of one botocore service definition: route → (name,
    input shape), and a check of a request's members against the shape."""

    def __init__(self, service: str):
        path = os.path.join(os.path.dirname(botocore.__file__), "data", service,
                            "2019-06-10", "service-2.json.gz")
        with gzip.open(path) as f:
            self.spec = json.load(f)
        self.routes = {}
        for name, op in self.spec["operations"].items():
            uri = op["http"]["requestUri"]
            if "?" in uri:  # CreateTokenWithIAM: not modelled here
                continue
            self.routes[(op["http"]["method"], uri)] = (name, op.get("input", {}).get("shape"))

    def check(self, shape_name: str, values: dict) -> None:
        shape = self.spec["shapes"][shape_name]
        for member in shape.get("required", []):
            if values.get(member) in (None, ""):
                raise ValueError(f"{member} is required")
        for member, value in values.items():
            ref = shape["members"].get(member)
            if ref is None or value is None:
                continue
            kind = self.spec["shapes"][ref["shape"]]["type"]
            ok = {"string": isinstance(value, str),
                  "list": isinstance(value, list) and all(isinstance(v, str) for v in value),
                  "integer": isinstance(value, int) and not isinstance(value, bool),
                  "long": isinstance(value, int) and not isinstance(value, bool)}.get(kind, True)
            if not ok:
                raise ValueError(f"{member} must be a {kind}")


# ------------------------------------------------------------------ state

@dataclass
class Client:
    client_id: str
    secret: str
    name: str
    issued_at: float
    expires_at: float
    scopes: list[str]
    grant_types: list[str] | None  # None: not given (device flow clients)
    redirect_uris: list[str]
    issuer_url: str | None

    def allows(self, grant: str) -> bool:
        if grant == "refresh_token":
            return self.refreshable()
        if self.grant_types is None:  # as the AWS CLI registers for the device flow
            return grant == DEVICE_GRANT
        return grant in self.grant_types

    def refreshable(self) -> bool:
        return REFRESH_SCOPE in self.scopes and (
            self.grant_types is None or "refresh_token" in self.grant_types)


@dataclass
class Pending:
    """A sign-in waiting for the browser: a device authorization or an
    authorize request. decision: None (waiting), "approve" or "deny"."""
    kind: str  # "device" | "authorize"
    id: str
    client_id: str
    expires_at: float
    decision: str | None = None
    # device
    device_code: str = ""
    user_code: str = ""
    interval: int = 1
    last_poll: float | None = None
    done: bool = False
    # authorize
    redirect_uri: str = ""
    state: str | None = None
    challenge: str = ""
    scopes: list[str] = field(default_factory=list)


@dataclass
class AuthCode:
    code: str
    client_id: str
    redirect_uri: str
    challenge: str
    expires_at: float
    used: bool = False
    issued: list[str] = field(default_factory=list)  # tokens, revoked on reuse


@dataclass
class Grant:
    """What one sign-in gave: access tokens and a refresh token, ended
    together by Logout (or by a reused authorization code)."""
    client_id: str
    user: str
    ends_at: float  # the portal session's end: refresh tokens stop working
    revoked: bool = False


class State:
    def __init__(self, args, config: dict, sts):
        self.lock = threading.Lock()
        self.args = args
        self.config = config
        self.sts = sts
        self.clients: dict[str, Client] = {}
        self.pending: dict[str, Pending] = {}  # by id
        self.codes: dict[str, AuthCode] = {}
        self.access: dict[str, tuple[Grant, float]] = {}  # token → (grant, expiry)
        self.refresh: dict[str, Grant] = {}
        self.policy = {"device": "manual", "authorize": "manual"}
        self.role_arns: dict[tuple[str, str], str] = {}

    # ---- tokens

    def issue(self, grant: Grant, client: Client) -> dict:
        access = token("aoa", 96)
        lifetime = self.args.access_token_seconds
        if lifetime is None:
            lifetime = 3600 if client.refreshable() else 28800
        self.access[access] = (grant, now() + lifetime)
        out = {"accessToken": access, "tokenType": "Bearer", "expiresIn": lifetime}
        if client.refreshable():
            refresh = token("aor", 96)
            self.refresh[refresh] = grant
            out["refreshToken"] = refresh
        return out

    def bearer(self, access: str | None) -> Grant:
        found = self.access.get(access or "")
        if found is None or found[0].revoked or now() >= found[1]:
            raise PortalError(*NOT_SIGNED_IN)
        return found[0]


# ------------------------------------------------------------ operations

def client_for(state: State, body: dict) -> Client:
    client = state.clients.get(body.get("clientId", ""))
    if client is None or not hmac.compare_digest(client.secret.encode(),
                                                 str(body.get("clientSecret", "")).encode()):
        raise invalid_client("Invalid client")
    if now() >= client.expires_at:
        raise invalid_client("Client registration has expired")
    return client


def register_client(state: State, body: dict, base: str) -> dict:
    if body["clientType"] != "public":
        raise invalid_request("Invalid client type")
    grants = body.get("grantTypes")
    if grants is not None:
        bad = [g for g in grants if g not in GRANTS]
        if bad or not grants:
            raise unsupported_grant(f"Unsupported grant types: {bad}")
    redirects = body.get("redirectUris") or []
    for uri in redirects:
        parts = urlsplit(uri)
        # Native apps' redirect URIs: the loopback IP literal over http
        # (RFC 8252 section 7.3), or a private-use scheme (7.1).
        if parts.scheme in ("http", "https") and parts.hostname not in ("127.0.0.1", "::1"):
            raise OidcError("InvalidRedirectUriException", "invalid_redirect_uri",
                            f"Invalid redirect uri: {uri}")
    if grants and "authorization_code" in grants:
        if not redirects:
            raise OidcError("InvalidRedirectUriException", "invalid_redirect_uri",
                            "The authorization_code grant needs a redirect uri")
        if not body.get("issuerUrl"):
            raise invalid_request("The authorization_code grant needs an issuerUrl")
    scopes = body.get("scopes") or []
    for s in scopes:
        if not re.match(r"^[a-z0-9_-]+:[a-z0-9_:-]+$", s):
            raise invalid_scope(f"Invalid scope: {s}")
    t = now()
    client = Client(
        client_id=token("cli-", 24), secret=token("sec-", 96), name=body["clientName"],
        issued_at=t, expires_at=t + state.args.client_seconds, scopes=scopes,
        grant_types=grants, redirect_uris=redirects, issuer_url=body.get("issuerUrl"))
    with state.lock:
        state.clients[client.client_id] = client
    return {
        "clientId": client.client_id,
        "clientSecret": client.secret,
        "clientIdIssuedAt": int(client.issued_at),
        "clientSecretExpiresAt": int(client.expires_at),
        **({"authorizationEndpoint": f"{base}/authorize",
            "tokenEndpoint": f"{base}/token"} if grants and "authorization_code" in grants else {}),
    }


def start_device_authorization(state: State, body: dict, base: str) -> dict:
    client = client_for(state, body)
    if not client.allows(DEVICE_GRANT):
        raise unauthorized_client("The client is not registered for the device code grant")
    user_code = "".join(secrets.choice(USER_CODE_CHARS) for _ in range(8))
    user_code = user_code[:4] + "-" + user_code[4:]
    p = Pending(kind="device", id=token("dev-", 12), client_id=client.client_id,
                expires_at=now() + state.args.device_code_seconds,
                device_code=token("", 48), user_code=user_code, interval=state.args.interval)
    with state.lock:
        if state.policy["device"] != "manual":
            p.decision = state.policy["device"]
        state.pending[p.id] = p
    return {
        "deviceCode": p.device_code,
        "userCode": p.user_code,
        "verificationUri": f"{base}/device",
        "verificationUriComplete": f"{base}/device?user_code={p.user_code}",
        "expiresIn": state.args.device_code_seconds,
        "interval": p.interval,
    }


def create_token(state: State, body: dict) -> dict:
    client = client_for(state, body)
    grant_type = body["grantType"]
    if grant_type not in GRANTS:
        raise unsupported_grant(f"Unsupported grant type: {grant_type}")
    if not client.allows(grant_type):
        raise unauthorized_client(f"The client is not authorized for the {grant_type} grant")
    with state.lock:
        if grant_type == DEVICE_GRANT:
            return device_token(state, client, body)
        if grant_type == "authorization_code":
            return code_token(state, client, body)
        return refresh_token(state, client, body)


def device_token(state: State, client: Client, body: dict) -> dict:
    code = body.get("deviceCode") or ""
    p = next((p for p in state.pending.values()
              if p.kind == "device" and hmac.compare_digest(p.device_code.encode(), code.encode())),
             None)
    if p is None or p.client_id != client.client_id or p.done:
        raise invalid_grant("Invalid device code provided")
    t = now()
    if t >= p.expires_at:
        raise OidcError("ExpiredTokenException", "expired_token", "Device code has expired")
    # RFC 8628 section 3.5: polling faster than the interval is answered
    # slow_down, and the interval grows by 5 seconds for this code.
    last, p.last_poll = p.last_poll, time.monotonic()
    if last is not None and p.last_poll - last < p.interval:
        p.interval += 5
        raise OidcError("SlowDownException", "slow_down", "Client is polling too fast")
    if p.decision is None:
        raise OidcError("AuthorizationPendingException", "authorization_pending",
                        "Authorization is still pending")
    p.done = True
    if p.decision != "approve":
        raise OidcError("AccessDeniedException", "access_denied", "Access denied")
    grant = Grant(client.client_id, state.config["user"], t + state.args.session_seconds)
    return state.issue(grant, client)


def code_token(state: State, client: Client, body: dict) -> dict:
    code = state.codes.get(body.get("code") or "")
    if code is None or code.client_id != client.client_id:
        raise invalid_grant("Invalid authorization code provided")
    if code.used:
        # RFC 6749 section 4.1.2: a code is used once; a second use should
        # revoke what the first gave.
        for t in code.issued:
            grant = state.access.get(t, (None,))[0]
            if grant is not None:
                grant.revoked = True
        raise invalid_grant("Authorization code has already been used")
    code.used = True
    if now() >= code.expires_at:
        # The AWS CLI v2 handles an expired code as ExpiredTokenException
        # (awscli/botocore/utils.py, SSOTokenFetcherAuth._create_token_).
        raise OidcError("ExpiredTokenException", "expired_token", "Authorization code has expired")
    # RFC 6749 section 4.1.3: redirect_uri identical to the authorize request's.
    if body.get("redirectUri") != code.redirect_uri:
        raise invalid_grant("Invalid redirect uri")
    # RFC 7636 section 4.6: BASE64URL(SHA256(ASCII(code_verifier))) == code_challenge.
    verifier = body.get("codeVerifier") or ""
    if not VERIFIER.match(verifier):
        raise invalid_grant("Invalid code verifier")
    computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest())
    if not hmac.compare_digest(computed.rstrip(b"=").decode(), code.challenge):
        raise invalid_grant("Code verifier does not match the code challenge")
    grant = Grant(client.client_id, state.config["user"], now() + state.args.session_seconds)
    out = state.issue(grant, client)
    code.issued.append(out["accessToken"])
    return out


def refresh_token(state: State, client: Client, body: dict) -> dict:
    old = body.get("refreshToken") or ""
    grant = state.refresh.get(old)
    if grant is None or grant.client_id != client.client_id or grant.revoked:
        raise invalid_grant("Invalid refresh token provided")
    if now() >= grant.ends_at:
        raise OidcError("ExpiredTokenException", "expired_token", "Refresh token has expired")
    # Rotated: the old refresh token is spent, the answer carries a new one.
    del state.refresh[old]
    return state.issue(grant, client)


# ---- the authorize page (the browser's side of the authorization-code flow)

def authorize(state: State, query: dict) -> tuple[int, dict, str]:
    """RFC 6749 section 4.1.1 with RFC 7636 section 4.3, as the AWS CLI v2
    sends it (its parameter for scopes is 'scopes'). Errors about the
    client or redirect_uri are shown, never redirected (section 4.1.2.1)."""
    client = state.clients.get(query.get("client_id", ""))
    if client is None or now() >= client.expires_at:
        return 400, {}, "invalid_client: unknown or expired client_id"
    redirect = query.get("redirect_uri", "")
    if not any(loopback_match(r, redirect) for r in client.redirect_uris):
        return 400, {}, "invalid_request: redirect_uri is not registered for this client"

    def back(**params) -> tuple[int, dict, str]:
        if query.get("state") is not None:
            params["state"] = query["state"]
        return 302, {"Location": redirect + ("&" if "?" in redirect else "?") + urlencode(params)}, ""

    if query.get("response_type") != "code":
        return back(error="unsupported_response_type")
    if not client.allows("authorization_code"):
        return back(error="unauthorized_client")
    if query.get("code_challenge_method") != "S256":
        # RFC 7636 section 4.3 lets "plain" through; AWS's clients send S256.
        return back(error="invalid_request", error_description="code_challenge_method must be S256")
    if not CHALLENGE.match(query.get("code_challenge", "")):
        return back(error="invalid_request", error_description="code_challenge is missing or malformed")
    scopes = (query.get("scopes") or query.get("scope") or "").split()
    if any(s not in client.scopes for s in scopes):
        return back(error="invalid_scope")
    p = Pending(kind="authorize", id=token("az-", 12), client_id=client.client_id,
                expires_at=now() + state.args.device_code_seconds, redirect_uri=redirect,
                state=query.get("state"), challenge=query["code_challenge"], scopes=scopes)
    with state.lock:
        state.pending[p.id] = p
        policy = state.policy["authorize"]
    if policy != "manual":
        return decide_authorize(state, p, policy)
    return 200, {"Content-Type": "text/html"}, (
        f"<html><body><p>Sign in to allow {html.escape(client.name)} to access your AWS "
        f"accounts.</p><p>Request {p.id}</p></body></html>")


def decide_authorize(state: State, p: Pending, decision: str) -> tuple[int, dict, str]:
    """The user's answer: a redirect back to the client's loopback listener."""
    with state.lock:
        p.decision = decision
        state.pending.pop(p.id, None)
        params = {}
        if decision == "approve":
            code = AuthCode(token("", 48), p.client_id, p.redirect_uri, p.challenge,
                            now() + state.args.auth_code_seconds)
            state.codes[code.code] = code
            params["code"] = code.code
        else:
            params = {"error": "access_denied", "error_description": "The user denied the request"}
    if p.state is not None:
        params["state"] = p.state
    sep = "&" if "?" in p.redirect_uri else "?"
    return 302, {"Location": p.redirect_uri + sep + urlencode(params)}, ""


def loopback_match(registered: str, given: str) -> bool:
    """RFC 8252 section 7.3: for a loopback IP redirect URI the port is the
    client's to choose at request time; everything else must match."""
    r, g = urlsplit(registered), urlsplit(given)
    if r.scheme == "http" and r.hostname in ("127.0.0.1", "::1"):
        return (g.scheme, g.hostname, g.path, g.query) == (r.scheme, r.hostname, r.path, r.query)
    return registered == given


# ---------------------------------------------------------------- portal

def list_accounts(state: State, grant: Grant, query: dict) -> dict:
    accounts = [{k: a[k] for k in ("accountId", "accountName", "emailAddress")}
                for a in state.config["accounts"]]
    return page(accounts, query, "accountList")


def list_account_roles(state: State, grant: Grant, query: dict) -> dict:
    account = account_of(state, query.get("account_id"))
    roles = [{"roleName": r, "accountId": account["accountId"]} for r in account["roles"]]
    return page(roles, query, "roleList")


def page(items: list, query: dict, key: str) -> dict:
    try:
        start = int(query.get("next_token") or 0)
        size = int(query.get("max_result") or 100)
    except ValueError:
        raise PortalError("InvalidRequestException", 400, "Invalid pagination parameters")
    if not 1 <= size <= 100:
        raise PortalError("InvalidRequestException", 400, "max_result must be 1..100")
    out = {key: items[start:start + size]}
    if start + size < len(items):
        out["nextToken"] = str(start + size)
    return out


def account_of(state: State, account_id: str | None) -> dict:
    for a in state.config["accounts"]:
        if a["accountId"] == account_id:
            return a
    # The portal's answer for an account or role the user is not assigned.
    raise PortalError("ForbiddenException", 403, "No access")


def get_role_credentials(state: State, grant: Grant, query: dict) -> dict:
    account = account_of(state, query.get("account_id"))
    if query.get("role_name") not in account["roles"]:
        raise PortalError("ForbiddenException", 403, "No access")
    arn = state.role_arns[(account["accountId"], query["role_name"])]
    creds = state.sts.assume_role(RoleArn=arn, RoleSessionName=grant.user,
                                  DurationSeconds=state.args.role_session_seconds)["Credentials"]
    return {"roleCredentials": {
        "accessKeyId": creds["AccessKeyId"],
        "secretAccessKey": creds["SecretAccessKey"],
        "sessionToken": creds["SessionToken"],
        "expiration": int(creds["Expiration"].timestamp() * 1000),
    }}


def logout(state: State, grant: Grant, query: dict) -> None:
    grant.revoked = True
    return None


def provision_roles(state: State, iam) -> None:
    """One role per (account, permission set), named as Identity Center
    names them (AWSReservedSSO_<set>_<16 hex>, path
    /aws-reserved/sso.amazonaws.com/), trusting the account."""
    for account in state.config["accounts"]:
        if account["accountId"] != ACCOUNT:
            raise SystemExit(f"account {account['accountId']}: the rig's STS has only {ACCOUNT}")
        for role in account["roles"]:
            name = f"AWSReservedSSO_{role}_{secrets.token_hex(8)}"
            trust = {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": ["sts:AssumeRole", "sts:TagSession"]}]}
            arn = iam.create_role(RoleName=name, Path="/aws-reserved/sso.amazonaws.com/",
                                  AssumeRolePolicyDocument=json.dumps(trust),
                                  MaxSessionDuration=43200)["Role"]["Arn"]
            state.role_arns[(account["accountId"], role)] = arn


# ------------------------------------------------------------ HTTP layer

class Recording:
    """One JSON object per line, appended and flushed as each request ends."""

    def __init__(self, path: str | None):
        self._lock = threading.Lock()
        self._file = open(path, "a", encoding="utf-8") if path else None

    def write(self, entry: dict) -> None:
        if self._file is None:
            return
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()


OIDC_OPS = {"RegisterClient": register_client,
            "StartDeviceAuthorization": start_device_authorization,
            "CreateToken": create_token}
PORTAL_OPS = {"GetRoleCredentials": get_role_credentials, "ListAccounts": list_accounts,
              "ListAccountRoles": list_account_roles, "Logout": logout}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    service = ""  # set per listener: "sso-oidc" | "sso"
    state: State
    model: Model
    recording: Recording

    def log_message(self, fmt, *args):  # the recording is the log
        pass

    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def handle_any(self):
        started = now()
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        entry = {"ts": round(started, 3), "method": self.command, "path": parts.path,
                 "url": self.path, "service": self.service, "action": None,
                 "grant_type": None, "headers": dict(self.headers.items()),
                 "body": base64.b64encode(body).decode("ascii"), "body_encoded": True}
        status, headers, payload, error = self.route(parts.path, query, body, entry)
        data = payload if isinstance(payload, bytes) else payload.encode("utf-8")
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        entry.update(status=status, error=error)
        self.recording.write(entry)

    def route(self, path: str, query: dict, body: bytes, entry: dict):
        st = self.state
        if self.service == "sso-oidc":
            base = f"http://{HOST}:{self.server.server_port}"
            if path.startswith("/rig/"):
                entry["service"] = "rig"
                return control(st, self.command, path, query, body)
            if self.command == "GET" and path == "/authorize":
                entry["action"] = "Authorize"
                status, headers, text = authorize(st, query)
                back = dict(parse_qsl(urlsplit(headers.get("Location", "")).query))
                error = back.get("error") or (text.split(":")[0] if status >= 400 else None)
                return status, headers, text, error
            if self.command == "GET" and path == "/device":
                entry["action"] = "VerificationPage"
                code = html.escape(query.get("user_code", ""))
                return 200, {"Content-Type": "text/html"}, (
                    f"<html><body><p>Confirm that the code is {code}.</p></body></html>"), None
        op = self.model.routes.get((self.command, path))
        if op is None:
            return json_reply(404, {"message": "Not Found"}, "UnknownOperationException")
        name, shape = op
        entry["action"] = name
        try:
            if self.service == "sso-oidc":
                try:
                    values = json.loads(body or b"{}")
                    if not isinstance(values, dict):
                        raise ValueError("the body must be a JSON object")
                    self.model.check(shape, values)
                except ValueError as e:
                    raise invalid_request(str(e))
                entry["grant_type"] = values.get("grantType")
                base = f"http://{HOST}:{self.server.server_port}"
                fn = OIDC_OPS[name]
                out = fn(st, values) if fn is create_token else fn(st, values, base)
                return json_reply(200, out)
            values = {"accessToken": self.headers.get("x-amz-sso_bearer_token")}
            members = st_members(self.model, shape)
            try:
                for member, (loc, kind) in members.items():
                    if loc in query:
                        values[member] = int(query[loc]) if kind == "integer" else query[loc]
                self.model.check(shape, values)
            except ValueError as e:
                raise PortalError("InvalidRequestException", 400, str(e))
            with st.lock:
                grant = st.bearer(values["accessToken"])
            out = PORTAL_OPS[name](st, grant, query)
            return json_reply(200, out if out is not None else {})
        except OidcError as e:
            return json_reply(e.status, {"error": e.error, "error_description": e.description},
                              e.shape)
        except PortalError as e:
            return json_reply(e.status, {"message": e.message}, e.shape)


def st_members(model: Model, shape: str) -> dict:
    """Query-string members of a portal input shape: member → (query name, type)."""
    return {m: (ref["locationName"], model.spec["shapes"][ref["shape"]]["type"])
            for m, ref in model.spec["shapes"][shape]["members"].items()
            if ref.get("location") == "querystring"}


def json_reply(status: int, obj: dict, error: str | None = None):
    headers = {"Content-Type": "application/json"}
    if error:
        headers["x-amzn-ErrorType"] = error
    return status, headers, json.dumps(obj), error


# ------------------------------------------------------ scripted browser

def control(state: State, method: str, path: str, query: dict, body: bytes):
    """The scripted browser (and user): see hw/README.md, "The SSO double"."""
    try:
        args = json.loads(body or b"{}")
    except ValueError:
        return json_reply(400, {"message": "body must be JSON"}, "BadRequest")
    if method == "GET" and path == "/rig/pending":
        with state.lock:
            items = [{"kind": p.kind, "id": p.id, "user_code": p.user_code or None,
                      "client_id": p.client_id, "expires_at": p.expires_at,
                      "decision": p.decision}
                     for p in state.pending.values()
                     if (p.kind == "authorize" or (p.decision is None and not p.done))
                     and now() < p.expires_at]
        return json_reply(200, {"pending": items})
    if method == "POST" and path == "/rig/policy":
        for kind in ("device", "authorize"):
            if kind in args:
                if args[kind] not in ("manual", "approve", "deny"):
                    return json_reply(400, {"message": f"{kind}: manual|approve|deny"}, "BadRequest")
                with state.lock:
                    state.policy[kind] = args[kind]
        return json_reply(200, {"policy": state.policy})
    if method == "POST" and path in ("/rig/approve", "/rig/deny"):
        decision = path.rsplit("/", 1)[1]
        with state.lock:
            if "user_code" in args:
                p = next((p for p in state.pending.values() if p.kind == "device"
                          and p.user_code == args["user_code"].upper()), None)
            else:
                p = state.pending.get(args.get("id", ""))
            if p is None or p.decision is not None or p.done or now() >= p.expires_at:
                return json_reply(404, {"message": "no such pending sign-in"}, "NotFound")
            if p.kind == "device":
                p.decision = decision
                return json_reply(200, {"kind": "device", "decision": decision})
        status, headers, _ = decide_authorize(state, p, decision)
        return json_reply(200, {"kind": "authorize", "decision": decision,
                                "location": headers["Location"]})
    return json_reply(404, {"message": "Not Found"}, "NotFound")


# ------------------------------------------------------------------ main

def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port-file", help="write {\"oidc\": P, \"portal\": Q} here once listening")
    p.add_argument("--recording", help="append one JSON line per request here")
    p.add_argument("--sts-endpoint", default=os.environ.get("AWS_ENDPOINT_URL"),
                   help="the rig's strict STS/IAM (default: AWS_ENDPOINT_URL)")
    p.add_argument("--config", help="JSON: {\"user\", \"accounts\": [{\"accountId\", "
                   "\"accountName\", \"emailAddress\", \"roles\": [...]}]}")
    p.add_argument("--access-token-seconds", type=int, default=None,
                   help="access token lifetime (default 3600 with a refresh token, else 28800)")
    p.add_argument("--session-seconds", type=int, default=28800,
                   help="portal session: how long refresh tokens work (8 h)")
    p.add_argument("--client-seconds", type=int, default=90 * 86400,
                   help="client registration lifetime (90 days)")
    p.add_argument("--device-code-seconds", type=int, default=600)
    p.add_argument("--auth-code-seconds", type=int, default=300)
    p.add_argument("--interval", type=int, default=1)
    p.add_argument("--role-session-seconds", type=int, default=3600)
    args = p.parse_args(argv)
    if not args.sts_endpoint:
        raise SystemExit("--sts-endpoint (or AWS_ENDPOINT_URL) is required")

    config = DEFAULT_CONFIG
    if args.config:
        with open(args.config) as f:
            config = json.load(f)

    import boto3
    session = boto3.session.Session(
        aws_access_key_id=os.environ["VAULT_RIG_ADMIN_AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["VAULT_RIG_ADMIN_AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1")
    cfg = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"})
    sts = session.client("sts", endpoint_url=args.sts_endpoint, config=cfg)
    iam = session.client("iam", endpoint_url=args.sts_endpoint, config=cfg)

    recording = Recording(args.recording)
    recording.write({"event": "started", "ts": round(now(), 3), "pid": os.getpid()})
    state = State(args, config, sts)
    provision_roles(state, iam)

    servers = {}
    for service, spec in (("sso-oidc", "sso-oidc"), ("sso", "sso")):
        handler = type(f"Handler_{service}", (Handler,), {
            "service": service, "state": state, "model": Model(spec), "recording": recording})
        servers[service] = ThreadingHTTPServer((HOST, 0), handler)
        servers[service].daemon_threads = True
    ports = {"oidc": servers["sso-oidc"].server_port, "portal": servers["sso"].server_port}
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            json.dump(ports, f)
        os.replace(args.port_file + ".tmp", args.port_file)
    print(f"SSO double: OIDC http://{HOST}:{ports['oidc']}, portal http://{HOST}:{ports['portal']}",
          flush=True)

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=servers["sso"].serve_forever, daemon=True).start()
    try:
        servers["sso-oidc"].serve_forever()
    finally:
        for s in servers.values():
            s.server_close()


if __name__ == "__main__":
    main()
