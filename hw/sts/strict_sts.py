#!/usr/bin/env python3
"""The rig's strict STS and IAM: moto's server app behind a middleware that
checks every request as AWS does.

moto on its own takes any signature, any duration and any MFA code (twice),
hands out the same fixed credentials from every GetSessionToken, and answers
GetCallerIdentity for session credentials with a default identity. vault is
a credential broker, so those are exactly the rules its tests must run into.
This server keeps moto for IAM's bookkeeping (users, keys, MFA devices,
roles) and answers the four STS operations vault depends on itself:

* every request must carry a valid SigV4 signature by a secret this server
  actually issued (an IAM user's access key in moto, or a session it handed
  out), signed within 15 minutes of its clock;
* GetSessionToken, GetFederationToken and AssumeRole issue fresh random
  credentials within AWS's duration limits, and are tracked;
* MFA codes are RFC 6238 codes of the device's seed, each taken once;
* GetCallerIdentity names the real principal.

Every rule, with the AWS documentation it comes from, is in hw/README.md
("The strict STS"). The clock is time.time() throughout, so libfaketime
moves it (see the README for the settings that work with Python).

    .venv/bin/python hw/sts/strict_sts.py --port 0 --port-file F \\
        --recording R.jsonl --admin-file A.json

It only ever listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import fnmatch
import hmac
import io
import json
import os
import re
import secrets
import signal
import string
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote
from xml.sax.saxutils import escape

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sigv4  # noqa: E402
import totp  # noqa: E402
from sigv4 import AwsError  # noqa: E402

# moto's own recorder would log a second, differently shaped copy of every
# request; this middleware records instead (with status and error).
os.environ.pop("MOTO_ENABLE_RECORDING", None)

from moto.core import DEFAULT_ACCOUNT_ID  # noqa: E402
from moto.iam.models import iam_backends  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.datastructures import EnvironHeaders  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

HOST = "127.0.0.1"
PARTITION = "aws"
ADMIN_USER = "vault-rig-admin"
NAMESPACES = {
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
}
# Unsigned by design on AWS (the caller has no AWS credentials yet).
UNSIGNED_STS_ACTIONS = {"AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"}
# IAM operations whose UserName is optional: "If you do not specify a user
# name, IAM determines the user name implicitly based on the AWS access key
# ID signing the request" (IAM API Reference, e.g. CreateAccessKey).
IMPLICIT_USER_ACTIONS = {
    "GetUser", "CreateAccessKey", "DeleteAccessKey", "UpdateAccessKey",
    "ListAccessKeys", "ListMFADevices", "ListSigningCertificates",
    "UploadSigningCertificate", "UpdateSigningCertificate",
    "DeleteSigningCertificate", "ListSSHPublicKeys",
}

# AWS's messages, as AWS CLI and SDK users have reported them (sources in
# hw/README.md). The double space after "code." is AWS's.
MSG_INVALID_TOKEN = {
    "sts": "The security token included in the request is invalid.",
    "iam": "The security token included in the request is invalid",
}
MSG_EXPIRED = "The security token included in the request is expired"
MSG_BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you "
    "provided. Check your AWS Secret Access Key and signing method. Consult "
    "the service documentation for details."
)
MSG_MFA_INVALID_CODE = "MultiFactorAuthentication failed with invalid MFA one time pass code."
MSG_MFA_UNKNOWN_DEVICE = (
    "MultiFactorAuthentication failed, unable to validate MFA code.  Please "
    "verify your MFA serial number is valid and associated with this user."
)
MSG_MFA_INCOMPLETE = (
    "MultiFactorAuthentication failed, must provide both MFA serial number "
    "and one time pass code."
)
MSG_CHAINING = (
    "The requested DurationSeconds exceeds the 1 hour session limit for roles "
    "assumed by role chaining."
)
MSG_OVER_MAX = "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."

# AWS's session limits (STS API Reference, DurationSeconds of each action).
SESSION_TOKEN_DURATION = (900, 129600, 43200)
FEDERATION_DURATION = (900, 129600, 43200)
ASSUME_ROLE_DURATION = (900, 43200, 3600)
CHAINED_MAX = 3600


def now() -> float:
    # The one clock: libfaketime moves it together with the clients'.
    return time.time()


def iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


# --------------------------------------------------------------- principals

@dataclass
class Session:
    """Credentials this server issued, with everything needed to check them."""

    access_key_id: str
    secret: str
    token: str
    expires: float
    kind: str  # "session" (GetSessionToken) | "role" | "federated"
    account: str
    arn: str
    user_id: str
    # The IAM user who started the chain: whose MFA devices count, and whom
    # IAM acts as for GetSessionToken credentials.
    user_name: str | None
    mfa: bool
    role_arn: str | None = None


@dataclass
class Caller:
    """Who signed the request, once the signature has been verified."""

    kind: str  # "user" (long-term key) | "session" | "role" | "federated"
    account: str
    arn: str
    user_id: str
    user_name: str | None
    mfa: bool
    access_key_id: str
    role_arn: str | None = None

    @property
    def temporary(self) -> bool:
        return self.kind != "user"


def iam_backend(account: str):
    return iam_backends[account][PARTITION]


def find_user_key(key_id: str):
    """(account, user, key) for an IAM user's access key in moto, or None.

    moto also files the temporary keys of its own AssumeRole under
    access_keys; only keys that belong to a user are long-term credentials.
    """
    for account, by_partition in list(iam_backends.items()):
        backend = by_partition[PARTITION]
        for user in list(backend.users.values()):
            for key in list(user.access_keys):
                if key.access_key_id == key_id:
                    return account, user, key
    return None


def user_exists(account: str, name: str | None) -> bool:
    return bool(name) and name in iam_backend(account).users


# ------------------------------------------------------------------- replies

@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    error: str | None = None


STATUS_TEXT = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
               500: "Internal Server Error"}


def xml_reply(service: str, action: str, result: str, request_id: str) -> Reply:
    ns = NAMESPACES.get(service, NAMESPACES["sts"])
    body = (
        f'<{action}Response xmlns="{ns}">'
        f"<{action}Result>{result}</{action}Result>"
        f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
        f"</{action}Response>"
    ).encode()
    return Reply(200, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], body)


def error_reply(service: str, err: AwsError, request_id: str) -> Reply:
    ns = NAMESPACES.get(service, NAMESPACES["sts"])
    body = (
        f'<ErrorResponse xmlns="{ns}"><Error><Type>Sender</Type>'
        f"<Code>{escape(err.code)}</Code><Message>{escape(err.message)}</Message>"
        f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()
    return Reply(err.status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)],
                 body, err.code)


def credentials_xml(s: Session) -> str:
    return (
        "<Credentials>"
        f"<AccessKeyId>{s.access_key_id}</AccessKeyId>"
        f"<SecretAccessKey>{escape(s.secret)}</SecretAccessKey>"
        f"<SessionToken>{escape(s.token)}</SessionToken>"
        f"<Expiration>{iso(s.expires)}</Expiration>"
        "</Credentials>"
    )


def validation(message: str) -> AwsError:
    return AwsError("ValidationError", message, 400)


def access_denied(message: str) -> AwsError:
    return AwsError("AccessDenied", message, 403)


def not_authorized(caller: Caller, action: str, resource: str) -> AwsError:
    return access_denied(
        f"User: {caller.arn} is not authorized to perform: {action} on resource: {resource}"
    )


# ---------------------------------------------------------------- recording

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


# --------------------------------------------------------------- middleware

KEY_ID_CHARS = string.ascii_uppercase + "234567"
SECRET_CHARS = string.ascii_letters + string.digits + "+/"
SESSION_NAME = re.compile(r"^[\w+=,.@-]+$")


class StrictSts:
    def __init__(self, moto_app, recording: Recording):
        self.moto = moto_app
        self.recording = recording
        self.used_codes = totp.UsedCodes()
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    # ---- WSGI entry

    def __call__(self, environ, start_response):
        started = now()
        request_id = str(uuid.uuid4())
        body = self._read_body(environ)
        headers = list(EnvironHeaders(environ).items())
        query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        params = dict(query)
        if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        path = environ.get("PATH_INFO", "/")
        action = params.get("Action")
        service, key_id = "unsigned", None

        try:
            if path.startswith("/moto-api") or path == "/favicon.ico":
                # moto's own instruments (reset, state): no AWS API, no auth.
                service = "moto-api"
                reply = self._moto(environ)
            else:
                signing = sigv4.parse(dict(headers), query)
                if signing is None:
                    if action in UNSIGNED_STS_ACTIONS:
                        service = "sts"
                        reply = self._moto(environ)
                    else:
                        raise AwsError("MissingAuthenticationToken",
                                       "Request is missing Authentication Token")
                else:
                    service, key_id = signing.service, signing.access_key_id
                    caller = self._authenticate(signing, environ["REQUEST_METHOD"], path,
                                                query, headers, body)
                    reply = self._dispatch(service, action, params, caller, environ,
                                           request_id)
        except AwsError as err:
            reply = error_reply(service, err, request_id)

        self.recording.write({
            "ts": round(started, 3),
            "method": environ["REQUEST_METHOD"],
            "path": path,
            "url": path + ("?" + environ["QUERY_STRING"] if environ.get("QUERY_STRING") else ""),
            "service": service,
            "action": action,
            "key_id": key_id,
            "headers": dict(headers),
            "body": base64.b64encode(body).decode("ascii"),
            "body_encoded": True,
            "status": reply.status,
            "error": reply.error,
        })
        start_response(f"{reply.status} {STATUS_TEXT.get(reply.status, 'Status')}",
                       reply.headers)
        return [reply.body]

    @staticmethod
    def _read_body(environ) -> bytes:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        return body

    def _moto(self, environ) -> Reply:
        """moto's answer, collected so it can be recorded."""
        got: dict = {}
        chunks: list[bytes] = []

        def start_response(status, headers, exc_info=None):
            got["status"], got["headers"] = status, headers
            return chunks.append

        result = self.moto(environ, start_response)
        try:
            chunks.extend(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        status = int(got["status"].split()[0])
        body = b"".join(chunks)
        error = None
        if status >= 400:
            m = re.search(rb"<Code>([^<]+)</Code>", body)
            error = m.group(1).decode() if m else str(status)
        # The body is complete: let the server frame it.
        headers = [(k, v) for k, v in got["headers"] if k.lower() != "transfer-encoding"]
        return Reply(status, headers, body, error)

    # ---- authentication

    def _authenticate(self, s: sigv4.Signing, method, path, query, headers, body) -> Caller:
        invalid = AwsError("InvalidClientTokenId",
                           MSG_INVALID_TOKEN.get(s.service, MSG_INVALID_TOKEN["sts"]))
        with self._lock:
            session = self._sessions.get(s.access_key_id)
        if session is not None:
            # A session key id is only good with its own token.
            if s.security_token is None or not hmac.compare_digest(
                s.security_token.encode(), session.token.encode()
            ):
                raise invalid
            secret = session.secret
        else:
            found = find_user_key(s.access_key_id)
            if found is None:
                raise invalid
            account, user, key = found
            # A long-term key with a session token is not a session.
            if key.status != "Active" or s.security_token is not None:
                raise invalid
            secret = key.secret_access_key

        sigv4.check_clock(s, now())
        expected = sigv4.expected_signature(s, secret, method, path, query, headers, body)
        if not sigv4.signature_matches(expected, s.signature):
            raise AwsError("SignatureDoesNotMatch", MSG_BAD_SIGNATURE)

        if session is not None:
            if now() >= session.expires:
                raise AwsError("ExpiredToken", MSG_EXPIRED)
            # GetSessionToken credentials are the user's own: gone with the user.
            if session.kind == "session" and not user_exists(session.account, session.user_name):
                raise invalid
            return Caller(session.kind, session.account, session.arn, session.user_id,
                          session.user_name, session.mfa, session.access_key_id,
                          session.role_arn)
        return Caller("user", account, user.arn, user.id, user.name, False,
                      key.access_key_id)

    # ---- dispatch

    def _dispatch(self, service, action, params, caller: Caller, environ, request_id) -> Reply:
        if service == "sts":
            handler = {
                "GetSessionToken": self._get_session_token,
                "GetFederationToken": self._get_federation_token,
                "AssumeRole": self._assume_role,
                "GetCallerIdentity": self._get_caller_identity,
            }.get(action or "")
            self._sts_allowed(action or "", caller)
            if handler is not None:
                result = handler(params, caller)
                return xml_reply("sts", action, result, request_id)
        elif service == "iam":
            self._iam_gate(action or "", params, caller, environ)
        return self._moto(environ)

    @staticmethod
    def _sts_allowed(action: str, caller: Caller) -> None:
        """What each kind of temporary credentials may call in STS.

        IAM User Guide, "Compare AWS STS credentials": GetSessionToken
        credentials cannot call any STS API except AssumeRole or
        GetCallerIdentity; GetFederationToken credentials nothing but
        GetCallerIdentity; role credentials not GetFederationToken or
        GetSessionToken.
        """
        if not caller.temporary or action == "GetCallerIdentity":
            return
        if action in ("GetSessionToken", "GetFederationToken"):
            raise access_denied(f"Cannot call {action} with session credentials")
        if caller.kind == "session" and action == "AssumeRole":
            return
        if caller.kind == "role":
            return
        raise not_authorized(caller, f"sts:{action}", "*")

    def _iam_gate(self, action: str, params: dict, caller: Caller, environ) -> None:
        # GetSessionToken credentials reach IAM only with MFA, federation
        # credentials never; AWS answers both with InvalidClientTokenId.
        if caller.kind == "federated" or (caller.kind == "session" and not caller.mfa):
            raise AwsError("InvalidClientTokenId", MSG_INVALID_TOKEN["iam"])
        if action == "EnableMFADevice":
            self._check_enable_codes(params, caller)
        if action in IMPLICIT_USER_ACTIONS and not params.get("UserName"):
            if caller.kind not in ("user", "session"):
                raise validation("Must specify userName when calling with non-User credentials")
            # moto works out "the caller" from the key id in the Authorization
            # header, which for a session is a key it has never seen. Naming
            # the user makes it act as the user AWS would.
            self._add_param(environ, "UserName", caller.user_name)

    @staticmethod
    def _add_param(environ, name: str, value: str) -> None:
        extra = f"{quote(name)}={quote(value, safe='')}".encode()
        if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            body = environ["wsgi.input"].read()
            body = body + b"&" + extra if body else extra
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        else:
            qs = environ.get("QUERY_STRING", "")
            environ["QUERY_STRING"] = f"{qs}&{extra.decode()}" if qs else extra.decode()

    # ---- issuing

    def _issue(self, kind, account, arn, user_id, user_name, mfa, duration,
               role_arn=None) -> Session:
        s = Session(
            access_key_id="ASIA" + "".join(secrets.choice(KEY_ID_CHARS) for _ in range(16)),
            secret="".join(secrets.choice(SECRET_CHARS) for _ in range(40)),
            token=base64.b64encode(secrets.token_bytes(270)).decode(),
            expires=now() + duration,
            kind=kind, account=account, arn=arn, user_id=user_id,
            user_name=user_name, mfa=mfa, role_arn=role_arn,
        )
        with self._lock:
            self._sessions[s.access_key_id] = s
        return s

    @staticmethod
    def _duration(params: dict, limits: tuple[int, int, int]) -> int:
        low, high, default = limits
        raw = params.get("DurationSeconds")
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise validation(f"1 validation error detected: Value '{raw}' at "
                             "'durationSeconds' failed to satisfy constraint: "
                             "Member must be a number")
        if value < low:
            raise validation(f"1 validation error detected: Value '{value}' at "
                             "'durationSeconds' failed to satisfy constraint: Member "
                             f"must have value greater than or equal to {low}")
        if value > high:
            raise validation(f"1 validation error detected: Value '{value}' at "
                             "'durationSeconds' failed to satisfy constraint: Member "
                             f"must have value less than or equal to {high}")
        return value

    @staticmethod
    def _name(params: dict, key: str, field: str, low: int, high: int) -> str:
        value = params.get(key)
        if value is None:
            raise validation(f"1 validation error detected: Value null at '{field}' "
                             "failed to satisfy constraint: Member must not be null")
        if not low <= len(value) <= high:
            bound = (f"greater than or equal to {low}" if len(value) < low
                     else f"less than or equal to {high}")
            raise validation(f"1 validation error detected: Value '{value}' at '{field}' "
                             f"failed to satisfy constraint: Member must have length {bound}")
        if not SESSION_NAME.match(value):
            raise validation(f"1 validation error detected: Value '{value}' at '{field}' "
                             "failed to satisfy constraint: Member must satisfy regular "
                             "expression pattern: [\\w+=,.@-]*")
        return value

    # ---- MFA

    def _check_mfa(self, params: dict, account: str, user_name: str | None) -> bool:
        """Whether this call authenticated with MFA; raises when it tried and failed.

        The device must be a virtual MFA device enabled for the IAM user
        behind the credentials (for a role session: the user who started the
        chain), and the code one of its current ones not used before.
        """
        serial, code = params.get("SerialNumber"), params.get("TokenCode")
        if serial is None and code is None:
            return False
        if not serial or not code:
            raise access_denied(MSG_MFA_INCOMPLETE)
        if not code.isdigit():
            raise validation(f"1 validation error detected: Value '{code}' at 'tokenCode' "
                             "failed to satisfy constraint: Member must satisfy regular "
                             "expression pattern: [\\d]*")
        if len(code) != totp.DIGITS:
            bound = ("greater than or equal to 6" if len(code) < 6
                     else "less than or equal to 6")
            raise validation(f"1 validation error detected: Value '{code}' at 'tokenCode' "
                             f"failed to satisfy constraint: Member must have length {bound}")
        device = iam_backend(account).virtual_mfa_devices.get(serial)
        if (device is None or device.user is None or not user_name
                or device.user.name != user_name
                or serial not in device.user.mfa_devices):
            raise access_denied(MSG_MFA_UNKNOWN_DEVICE)
        seed = device.base32_string_seed
        step = totp.matching_step(totp.seed_bytes(seed), code, now())
        # AWS answers a spent code as it answers a wrong one.
        if step is None or not self.used_codes.take(serial, seed, step):
            raise access_denied(MSG_MFA_INVALID_CODE)
        return True

    def _check_enable_codes(self, params: dict, caller: Caller) -> None:
        """EnableMFADevice's two codes: consecutive codes of the device's seed.

        The second must be within the usual window of one step either side
        of now; the first is the step before it, so it may be two steps old:
        a person reads one code, waits for the next, then types both.
        """
        serial = params.get("SerialNumber")
        c1, c2 = params.get("AuthenticationCode1"), params.get("AuthenticationCode2")
        if not serial or not c1 or not c2:
            return  # moto reports the missing parameter
        device = iam_backend(caller.account).virtual_mfa_devices.get(serial)
        if device is None:
            # Hardware tokens are not modelled: nothing to check codes against.
            raise AwsError("NoSuchEntity",
                           f"VirtualMFADevice with serial number {serial} doesn't exist.", 404)
        seed = device.base32_string_seed
        key = totp.seed_bytes(seed)
        here = totp.current_step(now())
        for step in (here - 2, here - 1, here):
            if (hmac.compare_digest(totp.code(key, step), c1)
                    and hmac.compare_digest(totp.code(key, step + 1), c2)):
                if self.used_codes.take(serial, seed, step) and \
                        self.used_codes.take(serial, seed, step + 1):
                    return
                break
        raise AwsError("InvalidAuthenticationCode",
                       "Authentication code for device is not valid.", 403)

    # ---- STS operations

    def _get_session_token(self, params: dict, caller: Caller) -> str:
        duration = self._duration(params, SESSION_TOKEN_DURATION)
        mfa = self._check_mfa(params, caller.account, caller.user_name)
        s = self._issue("session", caller.account, caller.arn, caller.user_id,
                        caller.user_name, mfa, duration)
        return credentials_xml(s)

    def _get_federation_token(self, params: dict, caller: Caller) -> str:
        name = self._name(params, "Name", "name", 2, 32)
        duration = self._duration(params, FEDERATION_DURATION)
        arn = f"arn:{PARTITION}:sts::{caller.account}:federated-user/{name}"
        user_id = f"{caller.account}:{name}"
        s = self._issue("federated", caller.account, arn, user_id, caller.user_name,
                        False, duration)
        return (credentials_xml(s)
                + f"<FederatedUser><Arn>{escape(arn)}</Arn>"
                  f"<FederatedUserId>{escape(user_id)}</FederatedUserId></FederatedUser>")

    def _assume_role(self, params: dict, caller: Caller) -> str:
        role_arn = params.get("RoleArn")
        if not role_arn:
            raise validation("1 validation error detected: Value null at 'roleArn' failed "
                             "to satisfy constraint: Member must not be null")
        session_name = self._name(params, "RoleSessionName", "roleSessionName", 2, 64)
        duration = self._duration(params, ASSUME_ROLE_DURATION)
        mfa_now = self._check_mfa(params, caller.account, caller.user_name)
        # MFA carries through a chain: a role session made with MFA is an
        # MFA-authenticated caller for the next AssumeRole.
        mfa = mfa_now or caller.mfa

        role = self._find_role(role_arn)
        if role is None or not trust_allows(role.assume_role_policy_document, caller,
                                            mfa_now, mfa):
            # AWS does not tell a missing role from a refused one.
            raise not_authorized(caller, "sts:AssumeRole", role_arn)
        if caller.temporary and duration > CHAINED_MAX:
            raise validation(MSG_CHAINING)
        if duration > int(role.max_session_duration or 3600):
            raise validation(MSG_OVER_MAX)

        arn = f"arn:{PARTITION}:sts::{role.account_id}:assumed-role/{role.name}/{session_name}"
        user_id = f"{role.id}:{session_name}"
        s = self._issue("role", role.account_id, arn, user_id, caller.user_name, mfa,
                        duration, role_arn=role.arn)
        return (f"<AssumedRoleUser><Arn>{escape(arn)}</Arn>"
                f"<AssumedRoleId>{escape(user_id)}</AssumedRoleId></AssumedRoleUser>"
                + credentials_xml(s))

    @staticmethod
    def _find_role(arn: str):
        parts = arn.split(":")
        if len(parts) < 6 or parts[2] != "iam" or not parts[5].startswith("role/"):
            return None
        account = parts[4]
        if account not in iam_backends:
            return None
        for role in list(iam_backend(account).roles.values()):
            if role.arn == arn:
                return role
        return None

    @staticmethod
    def _get_caller_identity(params: dict, caller: Caller) -> str:
        return (f"<Arn>{escape(caller.arn)}</Arn><UserId>{escape(caller.user_id)}</UserId>"
                f"<Account>{caller.account}</Account>")


# ------------------------------------------------------------ trust policies

def trust_allows(document: str, caller: Caller, mfa_in_call: bool, mfa: bool) -> bool:
    """A minimal evaluation of a role's trust policy for sts:AssumeRole.

    Principal: "*", {"AWS": ...} naming the account (id or :root), or the
    caller's exact ARN (for a role session: the role's ARN or the session's).
    Condition: Bool / BoolIfExists on aws:MultiFactorAuthPresent. Anything
    else in a Condition does not match for Allow and does match for Deny, so
    that what is not modelled never grants access.
    """
    try:
        doc = json.loads(document)
    except (TypeError, ValueError):
        try:
            from urllib.parse import unquote
            doc = json.loads(unquote(document))
        except (TypeError, ValueError):
            return False
    statements = doc.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    # aws:MultiFactorAuthPresent exists for temporary credentials and for a
    # call that brings its own MFA code; long-term keys alone do not have it.
    mfa_key_present = caller.temporary or mfa_in_call
    allowed = False
    for st in statements:
        if not _action_matches(st.get("Action"), "sts:AssumeRole"):
            continue
        if "Principal" not in st or not _principal_matches(st["Principal"], caller):
            continue
        holds = _conditions_hold(st.get("Condition") or {}, mfa_key_present, mfa)
        if st.get("Effect") == "Deny" and holds is not False:
            return False
        if st.get("Effect") == "Allow" and holds is True:
            allowed = True
    return allowed


def _as_list(v) -> list:
    return v if isinstance(v, list) else [v]


def _action_matches(actions, wanted: str) -> bool:
    return any(fnmatch.fnmatchcase(wanted.lower(), str(a).lower())
               for a in _as_list(actions) if a is not None)


def _principal_matches(principal, caller: Caller) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    names = {"*", caller.account, f"arn:{PARTITION}:iam::{caller.account}:root", caller.arn}
    if caller.role_arn:
        names.add(caller.role_arn)
    return any(str(p) in names for p in _as_list(principal.get("AWS", [])))


def _conditions_hold(conditions: dict, mfa_key_present: bool, mfa: bool) -> bool | None:
    """True/False when every condition is understood; None when one is not."""
    verdict: bool | None = True
    for operator, block in conditions.items():
        if operator not in ("Bool", "BoolIfExists") or not isinstance(block, dict):
            verdict = None
            continue
        for key, values in block.items():
            if key.lower() != "aws:multifactorauthpresent":
                verdict = None
                continue
            if not mfa_key_present:
                if operator == "Bool":
                    return False
                continue  # BoolIfExists: an absent key matches
            wanted = {str(v).lower() for v in _as_list(values)}
            if str(mfa).lower() not in wanted:
                return False
    return verdict


# ------------------------------------------------------------------- startup

def bootstrap_admin(path: str) -> None:
    """An IAM user with an access key for the rig's own setup calls.

    Written 0600 before the server listens, so whoever waits for the port
    can read it.
    """
    backend = iam_backend(DEFAULT_ACCOUNT_ID)
    user = backend.create_user("us-east-1", ADMIN_USER)
    key = backend.create_access_key(ADMIN_USER)
    data = {
        "UserName": user.name,
        "Arn": user.arn,
        "Account": DEFAULT_ACCOUNT_ID,
        "AccessKeyId": key.access_key_id,
        "SecretAccessKey": key.secret_access_key,
    }
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(path + ".tmp", path)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    p.add_argument("--port-file", help="write the port here once listening")
    p.add_argument("--recording", help="append one JSON line per request here")
    p.add_argument("--admin-file", help="create the vault-rig-admin user; its key goes here (0600)")
    args = p.parse_args(argv)

    recording = Recording(args.recording)
    recording.write({"event": "started", "ts": round(now(), 3), "pid": os.getpid()})
    if args.admin_file:
        bootstrap_admin(args.admin_file)

    app = StrictSts(DomainDispatcherApplication(create_backend_app), recording)
    server = make_server(HOST, args.port, app, threaded=True,
                         request_handler=MotoRequestHandler)
    port = server.server_port
    # moto sends requests to itself in a few services; keep it on this port.
    os.environ["MOTO_PORT"] = str(port)
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(f"{port}\n")
        os.replace(args.port_file + ".tmp", args.port_file)
    print(f"strict STS listening on http://{HOST}:{port}", flush=True)

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
