// Verify the signature of an asyncqueue webhook delivery.
//
// Usage:
//   ASYNCQUEUE_WEBHOOK_SECRET=whsec_... \
//   ASYNCQUEUE_SIGNATURE='t=1764868358,v1=5f1c...' \
//   node verify.mjs BODY_FILE
//
// ASYNCQUEUE_WEBHOOK_SECRET  the team's webhook signing secret
//                            (`asyncqueue secret show --team TEAM --data-dir DIR`).
// ASYNCQUEUE_SIGNATURE       the value of the delivery's X-AsyncQueue-Signature header.
// BODY_FILE                  the request body exactly as received. Parsing and serializing the
//                            JSON again changes the bytes and breaks the signature.
//
// Prints "valid" and exits 0, or prints "invalid: <reason>" and exits 1. A missing variable
// or an unreadable file exits 2. Needs Node.js 18 or later and only its standard library; in
// an application, call verifySignature() with the raw request body as a Buffer (for example
// from express.raw({ type: "application/json" })).

import { createHmac, timingSafeEqual } from "node:crypto";
import { readFileSync, realpathSync } from "node:fs";
import process from "node:process";
import { pathToFileURL } from "node:url";

// The maximum age of a delivery's timestamp, in seconds. Older deliveries may be replays.
export const TOLERANCE_SECONDS = 300;

/**
 * Checks an X-AsyncQueue-Signature header against the raw body (a Buffer).
 * Returns null when the signature is valid, else the reason it is not.
 */
export function verifySignature(secret, header, body, now = Math.floor(Date.now() / 1000)) {
  let timestamp = null;
  const signatures = [];
  for (const part of header.split(",")) {
    const separator = part.indexOf("=");
    if (separator < 0) continue;
    const name = part.slice(0, separator).trim();
    const value = part.slice(separator + 1).trim();
    if (name === "t") timestamp = value;
    else if (name === "v1") signatures.push(value);
  }
  if (timestamp === null || !/^[0-9]+$/.test(timestamp)) {
    return "the header has no t=<unix seconds> part";
  }
  if (signatures.length === 0) return "the header has no v1=<hex> part";

  const age = now - Number(timestamp);
  if (age > TOLERANCE_SECONDS) {
    return `the timestamp is ${age} s old; at most ${TOLERANCE_SECONDS} s is accepted`;
  }
  if (age < -TOLERANCE_SECONDS) {
    return `the timestamp is ${-age} s in the future; check this machine's clock`;
  }

  const expected = createHmac("sha256", secret)
    .update(Buffer.from(`${timestamp}.`, "ascii"))
    .update(body)
    .digest();
  const matches = signatures.some((candidate) => {
    const received = Buffer.from(candidate, "hex");
    // timingSafeEqual throws on different lengths, and the length of a SHA-256 MAC is public.
    return received.length === expected.length && timingSafeEqual(received, expected);
  });
  return matches ? null : "the signature does not match the body and secret";
}

function main() {
  const secret = process.env.ASYNCQUEUE_WEBHOOK_SECRET;
  const header = process.env.ASYNCQUEUE_SIGNATURE;
  if (!secret || !header || process.argv.length !== 3) {
    console.error(
      "usage: ASYNCQUEUE_WEBHOOK_SECRET=... ASYNCQUEUE_SIGNATURE='t=...,v1=...' " +
        "node verify.mjs BODY_FILE",
    );
    return 2;
  }
  let body;
  try {
    body = readFileSync(process.argv[2]);
  } catch (error) {
    console.error(`failed to read the body file: ${error.message}`);
    return 2;
  }

  const reason = verifySignature(secret, header, body);
  if (reason === null) {
    console.log("valid");
    return 0;
  }
  console.log(`invalid: ${reason}`);
  return 1;
}

// Run only as a program, so an application can import verifySignature().
const invokedPath = process.argv[1] ? pathToFileURL(realpathSync(process.argv[1])).href : "";
if (import.meta.url === invokedPath) {
  process.exitCode = main();
}
