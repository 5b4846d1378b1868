import Engine
import Foundation
import HTTPServer
import LuaRuntime
import Plugins
import Storage
import Support

/// Everything `asyncqueue serve` is configured with.
public struct ServiceOptions: Sendable {
  public var host = "127.0.0.1"
  public var port: UInt16 = 8080
  /// The directory of the vault key, stored results and the lock that keeps a second service
  /// out, and with SQLite also of the database.
  public var dataDirectory = "./data"
  /// The `database` setting: nil or empty for SQLite in the data directory, else a
  /// `postgres://` URL. See `Service.openStore`.
  public var database: String?
  /// Seconds a claim on a task lasts without renewal; see `EngineConfig.leaseTimeout`.
  public var leaseTimeout: Double = 15
  /// This node's name in task claims; a random name at each start when nil.
  public var nodeId: String?
  /// The built-in templates' directory; found automatically when nil.
  public var builtinProvidersDirectory: String?
  /// Extra template directories, loaded after the built-in one; later ones win on equal ids.
  public var providerDirectories: [String] = []
  /// Extra plugin directories, loaded after the built-in `plugins/`.
  public var pluginDirectories: [String] = []
  /// The built-in plugins' directory; the `plugins` folder beside the built-in providers when
  /// nil.
  public var builtinPluginsDirectory: String?
  /// Seconds between checks of the provider and plugin directories for changed files; 0 turns
  /// the check off (SIGHUP and `Service.reloadScripts()` still reload).
  public var scriptReloadInterval: Double = 2
  /// Plugin settings by plugin name, e.g. `["result-archive": {"enabled": true}]`. A plugin
  /// runs only when its entry has `"enabled": true`.
  public var plugins: [String: JSONValue] = [:]
  public var apiKeys: [String] = []
  public var webhookSecret: String?
  public var allowPrivateNetwork = false
  /// 64 hex digits; when nil, the key in `DATA_DIR/vault.key` (generated when missing).
  public var vaultKey: String?
  /// The base URL clients reach this service at; `http://HOST:PORT` when nil.
  public var publicURL: String?
  /// Requests per team and window on `/v1` routes.
  public var rateLimit = RateLimit.standard
  /// The OpenAPI document served at `/openapi.json`; found beside the built-in providers when
  /// nil (see `findOpenAPIDocument`).
  public var openAPIPath: String?
  public var scriptStates = 2
  /// Seconds after a task ends during which an undelivered webhook is retried.
  public var webhookRetention: Double = 86400
  /// Seconds a stop lets steps in flight finish.
  public var shutdownGrace: Double = 10
  /// Task steps in flight at once.
  public var maxConcurrentSteps = 2048
  /// Tasks loaded in one batch at start-up; see `EngineConfig.loadBatch`. Tests lower it.
  public var loadBatch = 5_000
  /// Overrides of template limits on requests per provider, by template id.
  public var providerLimits: [String: ProviderLimits] = [:]
  /// Multiplies every delay the engine waits; see `EngineConfig.delayScale`. Settable only
  /// through ASYNCQUEUE_DELAY_SCALE, for tests and benchmarks.
  public var delayScale: Double = 1

  public init() {}
}

/// The running service: store, engine and HTTP server, started and stopped together.
public final class Service: @unchecked Sendable {
  public let options: ServiceOptions
  public let store: any TaskStore
  public let logger: Logger
  public let catalog: ProviderCatalog
  private let limits = ScriptLimits()
  let scriptReloader: ScriptReloader
  private let routerBox = RouterBox()
  private let server: HTTPServer
  /// The engine, created by `start()` once the listening port is known.
  public private(set) var engine: Engine!
  /// A key generated at first start because none was given or stored; shown once.
  public let generatedAPIKey: String?
  /// A webhook secret generated at first start; shown once.
  public let generatedWebhookSecret: String?
  public let webhookSecret: String
  public let teamSecrets: TeamSecrets
  public let metrics = ServiceMetrics()
  private let openAPIDocument: [UInt8]?
  private let dataLock: DataDirectoryLock

  static let webhookSecretSetting = "webhook_secret"

  public init(options: ServiceOptions, logger: Logger) throws {
    self.options = options
    self.logger = logger
    if let reason = Self.makeDirectory(options.dataDirectory) {
      throw ServiceError(
        message:
          "cannot create the data directory \(options.dataDirectory): \(reason); choose another "
          + "--data-dir")
    }
    dataLock = try DataDirectoryLock(directory: options.dataDirectory)
    store = try Self.openStore(
      database: options.database, dataDirectory: options.dataDirectory, logger: logger)
    logger.info(
      "database opened",
      Self.describeDatabase(options.database, dataDirectory: options.dataDirectory))

    var generatedSecret: String?
    if let given = options.webhookSecret, !given.isEmpty {
      webhookSecret = given
    } else if let stored = try store.setting(Self.webhookSecretSetting) {
      webhookSecret = stored
    } else {
      // Stored by `start()` once the server listens, so a failed first start shows it again.
      let secret = "whsec_" + Crypto.randomHex(bytes: 32)
      webhookSecret = secret
      generatedSecret = secret
    }
    generatedWebhookSecret = generatedSecret
    teamSecrets = TeamSecrets(store: store, defaultSecret: webhookSecret, logger: logger)

    for key in options.apiKeys {
      try store.addAPIKey(hash: Crypto.sha256Hex(key), teamId: "default", label: "command line")
      Redactor.shared.register(key)
    }
    var generatedKey: String?
    if options.apiKeys.isEmpty, try store.apiKeyCount() == 0 {
      // Stored by `start()`, like a generated secret.
      generatedKey = "aq_" + Crypto.randomHex(bytes: 24)
    }
    generatedAPIKey = generatedKey

    let builtin = options.builtinProvidersDirectory ?? Self.findBuiltinProviders()
    var directories = builtin.map { [$0] } ?? []
    if builtin == nil {
      logger.warn(
        "built-in providers directory not found; set --builtin-providers-dir or run from the repository"
      )
    }
    directories += options.providerDirectories
    let (catalog, problems) = ProviderCatalog.load(directories: directories, limits: limits)
    let pluginsDirectory =
      options.builtinPluginsDirectory ?? Self.builtinPluginsDirectory(besides: builtin)
    scriptReloader = ScriptReloader(
      providerDirectories: directories,
      pluginDirectories: (pluginsDirectory.map { [$0] } ?? []) + options.pluginDirectories,
      limits: limits, logger: logger)
    scriptReloader.report(problems, reloading: false)
    for template in catalog.sortedTemplates {
      var fields = [("provider", template.id), ("file", template.file)]
      if let replaced = template.overrides { fields.append(("overrides", replaced)) }
      logger.debug("provider loaded", fields)
    }

    self.catalog = catalog
    let openAPIPath = options.openAPIPath ?? Self.findOpenAPIDocument(besideProviders: builtin)
    openAPIDocument = openAPIPath.flatMap { FileManager.default.contents(atPath: $0) }.map(
      Array.init)
    if openAPIDocument == nil {
      logger.warn("OpenAPI document not found; GET /openapi.json responds 404")
    }
    let box = routerBox
    server = HTTPServer(
      host: options.host, port: options.port, maxBodyBytes: APIRouter.maxBodyBytes,
      handler: { request in
        guard let router = box.router else {
          return .json(
            503, #"{"error":"the service is starting; retry shortly","code":"starting"}"#)
        }
        return router.handle(request)
      })
  }

  /// Binds the HTTP server, then starts the engine and opens the API. Binding first lets port
  /// 0 pick a free port that the result links then use.
  public func start() throws {
    try server.start()
    if let secret = generatedWebhookSecret {
      if try store.setting(Self.webhookSecretSetting) == nil {
        try store.setSetting(Self.webhookSecretSetting, secret)
      }
      // Nodes of a new cluster that start at the same moment each generate a secret; only
      // the stored one may sign webhooks.
      guard try store.setting(Self.webhookSecretSetting) == secret else {
        throw ServiceError(
          message:
            "another node stored its generated webhook secret first; start this node again "
            + "to use that secret, or set webhookSecret on every node")
      }
    } else if let given = options.webhookSecret, !given.isEmpty {
      // Stored so that `asyncqueue secret show` prints the secret in use.
      try store.setSetting(Self.webhookSecretSetting, given)
    }
    if let key = generatedAPIKey {
      try store.addAPIKey(hash: Crypto.sha256Hex(key), teamId: "default", label: "first start")
    }
    let publicURL =
      options.publicURL ?? "http://\(Self.urlHost(options.host)):\(server.port)"
    var config = EngineConfig(
      dataDirectory: options.dataDirectory, publicURL: publicURL,
      allowPrivateNetwork: options.allowPrivateNetwork, webhookSecret: webhookSecret,
      scriptLimits: limits, scriptStates: options.scriptStates)
    config.delayScale = options.delayScale
    config.vaultKey = try Self.vaultKey(options)
    try Self.checkVaultKey(config.vaultKey, store: store)
    config.metrics = metrics
    let secrets = teamSecrets
    config.secretForTeam = { team in secrets.secret(forTeam: team) }
    config.providerLimits = options.providerLimits
    config.webhookRetention = options.webhookRetention
    config.maxConcurrentSteps = options.maxConcurrentSteps
    config.loadBatch = options.loadBatch
    config.shutdownGrace = options.shutdownGrace
    config.leaseTimeout = options.leaseTimeout
    if let node = options.nodeId { config.nodeId = node }
    engine = try Engine(config: config, store: store, catalog: catalog, logger: logger)
    try scriptReloader.attach(
      engine: engine, configuration: options.plugins,
      settings: PluginHostSettings(
        dataDirectory: options.dataDirectory, publicURL: publicURL,
        allowPrivateNetwork: options.allowPrivateNetwork, limits: limits),
      store: store)
    try engine.start()
    scriptReloader.startWatching(interval: options.scriptReloadInterval)
    let engine = self.engine!
    let store = self.store
    routerBox.router = APIRouter(
      engine: engine, authenticator: Authenticator(store: store), logger: logger,
      rateLimit: options.rateLimit,
      readiness: { Self.unreadyReason(store: store, engine: engine) },
      openAPIDocument: openAPIDocument)
    logger.info(
      "listening",
      [
        ("host", options.host), ("port", String(server.port)),
        ("providers", engine.catalog.templates.keys.sorted().joined(separator: ",")),
      ])
  }

  /// The bound port; useful when the options asked for port 0.
  public var port: UInt16 { server.port }

  public func stop() {
    server.stop()
    engine?.stop()
    scriptReloader.stop()
    // Closes the PostgreSQL store's server connections.
    (store as? PostgresStore)?.close()
    logger.info("stopped")
    dataLock.release()
  }

  /// Creates a directory and its missing parents, owner-only; returns the system's reason on
  /// failure.
  static func makeDirectory(_ path: String) -> String? {
    var current = path.hasPrefix("/") ? "" : "."
    for component in path.split(separator: "/") {
      current += "/" + component
      if mkdir(current, 0o700) != 0 && errno != EEXIST {
        return String(cString: strerror(errno))
      }
    }
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory),
      isDirectory.boolValue
    else { return "a file with that name exists" }
    return nil
  }

  /// Returns the vault key: from the options, else from `vault.key` in the data directory, which is
  /// created (owner-only) with a random key when missing.
  static let vaultKeyCheckSetting = "vault_key_check"

  /// Refuses a vault key other than the one the stored tokens were sealed with. Nodes sharing
  /// a database need the same key, and a lost key file would otherwise show only as tasks
  /// failing on tokens that cannot be decrypted.
  static func checkVaultKey(_ key: [UInt8], store: any TaskStore) throws {
    let hex = key.map { String(format: "%02x", $0) }.joined()
    let check = Crypto.hmacSHA256Hex(key: hex, message: Array("asyncqueue vault key".utf8))
    if try store.setting(vaultKeyCheckSetting) == nil {
      try store.setSetting(vaultKeyCheckSetting, check)
    }
    // Read back: of two first nodes starting at once, the one whose write lost stops here.
    guard let stored = try store.setting(vaultKeyCheckSetting),
      Crypto.constantTimeEqual(stored, check)
    else {
      throw ServiceError(
        message:
          "the vault key differs from the one this database's tokens were sealed with; give "
          + "every node the same vaultKey (--vault-key or ASYNCQUEUE_VAULT_KEY), or restore "
          + "the data directory's vault.key")
    }
  }

  static func vaultKey(_ options: ServiceOptions) throws -> [UInt8] {
    if let given = options.vaultKey {
      guard let key = SecretBox.key(hex: given) else {
        throw ServiceError(message: "vaultKey must be 64 hex digits (32 bytes)")
      }
      return key
    }
    let path = (options.dataDirectory as NSString).appendingPathComponent("vault.key")
    if let text = try? String(contentsOfFile: path, encoding: .utf8) {
      guard let key = SecretBox.key(hex: text.trimmingCharacters(in: .whitespacesAndNewlines))
      else {
        throw ServiceError(message: "\(path) does not hold 64 hex digits; restore it from a backup")
      }
      return key
    }
    let hex = Crypto.randomHex(bytes: 32)
    guard
      FileManager.default.createFile(
        atPath: path, contents: Data((hex + "\n").utf8), attributes: [.posixPermissions: 0o600])
    else {
      throw ServiceError(message: "cannot create \(path)")
    }
    return SecretBox.key(hex: hex)!
  }

  /// Reads the stored webhook secret without starting anything.
  public static func storedWebhookSecret(in store: any TaskStore) throws -> String? {
    try store.setting(webhookSecretSetting)
  }

  /// Returns nil when the database responds to a trivial query and templates are loaded, else
  /// the reason the service is not ready.
  static func unreadyReason(store: any TaskStore, engine: Engine) -> String? {
    do {
      try store.ping()
    } catch {
      return "database not reachable: \(error)"
    }
    if engine.catalog.templates.isEmpty {
      return "no provider templates loaded; check --builtin-providers-dir and the log"
    }
    return nil
  }

  /// Looks for `openapi.json`: in `docs/` above the built-in providers directory (the
  /// repository layout), then beside it (an installed layout such as /usr/share/asyncqueue).
  public static func findOpenAPIDocument(besideProviders providers: String?) -> String? {
    guard let providers else { return nil }
    let parent = (providers as NSString).deletingLastPathComponent as NSString
    for candidate in [
      parent.appendingPathComponent("docs/openapi.json"),
      parent.appendingPathComponent("openapi.json"),
    ] where FileManager.default.fileExists(atPath: candidate) {
      return candidate
    }
    return nil
  }

  private static func urlHost(_ host: String) -> String {
    host.contains(":") ? "[\(host)]" : host
  }

  /// Looks for the built-in `providers/` folder: beside the working directory, then in the
  /// folders above the executable (a build tree inside the repository), then the install path.
  public static func findBuiltinProviders() -> String? {
    let files = FileManager.default
    func isProviders(_ path: String) -> Bool {
      files.fileExists(atPath: (path as NSString).appendingPathComponent("fal.lua"))
    }
    let local = (files.currentDirectoryPath as NSString).appendingPathComponent("providers")
    if isProviders(local) { return local }
    var directory =
      (CommandLine.arguments.first.map { URL(fileURLWithPath: $0) }
      ?? URL(fileURLWithPath: "/")).resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<6 {
      let candidate = directory.appendingPathComponent("providers").path
      if isProviders(candidate) { return candidate }
      directory = directory.deletingLastPathComponent()
    }
    for path in ["/usr/local/share/asyncqueue/providers", "/usr/share/asyncqueue/providers"]
    where isProviders(path) {
      return path
    }
    return nil
  }
}

/// The router, set once the engine runs; requests before that get 503.
private final class RouterBox: @unchecked Sendable {
  private let lock = NSLock()
  private var stored: APIRouter?

  var router: APIRouter? {
    get { lock.withLock { stored } }
    set { lock.withLock { stored = newValue } }
  }
}

/// An exclusive lock on the data directory, so two services never run the same tasks.
final class DataDirectoryLock: @unchecked Sendable {
  private let descriptor: Int32

  init(directory: String) throws {
    let path = (directory as NSString).appendingPathComponent("asyncqueue.lock")
    descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else {
      throw ServiceError(message: "cannot open \(path): \(String(cString: strerror(errno)))")
    }
    // A failed init still runs deinit, which closes the descriptor: closing it here as well
    // would close whatever file or socket reused the number in between.
    guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
      throw ServiceError(
        message:
          "another asyncqueue service is using the data directory \(directory); stop it or "
          + "choose another --data-dir")
    }
  }

  private let lock = NSLock()
  private var released = false

  /// Releases the lock; later calls do nothing.
  func release() {
    lock.withLock {
      guard !released, descriptor >= 0 else { return }
      released = true
      flock(descriptor, LOCK_UN)
      close(descriptor)
    }
  }

  deinit {
    release()
  }
}

/// A service that cannot start, with the reason and the fix.
public struct ServiceError: Error, CustomStringConvertible {
  public let message: String
  public var description: String { message }
}
