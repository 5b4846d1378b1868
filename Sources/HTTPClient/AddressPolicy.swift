import Foundation

/// Decides whether an outbound request may connect to an IP address.
///
/// Without `allowPrivateNetwork`, loopback, private (RFC 1918, RFC 4193), link-local (which
/// holds cloud metadata services), carrier-grade NAT and unspecified addresses are refused. The
/// check runs on the address curl actually connects to, so a hostname that resolves to a private
/// address is caught as well.
public struct AddressPolicy: Sendable {
  public let allowPrivateNetwork: Bool

  public init(allowPrivateNetwork: Bool) { self.allowPrivateNetwork = allowPrivateNetwork }

  public func allows(_ address: String) -> Bool {
    allowPrivateNetwork || !Self.isPrivate(address)
  }

  public static func isPrivate(_ address: String) -> Bool {
    var v4 = in_addr()
    if inet_pton(AF_INET, address, &v4) == 1 {
      return isPrivateIPv4(UInt32(bigEndian: v4.s_addr))
    }
    var v6 = in6_addr()
    guard inet_pton(AF_INET6, address, &v6) == 1 else { return true }
    let bytes = withUnsafeBytes(of: v6) { Array($0) }
    if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff {
      let mapped = bytes[12..<16].reduce(UInt32(0)) { ($0 << 8) | UInt32($1) }
      return isPrivateIPv4(mapped)
    }
    if bytes[0..<15].allSatisfy({ $0 == 0 }) { return true }  // :: and ::1
    if bytes[0] & 0xfe == 0xfc { return true }  // fc00::/7 unique local
    if bytes[0] == 0xfe && bytes[1] & 0xc0 == 0x80 { return true }  // fe80::/10 link-local
    return false
  }

  private static func isPrivateIPv4(_ address: UInt32) -> Bool {
    let first = address >> 24
    let second = (address >> 16) & 0xff
    switch first {
    case 0, 10, 127: return true
    case 100: return second >= 64 && second <= 127
    case 169: return second == 254
    case 172: return second >= 16 && second <= 31
    case 192: return second == 168
    default: return false
    }
  }
}
