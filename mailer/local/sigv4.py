"""AWS Signature Version 4 checked the way an AWS service checks it, for local endpoints.

Written from the SigV4 specification, with none of botocore's or awscrt's code, so that a
request signed by either is judged by a third party: the canonical request is rebuilt
from what arrived on the wire (method, path, query, the headers named in
``SignedHeaders``, the body's SHA-256), the signing key derived from the secret of the
credential's access key, and the signature compared. The answer is None (valid) or the
SES error ``(status, code, message)`` a real endpoint gives.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=5)
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)
_SPACES = re.compile(r"\s+")

Failure = tuple[int, str, str]


def _hmac(key: bytes, data: str) -> bytes:
    return hmac.new(key, data.encode(), hashlib.sha256).digest()


def signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    key = _hmac(f"AWS4{secret}".encode(), day)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


def canonical_request(
    method: str, path: str, query: str, headers: dict[str, str], signed: list[str], body: bytes
) -> str:
    # non-S3 services encode the (already encoded) path once more, segment by segment
    canonical_path = quote(path or "/", safe="/~")
    pairs = sorted(
        (quote(k, safe="-_.~"), quote(v, safe="-_.~"))
        for k, v in parse_qsl(query, keep_blank_values=True)
    )
    canonical_query = "&".join(f"{k}={v}" for k, v in pairs)
    canonical_headers = "".join(
        f"{name}:{_SPACES.sub(' ', headers.get(name, '').strip())}\n" for name in signed
    )
    return "\n".join(
        [
            method.upper(),
            canonical_path,
            canonical_query,
            canonical_headers,
            ";".join(signed),
            hashlib.sha256(body).hexdigest(),
        ]
    )


def verify(
    method: str,
    path: str,
    query: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    secret_of: Callable[[str], str | None],
    now: datetime | None = None,
) -> Failure | None:
    """None when the request's SigV4 signature holds; else SES's answer to it.

    ``secret_of`` gives the secret key of an access key id (None: unknown key).
    """
    lowered: dict[str, str] = {}
    for name, value in headers:
        lowered[name.lower()] = value
    authorization = lowered.get("authorization")
    if not authorization:
        return 403, "MissingAuthenticationToken", "Request is missing Authentication Token"
    match = _AUTH.match(authorization.strip())
    if match is None:
        return 403, "IncompleteSignature", f"Authorization header requires {ALGORITHM} fields."
    parts = match["credential"].split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        return (
            403,
            "IncompleteSignature",
            "Credential must have exactly 5 slash-delimited elements.",
        )
    access_key, day, region, service, _ = parts
    signed = match["signed"].split(";")
    if signed != sorted(signed) or "host" not in signed:
        return 403, "IncompleteSignature", "SignedHeaders must be sorted and include host."
    amz_date = lowered.get("x-amz-date", "")
    if "x-amz-date" not in signed or not amz_date.startswith(day):
        return 403, "IncompleteSignature", "X-Amz-Date must be signed and match the scope."
    if "x-amz-security-token" in lowered and "x-amz-security-token" not in signed:
        return 403, "IncompleteSignature", "X-Amz-Security-Token must be signed."
    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return 403, "IncompleteSignature", f"Invalid X-Amz-Date {amz_date!r}."
    if abs((now or datetime.now(UTC)) - signed_at) > MAX_SKEW:
        return 403, "InvalidSignatureException", f"Signature expired: {amz_date}."
    secret = secret_of(access_key)
    if secret is None:
        return (
            403,
            "UnrecognizedClientException",
            ("The security token included in the request is invalid."),
        )
    canonical = canonical_request(method, path, query, lowered, signed, body)
    string_to_sign = "\n".join(
        [
            ALGORITHM,
            amz_date,
            f"{day}/{region}/{service}/aws4_request",
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    expected = hmac.new(
        signing_key(secret, day, region, service), string_to_sign.encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, match["signature"]):
        return (
            403,
            "InvalidSignatureException",
            ("The request signature we calculated does not match the signature you provided."),
        )
    return None
