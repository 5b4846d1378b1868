import Support

/// One setting of `asyncqueue serve`: its config-file key, flag, environment variable,
/// default and help. The table in `SettingSpec.all` drives the flags, the config file
/// validation, `--print-config` and the help text, so they cannot drift apart.
public struct SettingSpec: Sendable {
  public enum Kind: Sendable, Equatable {
    case string
    /// An http or https URL.
    case url
    case port
    case bool
    /// One of a fixed set of words.
    case choice([String])
    /// A list of strings; from an environment variable, split at `separator`.
    case list(separator: Character)
    /// An object of plugin name to settings object; config file only.
    case pluginTable
    /// `{"requests": N, "perSeconds": S}`; `N/S` on the command line.
    case rateLimit
    /// A number within `range`; `integer` rejects fractions.
    case number(ClosedRange<Double>, integer: Bool)
    /// Template id to `{"concurrency": N, "requestsPerSecond": R}`; config file only.
    case providerLimits
    /// Empty for SQLite in the data directory, or a `postgres://` or `postgresql://` URL.
    case database
  }

  /// The config-file key, in camelCase.
  public let key: String
  /// The command-line flag without `--`, or nil for a config-file-only setting.
  public let flag: String?
  public let environment: String?
  public let valueName: String?
  public let kind: Kind
  /// The default, as it appears in `--print-config`; null when unset.
  public let defaultValue: JSONValue
  public let help: String
  /// Printed as `***` by `--print-config`.
  public var isSecret = false

  public var isRepeatable: Bool {
    if case .list = kind { return true }
    return false
  }
}

extension SettingSpec {
  public static let all: [SettingSpec] = [
    SettingSpec(
      key: "host", flag: "host", environment: "ASYNCQUEUE_HOST", valueName: "ADDRESS",
      kind: .string, defaultValue: .string("127.0.0.1"),
      help: "Address to listen on. Use 0.0.0.0 or :: to listen on all."),
    SettingSpec(
      key: "port", flag: "port", environment: "ASYNCQUEUE_PORT", valueName: "PORT", kind: .port,
      defaultValue: .int(8080), help: "TCP port to listen on, 0 to 65535 (0 picks a free port)."),
    SettingSpec(
      key: "dataDir", flag: "data-dir", environment: "ASYNCQUEUE_DATA_DIR", valueName: "DIR",
      kind: .string, defaultValue: .string("./data"),
      help: """
        Directory for the SQLite database, the vault key and stored results. Each service
        needs its own, also when the tasks are in PostgreSQL.
        """),
    SettingSpec(
      key: "database", flag: "database", environment: "ASYNCQUEUE_DATABASE", valueName: "URL",
      kind: .database, defaultValue: .null,
      help: """
        Where tasks, keys and settings are stored. Empty: SQLite in DATA_DIR/asyncqueue.db.
        A postgres:// or postgresql:// URL (libpq form): a PostgreSQL database that several
        services can share. Its password is masked in --print-config and in logs.
        """),
    SettingSpec(
      key: "leaseTimeout", flag: "lease-timeout", environment: "ASYNCQUEUE_LEASE_TIMEOUT",
      valueName: "SECONDS", kind: .number(1...3600, integer: false), defaultValue: 15,
      help: """
        Seconds (1 to 3600) a service's claim on a task lasts without renewal when several
        services share a PostgreSQL database: how long the tasks of a service that died wait
        before another takes them over.
        """),
    SettingSpec(
      key: "nodeId", flag: "node-id", environment: "ASYNCQUEUE_NODE_ID", valueName: "NAME",
      kind: .string, defaultValue: .null,
      help: """
        This service's name in task claims when several services share a database:
        1 to 64 letters, digits, '-', '_' or '.', different for each service. Default: a
        random name at each start.
        """),
    SettingSpec(
      key: "providersDirs", flag: "providers-dir", environment: "ASYNCQUEUE_PROVIDERS_DIR",
      valueName: "DIR", kind: .list(separator: ":"), defaultValue: .array([]),
      help: """
        Extra directory of provider templates (*.lua), loaded after the built-in ones;
        a template with the same id replaces the earlier one. Repeatable; the
        environment variable takes a colon-separated list.
        """),
    SettingSpec(
      key: "builtinProvidersDir", flag: "builtin-providers-dir",
      environment: "ASYNCQUEUE_BUILTIN_PROVIDERS_DIR", valueName: "DIR", kind: .string,
      defaultValue: .null,
      help: """
        Directory of the built-in templates. Default: ./providers, else the providers/
        folder above the executable, else /usr/share/asyncqueue/providers.
        """),
    SettingSpec(
      key: "pluginsDirs", flag: "plugins-dir", environment: "ASYNCQUEUE_PLUGINS_DIR",
      valueName: "DIR", kind: .list(separator: ":"), defaultValue: .array([]),
      help: """
        Extra directory of plugins (*.lua), loaded after the built-in plugins/; a plugin
        with the same name replaces the earlier one. Repeatable; the environment variable
        takes a colon-separated list. Plugins run only when enabled in their settings.
        """),
    SettingSpec(
      key: "reloadInterval", flag: "reload-interval", environment: "ASYNCQUEUE_RELOAD_INTERVAL",
      valueName: "SECONDS", kind: .number(0...86400, integer: false), defaultValue: 2,
      help: """
        Seconds between checks of the provider and plugin directories for changed files,
        which are then reloaded. 0 turns the check off; SIGHUP always reloads.
        """),
    SettingSpec(
      key: "plugins", flag: nil, environment: nil, valueName: nil, kind: .pluginTable,
      defaultValue: .object([:]),
      help: """
        Plugin settings by plugin name, e.g. {"result-archive": {"enabled": true}}. A plugin
        runs only when its entry has "enabled": true. Config file only.
        """),
    SettingSpec(
      key: "apiKeys", flag: "api-key", environment: "ASYNCQUEUE_API_KEY", valueName: "KEY",
      kind: .list(separator: ","), defaultValue: .array([]),
      help: """
        API key of team 'default' (Authorization: Bearer KEY or X-API-Key: KEY). Repeatable;
        the environment variable takes a comma-separated list. Only a SHA-256 hash is stored.
        When no key is given or stored, one is generated and printed once. Keys of other
        teams come from 'asyncqueue keys create'.
        """, isSecret: true),
    SettingSpec(
      key: "webhookSecret", flag: "webhook-secret", environment: "ASYNCQUEUE_WEBHOOK_SECRET",
      valueName: "SECRET", kind: .string, defaultValue: .null,
      help: """
        Secret for the X-AsyncQueue-Signature HMAC on team 'default''s webhooks and calls.
        Default: generated at first start and stored. Other teams get their own secret;
        see 'asyncqueue secret show --team TEAM'.
        """, isSecret: true),
    SettingSpec(
      key: "vaultKey", flag: "vault-key", environment: "ASYNCQUEUE_VAULT_KEY", valueName: "HEX",
      kind: .string, defaultValue: .null,
      help: """
        64 hex digits: the AES-256 key that encrypts vault tokens at rest. Default: generated
        at first start into DATA_DIR/vault.key (mode 0600). Keep a copy: tokens cannot be
        read without it.
        """, isSecret: true),
    SettingSpec(
      key: "allowPrivateNetwork", flag: "allow-private-network",
      environment: "ASYNCQUEUE_ALLOW_PRIVATE_NETWORK", valueName: nil, kind: .bool,
      defaultValue: .bool(false),
      help: """
        Allow targets and webhooks on loopback, private and link-local addresses.
        Default: off (rejected). Tests and local mock providers need it.
        """),
    SettingSpec(
      key: "publicUrl", flag: "public-url", environment: "ASYNCQUEUE_PUBLIC_URL",
      valueName: "URL", kind: .url, defaultValue: .null,
      help: """
        Base URL clients use to reach this service, for result file links.
        Default: http://HOST:PORT.
        """),
    SettingSpec(
      key: "logLevel", flag: "log-level", environment: "ASYNCQUEUE_LOG_LEVEL", valueName: "LEVEL",
      kind: .choice(["debug", "info", "warn", "error"]), defaultValue: .string("info"),
      help: "Lowest level logged: debug, info, warn or error."),
    SettingSpec(
      key: "logFormat", flag: "log-format", environment: "ASYNCQUEUE_LOG_FORMAT",
      valueName: "FORMAT", kind: .choice(["text", "json"]), defaultValue: .string("text"),
      help: "Log line format on stderr: text or json (one object per line)."),
    SettingSpec(
      key: "rateLimit", flag: "rate-limit", environment: "ASYNCQUEUE_RATE_LIMIT",
      valueName: "REQUESTS/SECONDS", kind: .rateLimit,
      defaultValue: ["requests": 100, "perSeconds": 1],
      help: """
        Requests each team may make to /v1 per window, e.g. 100/1 for 100 per second.
        0 turns the limit off. In the config file: {"requests": 100, "perSeconds": 1}.
        """),
    SettingSpec(
      key: "providerLimits", flag: nil, environment: "ASYNCQUEUE_PROVIDER_LIMITS", valueName: nil,
      kind: .providerLimits, defaultValue: .object([:]),
      help: """
        Overrides of the templates' request limits, by template id, e.g.
        {"fal": {"concurrency": 8, "requestsPerSecond": 4}}; the id "custom" sets the limit
        of each custom pollConfig's target host. The environment variable takes
        id=concurrency/requestsPerSecond, comma-separated: fal=8/4,custom=4096/100000.
        """),
    SettingSpec(
      key: "maxConcurrentSteps", flag: "max-concurrent-steps",
      environment: "ASYNCQUEUE_MAX_CONCURRENT_STEPS", valueName: "N",
      kind: .number(1...1_000_000, integer: true), defaultValue: 2048,
      help: "Task steps (HTTP exchanges with their hook calls) in flight at once."),
    SettingSpec(
      key: "webhookRetention", flag: "webhook-retention",
      environment: "ASYNCQUEUE_WEBHOOK_RETENTION", valueName: "SECONDS",
      kind: .number(60...31_536_000, integer: false), defaultValue: 86400,
      help: "Seconds after a task ends during which an undelivered webhook is retried."),
  ]
}
