import Engine
import Foundation
import LuaRuntime
import Plugins
import Support

/// Loads and validates single script files the way the service does, for script authors.
public enum ScriptChecks {
  /// Checks provider templates, or `lib/` modules when a file sits in a `lib` folder. Modules
  /// come from `moduleDirectories` (each one's `lib/`) and from each file's own directory.
  /// Returns every problem found; an empty list means every file is valid.
  public static func providers(files: [String], moduleDirectories: [String]) -> [TemplateError] {
    check(files: files, moduleDirectories: moduleDirectories) { file, source, runtime in
      switch ProviderCatalog.check(file: file, source: source, runtime: runtime) {
      case .success: return []
      case .failure(let failure): return failure.problems
      }
    }
  }

  /// Checks plugin scripts against the plugin contract.
  public static func plugins(files: [String], moduleDirectories: [String]) -> [TemplateError] {
    check(files: files, moduleDirectories: moduleDirectories) { file, source, runtime in
      switch PluginCatalog.check(file: file, source: source, runtime: runtime) {
      case .success: return []
      case .failure(let failure): return failure.problems
      }
    }
  }

  private static func check(
    files: [String], moduleDirectories: [String],
    validate: (String, String, LuaRuntime) -> [TemplateError]
  ) -> [TemplateError] {
    var problems: [TemplateError] = []
    for file in files {
      guard let source = try? String(contentsOfFile: file, encoding: .utf8) else {
        problems.append(TemplateError(file: file, message: "cannot read the file as UTF-8"))
        continue
      }
      let directory = (file as NSString).deletingLastPathComponent
      let isModule = (directory as NSString).lastPathComponent == "lib"
      let ownDirectory = isModule ? (directory as NSString).deletingLastPathComponent : directory
      let found = ScriptFiles.find(in: moduleDirectories + [ownDirectory])
      do {
        let runtime = try LuaRuntime(limits: ScriptLimits(), log: { _, _, _ in })
        for (name, module) in found.modules where module.file != file {
          try runtime.addModule(name: name, source: module.source, chunkName: module.file)
        }
        if isModule {
          problems += checkModule(file: file, source: source, runtime: runtime)
        } else {
          problems += validate(file, source, runtime)
        }
      } catch {
        problems.append(TemplateError(file: file, message: error.message))
      }
    }
    return problems
  }

  private static func checkModule(file: String, source: String, runtime: LuaRuntime)
    -> [TemplateError]
  {
    let name = "lib." + ((file as NSString).lastPathComponent as NSString).deletingPathExtension
    do {
      try runtime.addModule(name: name, source: source, chunkName: file)
      let probe = "local _ = require(\"\(name)\") return {}"
      _ = try runtime.loadScript(key: "check-module", source: probe, chunkName: file)
      return []
    } catch {
      return [TemplateError(file: file, luaMessage: error.message)]
    }
  }
}

/// The `providers list` output.
public enum ProviderListing {
  public static func table(_ catalog: ProviderCatalog) -> String {
    let header = ["ID", "NAME", "INTERVAL", "MAX DURATION", "FILE", "OVERRIDES"]
    let rows = catalog.sortedTemplates.map { template in
      [
        template.id, template.name, seconds(template.interval), seconds(template.maxDuration),
        template.file, template.overrides ?? "-",
      ]
    }
    let widths = header.indices.map { column in
      ([header] + rows).map { $0[column].count }.max() ?? 0
    }
    return ([header] + rows).map { row in
      row.enumerated().map { column, cell in
        column == row.count - 1
          ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
      }.joined(separator: "  ")
    }.joined(separator: "\n")
  }

  public static func json(_ catalog: ProviderCatalog) -> JSONValue {
    .object([
      "providers": .array(
        catalog.sortedTemplates.map { template in
          [
            "id": .string(template.id), "name": .string(template.name),
            "interval": .double(template.interval), "maxDuration": .double(template.maxDuration),
            "file": .string(template.file),
            "overrides": template.overrides.map { .string($0) } ?? .null,
          ]
        })
    ])
  }

  private static func seconds(_ value: Double) -> String {
    value.rounded() == value ? "\(Int(value)) s" : "\(value) s"
  }
}
