import API
import Support
import Testing

@Suite struct ConfigMaskingTests {
  @Test func printConfigMasksNestedSecrets() throws {
    let settings = try ServiceSettings(
      configFile: nil,
      environment: [
        "ASYNCQUEUE_PUBLIC_URL": "http://admin:hunter2-pass@127.0.0.1:8080"
      ], flags: [:])
    let printed = settings.printable()
    #expect(printed["publicUrl"]?.stringValue == "http://admin:***@127.0.0.1:8080")
    let plugins: JSONValue = [
      "failure-notifier": [
        "enabled": true, "url": "https://hooks.example/x",
        "headers": ["Authorization": "Bearer notifier-secret-xyz", "X-Team": "ops"],
      ]
    ]
    let masked = ServiceSettings.maskingNestedSecrets(plugins)
    #expect(masked["failure-notifier"]?["headers"]?["Authorization"] == "***")
    #expect(masked["failure-notifier"]?["headers"]?["X-Team"] == "ops")
    #expect(masked["failure-notifier"]?["url"] == "https://hooks.example/x")
  }

  @Test func invalidVaultKeyIsRejected() {
    #expect(throws: ConfigError.self) {
      _ = try ServiceSettings(
        configFile: nil, environment: ["ASYNCQUEUE_VAULT_KEY": "zz"], flags: [:])
    }
  }
}
