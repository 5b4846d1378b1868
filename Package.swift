// swift-tools-version:6.0
import PackageDescription

let package = Package(
  name: "asyncqueue",
  platforms: [.macOS(.v14)],
  products: [
    .executable(name: "asyncqueue", targets: ["asyncqueue"]),
    .executable(name: "asyncqueue-mock", targets: ["asyncqueue-mock"]),
  ],
  targets: [
    // Debian's C libraries, one system-library target each. Each module map points at a
    // shim header, the only place that includes the library's own headers.
    .systemLibrary(name: "CLua", pkgConfig: "lua5.4", providers: [.apt(["liblua5.4-dev"])]),
    .systemLibrary(
      name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
    .systemLibrary(
      name: "CMicroHTTPD", pkgConfig: "libmicrohttpd", providers: [.apt(["libmicrohttpd-dev"])]),
    .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
    .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
    .systemLibrary(name: "CPostgres", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),

    // The C half of the Lua runtime: state creation, sandbox limits and every function that
    // Lua calls into the host, so that no Lua error ever unwinds through a Swift frame.
    .target(
      name: "CLuaHost",
      dependencies: ["CLua"],
      linkerSettings: [.linkedLibrary("lua5.4")]
    ),

    .target(name: "Support", dependencies: ["COpenSSL"]),
    .target(name: "LuaRuntime", dependencies: ["CLuaHost"]),
    .target(name: "HTTPServer", dependencies: ["CMicroHTTPD"]),
    .target(name: "HTTPClient", dependencies: ["CCurl"]),
    .target(name: "Storage", dependencies: ["CSQLite", "CPostgres", "Support"]),
    .target(
      name: "Engine",
      dependencies: ["Support", "LuaRuntime", "HTTPClient", "Storage"]
    ),
    // Lua plugins run at the engine's hook points, with their own Lua states.
    .target(
      name: "Plugins",
      dependencies: ["Engine", "LuaRuntime", "HTTPClient", "Support", "Storage"]
    ),
    // Checks, lists and fixture replays for script authors, behind `asyncqueue providers` and
    // `asyncqueue plugins`.
    .target(name: "ScriptTools", dependencies: ["Engine", "Plugins", "LuaRuntime", "Support"]),
    .target(
      name: "API", dependencies: ["Engine", "Plugins", "HTTPServer", "Support", "Storage"]),
    .executableTarget(
      name: "asyncqueue",
      dependencies: ["API", "Engine", "Support", "Storage", "HTTPServer", "ScriptTools"]
    ),

    // A loopback imitation of the six providers, used by the tests and the benchmarks.
    .target(name: "MockProvider", dependencies: ["HTTPServer", "Support"]),
    .executableTarget(name: "asyncqueue-mock", dependencies: ["MockProvider"]),

    .testTarget(
      name: "AsyncQueueTests",
      dependencies: [
        "API", "Engine", "Support", "Storage", "LuaRuntime", "HTTPServer", "HTTPClient",
        "MockProvider", "Plugins", "ScriptTools",
      ]
    ),
  ]
)
