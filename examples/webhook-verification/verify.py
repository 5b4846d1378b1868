#!/usr/bin/env python3
r"""Verify the signature of an asyncqueue webhook delivery.

Usage:
    ASYNCQUEUE_WEBHOOK_SECRET=whsec_... \
    ASYNCQUEUE_SIGNATURE='t=1764868358,v1=5f1c...' \
    python3 verify.py BODY_FILE

ASYNCQUEUE_WEBHOOK_SECRET  the team's webhook signing secret
                           (`asyncqueue secret show --team TEAM --data-dir DIR`).
ASYNCQUEUE_SIGNATURE       the value of the delivery's X-AsyncQueue-Signature header.
BODY_FILE                  the request body exactly as received. Parsing and serializing the
                           JSON again changes the bytes and breaks the signature.

Prints "valid" and exits 0, or prints "invalid: <reason>" and exits 1. A missing variable or
an unreadable file exits 2. Needs only the Python 3 standard library (tested with 3.11). In
an application, call verify_signature() with the raw request body.
"""

import hashlib
import hmac
import os
import sys
import time

# The maximum age of a delivery's timestamp, in seconds. Older deliveries may be replays.
TOLERANCE_SECONDS = 300


def verify_signature(secret, header, body, now=None):
    """Check an X-AsyncQueue-Signature header against the raw body (bytes).

    Returns None when the signature is valid, else the reason it is not.
    """
    timestamp = None
    signatures = []
    for part in header.split(","):
        name, separator, value = part.strip().partition("=")
        if not separator:
            continue
        if name == "t":
            timestamp = value
        elif name == "v1":
            signatures.append(value)
    if timestamp is None or not timestamp.isdigit():
        return "the header has no t=<unix seconds> part"
    if not signatures:
        return "the header has no v1=<hex> part"

    now = int(time.time()) if now is None else now
    age = now - int(timestamp)
    if age > TOLERANCE_SECONDS:
        return f"the timestamp is {age} s old; at most {TOLERANCE_SECONDS} s is accepted"
    if age < -TOLERANCE_SECONDS:
        return f"the timestamp is {-age} s in the future; check this machine's clock"

    signed = timestamp.encode("ascii") + b"." + body
    expected = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    # compare_digest takes time independent of where the values differ. It compares bytes
    # because it raises TypeError on str with non-ASCII characters.
    expected_bytes = expected.encode("ascii")
    if any(hmac.compare_digest(expected_bytes, c.encode("utf-8")) for c in signatures):
        return None
    return "the signature does not match the body and secret"


def main():
    secret = os.environ.get("ASYNCQUEUE_WEBHOOK_SECRET")
    header = os.environ.get("ASYNCQUEUE_SIGNATURE")
    if not secret or not header or len(sys.argv) != 2:
        print(
            "usage: ASYNCQUEUE_WEBHOOK_SECRET=... ASYNCQUEUE_SIGNATURE='t=...,v1=...' "
            "python3 verify.py BODY_FILE",
            file=sys.stderr,
        )
        return 2
    try:
        with open(sys.argv[1], "rb") as file:
            body = file.read()
    except OSError as error:
        print(f"failed to read the body file: {error}", file=sys.stderr)
        return 2

    reason = verify_signature(secret, header, body)
    if reason is None:
        print("valid")
        return 0
    print(f"invalid: {reason}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
