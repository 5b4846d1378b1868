import COpenSSL
import Foundation

/// Hashes, MACs and random values from OpenSSL's libcrypto.
public enum Crypto {
  /// HMAC-SHA256 of `message` under `key`, as lowercase hex.
  public static func hmacSHA256Hex(key: String, message: [UInt8]) -> String {
    let keyBytes = Array(key.utf8)
    var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
    var length: UInt32 = 0
    keyBytes.withUnsafeBufferPointer { keyBuffer in
      message.withUnsafeBufferPointer { messageBuffer in
        _ = HMAC(
          EVP_sha256(), keyBuffer.baseAddress, Int32(keyBuffer.count), messageBuffer.baseAddress,
          messageBuffer.count, &digest, &length)
      }
    }
    return hex(digest.prefix(Int(length)))
  }

  /// SHA-256 of `text`, as lowercase hex.
  public static func sha256Hex(_ text: String) -> String {
    let bytes = Array(text.utf8)
    var digest = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_LENGTH))
    bytes.withUnsafeBufferPointer { buffer in
      _ = SHA256(buffer.baseAddress, buffer.count, &digest)
    }
    return hex(digest[...])
  }

  /// `count` random bytes from the operating system's CSPRNG, as lowercase hex.
  public static func randomHex(bytes count: Int) -> String {
    var generator = SystemRandomNumberGenerator()
    let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    return hex(bytes[...])
  }

  /// Compares two strings in time that depends only on their lengths.
  public static func constantTimeEqual(_ lhs: String, _ rhs: String) -> Bool {
    let left = Array(lhs.utf8)
    let right = Array(rhs.utf8)
    guard left.count == right.count else { return false }
    var difference: UInt8 = 0
    for index in 0..<left.count { difference |= left[index] ^ right[index] }
    return difference == 0
  }

  private static func hex<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    let digits: [Character] = Array("0123456789abcdef")
    var text = ""
    text.reserveCapacity(bytes.count * 2)
    for byte in bytes {
      text.append(digits[Int(byte >> 4)])
      text.append(digits[Int(byte & 0x0f)])
    }
    return text
  }
}

/// The `X-AsyncQueue-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`.
public enum WebhookSignature {
  public static func header(secret: String, timestamp: Int, body: [UInt8]) -> String {
    let signed = Array("\(timestamp).".utf8) + body
    return "t=\(timestamp),v1=\(Crypto.hmacSHA256Hex(key: secret, message: signed))"
  }

  /// Checks a header against the body; rejects timestamps more than `tolerance` seconds old.
  public static func verify(
    header: String, secret: String, body: [UInt8], now: Int, tolerance: Int = 300
  ) -> Bool {
    var timestamp: Int?
    var signatures: [String] = []
    for part in header.split(separator: ",") {
      let pair = part.split(separator: "=", maxSplits: 1).map(String.init)
      guard pair.count == 2 else { continue }
      if pair[0] == "t" { timestamp = Int(pair[1]) }
      if pair[0] == "v1" { signatures.append(pair[1]) }
    }
    guard let timestamp, abs(now - timestamp) <= tolerance else { return false }
    let expected =
      Self.header(secret: secret, timestamp: timestamp, body: body)
      .split(separator: "=").last.map(String.init) ?? ""
    return signatures.contains { Crypto.constantTimeEqual($0, expected) }
  }
}

/// AES-256-GCM sealing for secrets at rest, through OpenSSL's EVP interface.
public enum SecretBox {
  /// Encrypts `plaintext` under a 32-byte key; returns base64 of nonce (12 bytes), ciphertext
  /// and tag (16 bytes).
  public static func seal(_ plaintext: String, key: [UInt8]) -> String? {
    precondition(key.count == 32, "SecretBox needs a 32-byte key")
    var nonce = [UInt8](repeating: 0, count: 12)
    guard RAND_bytes(&nonce, 12) == 1, let context = EVP_CIPHER_CTX_new() else { return nil }
    defer { EVP_CIPHER_CTX_free(context) }
    let input = Array(plaintext.utf8)
    var output = [UInt8](repeating: 0, count: input.count + 16)
    var length: Int32 = 0
    var total: Int32 = 0
    var tag = [UInt8](repeating: 0, count: 16)
    guard EVP_EncryptInit_ex(context, EVP_aes_256_gcm(), nil, key, nonce) == 1,
      EVP_EncryptUpdate(context, &output, &length, input, Int32(input.count)) == 1
    else { return nil }
    total = length
    let finished = output.withUnsafeMutableBufferPointer { buffer in
      EVP_EncryptFinal_ex(context, buffer.baseAddress! + Int(total), &length)
    }
    guard finished == 1,
      EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_GET_TAG, 16, &tag) == 1
    else { return nil }
    total += length
    return Data(nonce + output.prefix(Int(total)) + tag).base64EncodedString()
  }

  /// Decrypts what `seal` produced; nil when the key is wrong or the data was altered.
  public static func open(_ sealed: String, key: [UInt8]) -> String? {
    guard key.count == 32, let data = Data(base64Encoded: sealed), data.count >= 28,
      let context = EVP_CIPHER_CTX_new()
    else { return nil }
    defer { EVP_CIPHER_CTX_free(context) }
    let bytes = Array(data)
    let nonce = Array(bytes[0..<12])
    var tag = Array(bytes[(bytes.count - 16)...])
    let ciphertext = Array(bytes[12..<(bytes.count - 16)])
    var output = [UInt8](repeating: 0, count: ciphertext.count + 16)
    var length: Int32 = 0
    guard EVP_DecryptInit_ex(context, EVP_aes_256_gcm(), nil, key, nonce) == 1,
      EVP_DecryptUpdate(context, &output, &length, ciphertext, Int32(ciphertext.count)) == 1,
      EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_SET_TAG, 16, &tag) == 1
    else { return nil }
    let total = Int(length)
    let finished = output.withUnsafeMutableBufferPointer { buffer in
      EVP_DecryptFinal_ex(context, buffer.baseAddress! + total, &length)
    }
    guard finished == 1 else { return nil }
    return String(validating: output.prefix(total + Int(length)), as: UTF8.self)
  }

  /// Parses 64 hex digits into a key.
  public static func key(hex: String) -> [UInt8]? {
    let characters = Array(hex.utf8)
    guard characters.count == 64 else { return nil }
    var key: [UInt8] = []
    for index in stride(from: 0, to: 64, by: 2) {
      guard
        let byte = UInt8(String(decoding: characters[index..<index + 2], as: UTF8.self), radix: 16)
      else { return nil }
      key.append(byte)
    }
    return key
  }
}
