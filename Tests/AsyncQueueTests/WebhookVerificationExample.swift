// Example: verifying an asyncqueue webhook signature in Swift.
//
// Copy this file into a receiver written in Swift. It needs only Foundation and runs on Linux
// and macOS, because it carries its own SHA-256 and HMAC (FIPS 180-4, RFC 2104). On Apple
// platforms CryptoKit's HMAC<SHA256>, and on Linux the swift-crypto package, provide the same
// MAC; with either, keep `verify` and replace `hmacSHA256`. The test suite runs this code
// against real deliveries and the RFC 4231 test vectors (WebhookVerificationExampleTests).

import Foundation

/// A check of the `X-AsyncQueue-Signature` header, `t=<unix seconds>,v1=<hex>`, where the
/// hex is HMAC-SHA256(webhook secret, "<t>.<raw body>").
enum AsyncQueueWebhookVerifier {
  /// The maximum age of a delivery's timestamp, in seconds. Older deliveries may be replays.
  static let toleranceSeconds = 300

  enum Outcome: Equatable, CustomStringConvertible {
    case valid
    case invalid(reason: String)

    /// "valid", or "invalid: <reason>".
    var description: String {
      switch self {
      case .valid: return "valid"
      case .invalid(let reason): return "invalid: \(reason)"
      }
    }
  }

  /// Checks `header` against the raw request `body`, the bytes exactly as received.
  static func verify(
    secret: String, header: String, body: [UInt8],
    now: Int = Int(Date().timeIntervalSince1970)
  ) -> Outcome {
    var timestamp: String?
    var signatures: [String] = []
    for part in header.split(separator: ",") {
      let pair = part.split(separator: "=", maxSplits: 1)
      guard pair.count == 2 else { continue }
      let name = pair[0].trimmingCharacters(in: .whitespaces)
      let value = pair[1].trimmingCharacters(in: .whitespaces)
      if name == "t" { timestamp = value }
      if name == "v1" { signatures.append(value) }
    }
    guard let timestamp, let seconds = Int(timestamp), seconds >= 0 else {
      return .invalid(reason: "the header has no t=<unix seconds> part")
    }
    guard !signatures.isEmpty else {
      return .invalid(reason: "the header has no v1=<hex> part")
    }

    let age = now - seconds
    if age > toleranceSeconds {
      return .invalid(
        reason: "the timestamp is \(age) s old; at most \(toleranceSeconds) s is accepted")
    }
    if age < -toleranceSeconds {
      return .invalid(
        reason: "the timestamp is \(-age) s in the future; check this machine's clock")
    }

    let signed = Array("\(timestamp).".utf8) + body
    let expected = hmacSHA256(key: Array(secret.utf8), message: signed)
    for candidate in signatures {
      if let given = bytes(hex: candidate), constantTimeEqual(given, expected) {
        return .valid
      }
    }
    return .invalid(reason: "the signature does not match the body and secret")
  }

  /// Compares two MACs in time that depends only on their lengths.
  static func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
    guard lhs.count == rhs.count else { return false }
    var difference: UInt8 = 0
    for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
    return difference == 0
  }

  /// Decodes lowercase or uppercase hex; returns nil for anything else.
  static func bytes(hex: String) -> [UInt8]? {
    let digits = Array(hex.utf8)
    guard digits.count % 2 == 0 else { return nil }
    var result: [UInt8] = []
    result.reserveCapacity(digits.count / 2)
    for index in stride(from: 0, to: digits.count, by: 2) {
      guard let high = hexValue(digits[index]), let low = hexValue(digits[index + 1]) else {
        return nil
      }
      result.append(high << 4 | low)
    }
    return result
  }

  private static func hexValue(_ digit: UInt8) -> UInt8? {
    switch digit {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return digit - UInt8(ascii: "A") + 10
    default: return nil
    }
  }

  // MARK: HMAC-SHA256 (RFC 2104) and SHA-256 (FIPS 180-4)

  /// HMAC-SHA256 of `message` under `key`: 32 bytes.
  static func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
    let blockSize = 64
    var blockKey = key.count > blockSize ? sha256(key) : key
    blockKey += [UInt8](repeating: 0, count: blockSize - blockKey.count)
    let innerPad = blockKey.map { $0 ^ 0x36 }
    let outerPad = blockKey.map { $0 ^ 0x5c }
    return sha256(outerPad + sha256(innerPad + message))
  }

  /// SHA-256 of `message`: 32 bytes.
  static func sha256(_ message: [UInt8]) -> [UInt8] {
    var state: [UInt32] = [
      0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a,
      0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19,
    ]
    // Padding: a 1 bit, zeros up to 56 bytes mod 64, then the length in bits, big-endian.
    var padded = message
    padded.append(0x80)
    while padded.count % 64 != 56 { padded.append(0) }
    let bitCount = UInt64(message.count) &* 8
    for shift in stride(from: 56, through: 0, by: -8) {
      padded.append(UInt8(truncatingIfNeeded: bitCount >> UInt64(shift)))
    }

    var schedule = [UInt32](repeating: 0, count: 64)
    for blockStart in stride(from: 0, to: padded.count, by: 64) {
      for index in 0..<16 {
        let offset = blockStart + index * 4
        var word = UInt32(padded[offset]) << 24
        word |= UInt32(padded[offset + 1]) << 16
        word |= UInt32(padded[offset + 2]) << 8
        word |= UInt32(padded[offset + 3])
        schedule[index] = word
      }
      for index in 16..<64 {
        let early = schedule[index - 15]
        let late = schedule[index - 2]
        let sigma0 = rotateRight(early, 7) ^ rotateRight(early, 18) ^ (early >> 3)
        let sigma1 = rotateRight(late, 17) ^ rotateRight(late, 19) ^ (late >> 10)
        schedule[index] = schedule[index - 16] &+ sigma0 &+ schedule[index - 7] &+ sigma1
      }

      var (a, b, c, d) = (state[0], state[1], state[2], state[3])
      var (e, f, g, h) = (state[4], state[5], state[6], state[7])
      for index in 0..<64 {
        let sum1 = rotateRight(e, 6) ^ rotateRight(e, 11) ^ rotateRight(e, 25)
        let choice = (e & f) ^ (~e & g)
        let temp1 = h &+ sum1 &+ choice &+ roundConstants[index] &+ schedule[index]
        let sum0 = rotateRight(a, 2) ^ rotateRight(a, 13) ^ rotateRight(a, 22)
        let majority = (a & b) ^ (a & c) ^ (b & c)
        let temp2 = sum0 &+ majority
        (h, g, f, e) = (g, f, e, d &+ temp1)
        (d, c, b, a) = (c, b, a, temp1 &+ temp2)
      }
      for (index, value) in [a, b, c, d, e, f, g, h].enumerated() {
        state[index] = state[index] &+ value
      }
    }
    return state.flatMap { word in
      [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: word >> UInt32($0)) }
    }
  }

  private static func rotateRight(_ value: UInt32, _ count: UInt32) -> UInt32 {
    (value >> count) | (value << (32 - count))
  }

  /// The first 32 bits of the fractional parts of the cube roots of the first 64 primes.
  private static let roundConstants: [UInt32] = [
    0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4,
    0xab1c_5ed5, 0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe,
    0x9bdc_06a7, 0xc19b_f174, 0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f,
    0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da, 0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7,
    0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967, 0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc,
    0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85, 0xa2bf_e8a1, 0xa81a_664b,
    0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070, 0x19a4_c116,
    0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
    0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7,
    0xc671_78f2,
  ]
}
