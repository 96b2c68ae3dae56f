"""Server-side Signature Version 4 verification for the strict STS.

The signature is recomputed with botocore's own SigV4 code (AWS's client
implementation of the canonical request and string to sign), so the two
sides cannot disagree about canonicalisation rules. What botocore does not
do, because a client never needs it, lives here: reading the signing
parameters back out of a request (header or presigned-query form),
checking the clock skew, and comparing in constant time.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import quote

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
# AWS refuses a request whose signing time is more than 15 minutes away from
# its own clock (the "Signature expired: ... (... - 15 min.)" error).
MAX_SKEW_SECONDS = 15 * 60


class AwsError(Exception):
    """An error AWS answers in its query-protocol XML (Code, Message, status)."""

    def __init__(self, code: str, message: str, status: int = 403):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass
class Signing:
    """The signing parameters a request carries, as the client stated them."""

    access_key_id: str
    scope_date: str
    region: str
    service: str
    signed_headers: list[str]
    signature: str
    timestamp: str  # X-Amz-Date, e.g. 20240101T120000Z
    security_token: str | None
    presigned: bool
    expires: int | None  # X-Amz-Expires of a presigned request


def _header(headers: dict[str, str], name: str) -> str | None:
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return None


def parse(headers: dict[str, str], query: list[tuple[str, str]]) -> Signing | None:
    """The request's signing parameters; None when it is not signed at all.

    Raises AwsError(IncompleteSignature) when it is signed, but badly formed.
    """
    qd = dict(query)
    auth = _header(headers, "Authorization")
    if auth is not None:
        algorithm, _, rest = auth.strip().partition(" ")
        if algorithm != ALGORITHM:
            raise AwsError(
                "IncompleteSignature",
                f"Unsupported AWS 'algorithm': '{algorithm}'",
                400,
            )
        fields = {}
        for part in rest.split(","):
            k, _, v = part.strip().partition("=")
            fields[k] = v
        for required in ("Credential", "SignedHeaders", "Signature"):
            if not fields.get(required):
                raise AwsError(
                    "IncompleteSignature",
                    f"Authorization header requires '{required}' parameter. "
                    f"Authorization={auth}",
                    400,
                )
        credential = fields["Credential"]
        signed_headers = fields["SignedHeaders"]
        signature = fields["Signature"]
        timestamp = _header(headers, "X-Amz-Date")
        if not timestamp:
            raise AwsError(
                "IncompleteSignature",
                "Authorization header requires existence of either a 'X-Amz-Date' "
                "or a 'Date' header.",
                400,
            )
        token = _header(headers, "X-Amz-Security-Token")
        presigned, expires = False, None
    elif "X-Amz-Signature" in qd or "X-Amz-Credential" in qd:
        for required in ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date",
                         "X-Amz-SignedHeaders", "X-Amz-Signature"):
            if not qd.get(required):
                raise AwsError(
                    "IncompleteSignature",
                    f"AWS query-string parameters must include '{required}'.",
                    400,
                )
        if qd["X-Amz-Algorithm"] != ALGORITHM:
            raise AwsError(
                "IncompleteSignature",
                f"Unsupported AWS 'algorithm': '{qd['X-Amz-Algorithm']}'",
                400,
            )
        credential = qd["X-Amz-Credential"]
        signed_headers = qd["X-Amz-SignedHeaders"]
        signature = qd["X-Amz-Signature"]
        timestamp = qd["X-Amz-Date"]
        token = qd.get("X-Amz-Security-Token")
        presigned = True
        try:
            expires = int(qd.get("X-Amz-Expires", "900"))
        except ValueError:
            raise AwsError("AuthorizationQueryParametersError",
                            "X-Amz-Expires should be a number", 400)
    else:
        return None

    scope = credential.split("/")
    if len(scope) != 5 or scope[4] != "aws4_request" or not scope[0]:
        raise AwsError(
            "IncompleteSignature",
            f"Credential should be scoped to a valid region, not '{credential}'.",
            400,
        )
    return Signing(
        access_key_id=scope[0],
        scope_date=scope[1],
        region=scope[2],
        service=scope[3],
        signed_headers=[h for h in signed_headers.lower().split(";") if h],
        signature=signature,
        timestamp=timestamp,
        security_token=token,
        presigned=presigned,
        expires=expires,
    )


def check_clock(s: Signing, now: float) -> None:
    """Refuse a signing time too far from `now`, in AWS's own words."""
    try:
        signed_at = datetime.datetime.strptime(s.timestamp, SIGV4_TIMESTAMP).replace(
            tzinfo=datetime.timezone.utc
        )
    except ValueError:
        raise AwsError(
            "IncompleteSignature",
            f"Date must be in ISO-8601 'basic format'. Got '{s.timestamp}'.",
            400,
        )
    t = signed_at.timestamp()
    fmt = lambda x: datetime.datetime.fromtimestamp(  # noqa: E731
        x, datetime.timezone.utc
    ).strftime(SIGV4_TIMESTAMP)
    if s.presigned and s.expires is not None and now > t + s.expires:
        raise AwsError("AccessDenied", "Request has expired")
    if not s.presigned and now - t > MAX_SKEW_SECONDS:
        raise AwsError(
            "SignatureDoesNotMatch",
            f"Signature expired: {s.timestamp} is now earlier than "
            f"{fmt(now - MAX_SKEW_SECONDS)} ({fmt(now)} - 15 min.)",
        )
    if t - now > MAX_SKEW_SECONDS:
        raise AwsError(
            "SignatureDoesNotMatch",
            f"Signature not yet current: {s.timestamp} is still later than "
            f"{fmt(now + MAX_SKEW_SECONDS)} ({fmt(now)} + 15 min.)",
        )


class _Verifier(SigV4Auth):
    """botocore's signer, told exactly which headers the client signed.

    The stock signer picks the headers itself (all but a blacklist), which
    is right for a client and wrong for a server: the server must sign what
    the client said it signed, nothing more or less.
    """

    def __init__(self, credentials, service, region, signed_headers):
        super().__init__(credentials, service, region)
        self._signed = signed_headers

    def headers_to_sign(self, request):
        out = HTTPHeaders()
        for name in self._signed:
            for value in request.headers.get_all(name) or []:
                out[name] = value
            if name not in out:
                # A header the client claims to have signed but did not
                # send: sign it as empty, which then fails to match.
                out[name] = ""
        return out

    def payload(self, request):
        # Always the body's real hash: for STS and IAM, AWS never takes an
        # x-amz-content-sha256 header's word for it.
        return hashlib.sha256(request.body or b"").hexdigest()


def expected_signature(
    s: Signing,
    secret: str,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: list[tuple[str, str]],
    body: bytes,
) -> str:
    """The signature AWS would compute for this request with `secret`."""
    creds = Credentials(s.access_key_id, secret)
    signer = _Verifier(creds, s.service, s.region, s.signed_headers)
    # The canonical query string is built from the decoded parameters,
    # re-encoded the SigV4 way, so a client's choice of percent-encoding
    # cannot change the outcome; a presigned URL's signature is not part of
    # what it signs.
    params = [(k, v) for k, v in query if not (s.presigned and k == "X-Amz-Signature")]
    req = AWSRequest(method=method, url="http://signing" + quote(path, safe="/~%"),
                     data=body)
    req.params = params
    for k, v in headers:
        if k.lower() in s.signed_headers:
            req.headers.add_header(k.lower(), v)
    req.context["timestamp"] = s.timestamp
    # botocore scopes the signature to the signing time's date; a client
    # whose scope date differs then fails to match, as on AWS.
    if s.scope_date != s.timestamp[:8]:
        return ""
    # botocore takes a signed x-amz-content-sha256 header as the payload
    # hash; AWS's STS and IAM check the body itself, so a header that
    # misstates the body cannot match.
    claimed = req.headers.get("x-amz-content-sha256")
    if claimed is not None and claimed != hashlib.sha256(body).hexdigest():
        return ""
    canonical = signer.canonical_request(req)
    string_to_sign = signer.string_to_sign(req, canonical)
    return signer.signature(string_to_sign, req)


def signature_matches(expected: str, given: str) -> bool:
    return bool(expected) and hmac.compare_digest(expected.encode(), given.encode())
