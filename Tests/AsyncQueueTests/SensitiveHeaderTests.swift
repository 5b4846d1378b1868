import Testing

@testable import Engine

@Suite struct SensitiveHeaderTests {
  @Test func namesAreMatchedByPart() {
    let cases: [(String, Bool)] = [
      ("Authorization", true), ("x-api-key", true), ("X-API-KEY", true), ("Cookie", true),
      ("X-Amz-Security-Token", true), ("X-Webhook-Signature", true), ("Proxy-Authenticate", true),
      ("Client-Secret", true), ("X-Password", true), ("Credential", true),
      ("Content-Type", false), ("Accept", false), ("X-Mock-Scenario", false), ("", false),
      ("ke", false), ("\u{212A}ey", true), ("Ünicode-Token", true), ("Ünicode", false),
    ]
    for (name, expected) in cases {
      #expect(TaskPresenter.isSensitiveHeader(name) == expected, "header \(name)")
    }
  }

  @Test func maskedHeadersHideOnlySensitiveValues() {
    let masked = TaskPresenter.maskedHeaders(["Authorization": "Bearer abc", "Accept": "*/*"])
    #expect(masked["Authorization"] == "***")
    #expect(masked["Accept"] == "*/*")
  }
}
