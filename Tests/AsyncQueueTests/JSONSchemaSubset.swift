import Support

/// Validates JSON values against the subset of JSON Schema (draft 2020-12, as OpenAPI 3.1
/// uses it) that docs/openapi.json uses: `type` (one or a list), `enum`, `required`,
/// `properties`, `additionalProperties`, `items`, `oneOf`, `anyOf`, `minimum`, `maximum` and
/// local `$ref`s. Other keywords (`format`, `description`, `default`) are not checked.
struct JSONSchemaSubset {
  /// The whole document, for resolving `#/…` references.
  let document: JSONValue

  /// Returns every mismatch of `value` against `schema`, each naming its JSON path; empty when valid.
  func errors(_ value: JSONValue, _ schema: JSONValue, path: String = "$") -> [String] {
    if let reference = schema["$ref"]?.stringValue {
      guard let target = resolve(reference) else {
        return ["\(path): unresolved $ref \(reference)"]
      }
      return errors(value, target, path: path)
    }
    var found: [String] = []
    if let types = schema["type"] {
      let names = types.arrayValue?.compactMap(\.stringValue) ?? [types.stringValue ?? ""]
      if !names.contains(where: { Self.matches(value, type: $0) }) {
        return ["\(path): expected \(names.joined(separator: " or ")), got \(value.serialized())"]
      }
    }
    if let choices = schema["enum"]?.arrayValue, !choices.contains(value) {
      found.append(
        "\(path): \(value.serialized()) is not one of \(JSONValue.array(choices).serialized())")
    }
    if let number = value.doubleValue {
      if let minimum = schema["minimum"]?.doubleValue, number < minimum {
        found.append("\(path): \(number) is below the minimum \(minimum)")
      }
      if let maximum = schema["maximum"]?.doubleValue, number > maximum {
        found.append("\(path): \(number) is above the maximum \(maximum)")
      }
    }
    if let object = value.objectValue {
      found += objectErrors(object, schema, path: path)
    }
    if let items = value.arrayValue, let itemSchema = schema["items"] {
      for (index, item) in items.enumerated() {
        found += errors(item, itemSchema, path: "\(path)[\(index)]")
      }
    }
    if let options = schema["oneOf"]?.arrayValue {
      let passing = options.filter { errors(value, $0, path: path).isEmpty }.count
      if passing != 1 { found.append("\(path): matches \(passing) of oneOf's schemas, not 1") }
    }
    if let options = schema["anyOf"]?.arrayValue,
      !options.contains(where: { errors(value, $0, path: path).isEmpty })
    {
      found.append("\(path): matches none of anyOf's schemas")
    }
    return found
  }

  private func objectErrors(_ object: [String: JSONValue], _ schema: JSONValue, path: String)
    -> [String]
  {
    var found: [String] = []
    for name in schema["required"]?.arrayValue?.compactMap(\.stringValue) ?? []
    where object[name] == nil {
      found.append("\(path): missing required property '\(name)'")
    }
    let properties = schema["properties"]?.objectValue ?? [:]
    for (name, member) in object.sorted(by: { $0.key < $1.key }) {
      if let propertySchema = properties[name] {
        found += errors(member, propertySchema, path: "\(path).\(name)")
      } else if let additional = schema["additionalProperties"] {
        if additional == .bool(false) {
          found.append("\(path): property '\(name)' is not allowed")
        } else if additional.objectValue != nil {
          found += errors(member, additional, path: "\(path).\(name)")
        }
      }
    }
    return found
  }

  private func resolve(_ reference: String) -> JSONValue? {
    guard reference.hasPrefix("#/") else { return nil }
    var node: JSONValue? = document
    for part in reference.dropFirst(2).split(separator: "/") {
      let name = part.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(
        of: "~0", with: "~")
      node = node?[name]
    }
    return node
  }

  private static func matches(_ value: JSONValue, type: String) -> Bool {
    switch (type, value) {
    case ("null", .null), ("boolean", .bool), ("string", .string), ("array", .array),
      ("object", .object), ("number", .int), ("number", .double), ("integer", .int):
      return true
    case ("integer", .double(let number)):
      return number == number.rounded()
    default:
      return false
    }
  }
}
