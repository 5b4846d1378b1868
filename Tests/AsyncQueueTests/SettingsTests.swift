import API
import Engine
import Foundation
import Storage
import Support
import Testing

@Suite struct SettingsTests {
  func writeConfig(_ text: String) -> String {
    let path = temporaryDirectory("config") + "/asyncqueue.json"
    _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
    return path
  }

  @Test func flagsBeatEnvironmentBeatFile() throws {
    let file = writeConfig(#"{"port": 9001, "host": "0.0.0.0", "logLevel": "debug"}"#)
    let settings = try ServiceSettings(
      configFile: file, environment: ["ASYNCQUEUE_PORT": "9002", "ASYNCQUEUE_HOST": "10.0.0.1"],
      flags: ["port": ["9003"]])
    let options = settings.serviceOptions()
    #expect(options.port == 9003)
    #expect(options.host == "10.0.0.1")
    #expect(settings.string("logLevel") == "debug")
    #expect(settings.sources["port"] == "--port")
    #expect(settings.sources["host"] == "ASYNCQUEUE_HOST")
    #expect(settings.sources["logLevel"]?.hasPrefix("config file") == true)
    #expect(settings.sources["dataDir"] == "default")
  }

  @Test func fileFillsEveryOption() throws {
    let file = writeConfig(
      """
      {"dataDir": "/var/lib/aq", "providersDirs": ["/etc/aq/providers"],
       "pluginsDirs": ["/etc/aq/plugins"], "plugins": {"result-archive": {"enabled": true}},
       "apiKeys": ["k1-abcdef"], "webhookSecret": "whsec_file", "allowPrivateNetwork": true,
       "publicUrl": "https://queue.example.com", "logFormat": "json",
       "rateLimit": {"requests": 50, "perSeconds": 10},
       "providerLimits": {"fal": {"concurrency": 8, "requestsPerSecond": 4}},
       "maxConcurrentSteps": 64, "webhookRetention": 3600,
       "database": "postgresql://aq:pw@db.example.com/queue", "leaseTimeout": 7.5,
       "nodeId": "node-1"}
      """)
    let options = try ServiceSettings(configFile: file, environment: [:], flags: [:])
      .serviceOptions()
    #expect(options.dataDirectory == "/var/lib/aq")
    #expect(options.providerDirectories == ["/etc/aq/providers"])
    #expect(options.pluginDirectories == ["/etc/aq/plugins"])
    #expect(options.plugins["result-archive"]?["enabled"] == .bool(true))
    #expect(options.apiKeys == ["k1-abcdef"])
    #expect(options.webhookSecret == "whsec_file")
    #expect(options.allowPrivateNetwork)
    #expect(options.publicURL == "https://queue.example.com")
    #expect(options.rateLimit == RateLimit(requests: 50, perSeconds: 10))
    #expect(options.providerLimits["fal"] == ProviderLimits(concurrency: 8, requestsPerSecond: 4))
    #expect(options.maxConcurrentSteps == 64)
    #expect(options.webhookRetention == 3600)
    #expect(options.database == "postgresql://aq:pw@db.example.com/queue")
    #expect(options.leaseTimeout == 7.5)
    #expect(options.nodeId == "node-1")
  }

  @Test func databaseDefaultsToSQLite() throws {
    let defaults = try ServiceSettings(configFile: nil, environment: [:], flags: [:])
      .serviceOptions()
    #expect(defaults.database == nil)
    #expect(defaults.leaseTimeout == 15)
    #expect(defaults.nodeId == nil)
    let empty = try ServiceSettings(configFile: nil, environment: [:], flags: ["database": [""]])
    #expect(empty.serviceOptions().database == nil)
    let fromEnvironment = try ServiceSettings(
      configFile: nil, environment: ["ASYNCQUEUE_DATABASE": "postgres://127.0.0.1/queue"],
      flags: ["lease-timeout": ["2"], "node-id": ["node-b"]])
    let options = fromEnvironment.serviceOptions()
    #expect(options.database == "postgres://127.0.0.1/queue")
    #expect(fromEnvironment.sources["database"] == "ASYNCQUEUE_DATABASE")
    #expect(options.leaseTimeout == 2)
    #expect(options.nodeId == "node-b")
  }

  @Test(arguments: [
    (["database": ["mysql://127.0.0.1/queue"]], "--database: 'database' must be empty"),
    (["database": ["db.example.com"]], "postgres:// or postgresql:// URL"),
    (["lease-timeout": ["0"]], "--lease-timeout: 'leaseTimeout' must be a number from 1"),
    (["lease-timeout": ["0.5"]], "'leaseTimeout' must be a number from 1 to 3600"),
    (["lease-timeout": ["-3"]], "'leaseTimeout' must be a number from 1"),
    (["lease-timeout": ["soon"]], "invalid --lease-timeout 'soon': expected a number"),
    (["node-id": ["node a"]], "invalid --node-id: 'nodeId' must be 1 to 64 letters"),
    (["node-id": [""]], "'nodeId' must be 1 to 64 letters"),
    (["node-id": [String(repeating: "n", count: 65)]], "'nodeId' must be 1 to 64 letters"),
  ])
  func invalidClusterFlagNamesFlag(flags: [String: [String]], message: String) {
    #expect {
      _ = try ServiceSettings(configFile: nil, environment: [:], flags: flags)
    } throws: { "\($0)".contains(message) }
  }

  @Test func databasePasswordsAreRedacted() {
    let redactor = Redactor()
    let url = "postgres://aq:Pass%2Fword-9@db:5432/queue?password=Other-Secret-7"
    DatabaseURL.registerSecrets(url, with: redactor)
    #expect(!redactor.redact("connect \(url) failed").contains("Pass"))
    #expect(redactor.redact("password Pass/word-9 rejected") == "password *** rejected")
    #expect(redactor.redact("password Other-Secret-7 rejected") == "password *** rejected")
    #expect(DatabaseURL.masked(url) == "postgres://aq:***@db:5432/queue?password=***")
    #expect(DatabaseURL.masked("postgres://aq@db/queue") == "postgres://aq@db/queue")
    #expect(DatabaseURL.masked("postgres://db/a@b") == "postgres://db/a@b")
  }

  @Test func databaseErrorOmitsPassword() {
    #expect {
      _ = try ServiceSettings(
        configFile: nil, environment: ["ASYNCQUEUE_DATABASE": "mysql://aq:db-hidden@host/queue"],
        flags: [:])
    } throws: { error in
      "\(error)".contains("ASYNCQUEUE_DATABASE") && !"\(error)".contains("db-hidden")
    }
  }

  @Test func listsFromFlagsAndEnvironment() throws {
    let settings = try ServiceSettings(
      configFile: nil,
      environment: [
        "ASYNCQUEUE_PLUGINS_DIR": "/a:/b", "ASYNCQUEUE_API_KEY": "k1-abcdef, k2-abcdef",
      ],
      flags: ["providers-dir": ["/p1", "/p2"], "rate-limit": ["20/5"]])
    let options = settings.serviceOptions()
    #expect(options.pluginDirectories == ["/a", "/b"])
    #expect(options.apiKeys == ["k1-abcdef", "k2-abcdef"])
    #expect(options.providerDirectories == ["/p1", "/p2"])
    #expect(options.rateLimit == RateLimit(requests: 20, perSeconds: 5))
  }

  @Test(arguments: [
    (#"{"prot": 8080}"#, "unknown key 'prot'; did you mean 'port'?"),
    (#"{"colour": "blue"}"#, "unknown key 'colour'; known keys are host, port"),
    (#"{"port": "8080"}"#, "'port' must be an integer"),
    (#"{"port": 70000}"#, "'port' must be an integer from 0 to 65535"),
    (#"{"logLevel": "loud"}"#, "'logLevel' must be one of debug, info, warn, error"),
    (#"{"allowPrivateNetwork": "yes"}"#, "'allowPrivateNetwork' must be true or false"),
    (#"{"providersDirs": "/x"}"#, "'providersDirs' must be an array of strings"),
    (#"{"publicUrl": "queue.example.com"}"#, "'publicUrl' must be an http or https URL"),
    (#"{"rateLimit": {"requests": -1}}"#, "'rateLimit'.requests must be a whole number"),
    (#"{"rateLimit": {"requests": 5, "per": 1}}"#, "unknown key 'per'"),
    (
      #"{"plugins": {"archive": {"enabled": 1}}}"#,
      "'plugins'.archive.enabled must be true or false"
    ),
    (#"{"providerLimits": {"fal": {"concurrency": 0, "requestsPerSecond": 1}}}"#, "concurrency"),
    (#"{"providerLimits": {"fal": {"rps": 1}}}"#, "unknown key 'rps'"),
    (#"{"maxConcurrentSteps": 1.5}"#, "'maxConcurrentSteps' must be an integer"),
    (#"{"webhookRetention": 5}"#, "'webhookRetention' must be a number from 60"),
    (#"{"database": 5432}"#, "'database' must be a string"),
    (#"{"database": "sqlite:///tmp/queue.db"}"#, "'database' must be empty"),
    (#"{"leaseTimeout": 0}"#, "'leaseTimeout' must be a number from 1 to 3600"),
    (#"{"leaseTimeout": "15"}"#, "'leaseTimeout' must be a number"),
    (#"{"nodeId": "a/b"}"#, "'nodeId' must be 1 to 64 letters"),
    (#"[1]"#, "must contain a JSON object"),
    (#"{"port": "#, "is not valid JSON"),
  ])
  func invalidFileNamesKey(text: String, message: String) throws {
    let file = writeConfig(text)
    #expect {
      _ = try ServiceSettings(configFile: file, environment: [:], flags: [:])
    } throws: { error in
      let description = "\(error)"
      return description.contains(message) && description.contains(file)
    }
  }

  @Test func invalidFlagNamesFlag() {
    #expect {
      _ = try ServiceSettings(configFile: nil, environment: [:], flags: ["port": ["http"]])
    } throws: { "\($0)".contains("--port") }
    #expect {
      _ = try ServiceSettings(
        configFile: nil, environment: ["ASYNCQUEUE_LOG_FORMAT": "xml"], flags: [:])
    } throws: { "\($0)".contains("ASYNCQUEUE_LOG_FORMAT") }
  }

  @Test func printableMasksSecrets() throws {
    let settings = try ServiceSettings(
      configFile: nil,
      environment: [
        "ASYNCQUEUE_WEBHOOK_SECRET": "whsec_hidden",
        "ASYNCQUEUE_DATABASE": "postgres://aq:pw-hidden@db1:5432,db2:5432/queue",
      ],
      flags: ["api-key": ["k1-hidden", "k2-hidden"]])
    let printed = settings.printable()
    #expect(printed["apiKeys"] == ["***", "***"])
    #expect(printed["webhookSecret"] == "***")
    #expect(printed["database"] == "postgres://aq:***@db1:5432,db2:5432/queue")
    #expect(!printed.serialized().contains("hidden"))
    #expect(printed["port"] == 8080)
    #expect(printed["rateLimit"]?["requests"] == 100)
    let keys = Set(printed.objectValue?.keys.map { $0 } ?? [])
    #expect(keys == Set(SettingSpec.all.map(\.key)))
  }
}
