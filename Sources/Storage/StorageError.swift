import Foundation

/// An error from the database, naming the statement or operation that failed.
public struct StorageError: Error, CustomStringConvertible, Sendable {
  public let message: String
  public var description: String { message }

  public init(_ message: String) { self.message = message }
}

/// A value bound to a statement parameter or read from a result column.
public enum SQLValue: Sendable, Equatable {
  case null
  case integer(Int64)
  case real(Double)
  case text(String)
  case blob([UInt8])

  public var text: String? {
    if case .text(let value) = self { return value }
    return nil
  }

  public var integer: Int64? {
    switch self {
    case .integer(let value): return value
    case .real(let value): return Int64(value)
    default: return nil
    }
  }

  public var real: Double? {
    switch self {
    case .integer(let value): return Double(value)
    case .real(let value): return value
    default: return nil
    }
  }
}
