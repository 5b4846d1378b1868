import API
import Foundation
import MockProvider
import Storage
import Support
import Testing

@Suite(.serialized) struct TeamsTests {
  /// Creates a key for `team` in the service's database and returns it.
  func addKey(_ service: TestService, team: String) throws -> String {
    let key = "aq_test_" + Crypto.randomHex(bytes: 12)
    _ = try service.service.store.createAPIKey(
      hash: Crypto.sha256Hex(key), teamId: team, label: "test")
    return key
  }

  @Test func otherTeamsTaskIs404() async throws {
    let target = WebhookReceiver()
    try target.start()
    let service = try TestService()
    defer {
      service.stop()
      target.stop()
    }
    let alpha = try addKey(service, team: "alpha")
    let beta = try addKey(service, team: "beta")
    let (status, created) = try await service.call(
      "POST", "/v1/tasks", body: #"{"targetUrl": "\#(target.url)"}"#, key: alpha)
    #expect(status == 201)
    #expect(created["task"]?["teamId"]?.stringValue == "alpha")
    let id = created["task"]?["id"]?.stringValue ?? ""

    let (own, _) = try await service.call("GET", "/v1/tasks/\(id)", key: alpha)
    #expect(own == 200)
    let (other, body) = try await service.call("GET", "/v1/tasks/\(id)", key: beta)
    #expect(other == 404)
    #expect(body["code"]?.stringValue == "not_found")
    let (otherResult, _) = try await service.call("GET", "/v1/tasks/\(id)/result", key: beta)
    #expect(otherResult == 404)
    let (_, betaList) = try await service.call("GET", "/v1/tasks", key: beta)
    #expect(betaList["pagination"]?["total"]?.intValue == 0)
    let (_, defaultList) = try await service.call("GET", "/v1/tasks")
    #expect(defaultList["pagination"]?["total"]?.intValue == 0)
    let (_, alphaList) = try await service.call("GET", "/v1/tasks", key: alpha)
    #expect(alphaList["pagination"]?["total"]?.intValue == 1)
  }

  @Test func teamWebhooksUseTeamSecret() async throws {
    let target = WebhookReceiver()
    try target.start()
    let hook = WebhookReceiver()
    try hook.start()
    let service = try TestService()
    defer {
      service.stop()
      target.stop()
      hook.stop()
    }
    let key = try addKey(service, team: "gamma")
    let body = #"{"targetUrl": "\#(target.url)", "onCompleteUrl": "\#(hook.url)"}"#
    let (status, _) = try await service.call("POST", "/v1/tasks", body: body, key: key)
    #expect(status == 201)
    let deliveries = hook.waitForDeliveries(count: 1, timeout: 10)
    let delivery = try #require(deliveries.first)
    let secret = try #require(try service.service.store.storedTeamSecret("gamma"))
    #expect(secret != TestService.webhookSecret)
    let header = delivery.headers["x-asyncqueue-signature"] ?? ""
    let now = Int(Date().timeIntervalSince1970)
    #expect(WebhookSignature.verify(header: header, secret: secret, body: delivery.body, now: now))
    #expect(
      !WebhookSignature.verify(
        header: header, secret: TestService.webhookSecret, body: delivery.body, now: now))

    let call = try #require(target.deliveries().first)
    let callHeader = call.headers["x-asyncqueue-signature"] ?? ""
    #expect(WebhookSignature.verify(header: callHeader, secret: secret, body: call.body, now: now))
    #expect(!service.logLines.all.joined(separator: "\n").contains(secret))
  }

  @Test(arguments: StoreBackend.available) func revokedKeyIsRejected(_ backend: StoreBackend)
    throws
  {
    try backend.withStore { store in try checkRevocation(store) }
  }

  func checkRevocation(_ store: any TaskStore) throws {
    let authenticator = Authenticator(store: store, cacheSeconds: 0)
    let record = try store.createAPIKey(
      hash: Crypto.sha256Hex("aq_revoke_me_123"), teamId: "delta", label: "ci")
    #expect(record.id.hasPrefix("key_"))
    #expect(authenticator.team(authorization: "Bearer aq_revoke_me_123", apiKey: nil) == "delta")
    #expect(try store.revokeAPIKey(id: record.id))
    #expect(authenticator.team(authorization: "Bearer aq_revoke_me_123", apiKey: nil) == nil)
    #expect(try store.revokeAPIKey(id: "key_unknown") == false)
    let listed = try store.apiKeys()
    #expect(listed.count == 1)
    #expect(listed.first?.revokedAt != nil)
    #expect(listed.first?.teamId == "delta")
  }

  @Test(arguments: StoreBackend.available) func teamSecretIsStableAndDistinct(
    _ backend: StoreBackend
  ) throws {
    try backend.withStore { store in try checkTeamSecrets(store) }
  }

  func checkTeamSecrets(_ store: any TaskStore) throws {
    let first = try store.teamSecret("a", makeSecret: TeamSecrets.makeSecret)
    let again = try store.teamSecret("a", makeSecret: TeamSecrets.makeSecret)
    let other = try store.teamSecret("b", makeSecret: TeamSecrets.makeSecret)
    #expect(first == again)
    #expect(first != other)
    #expect(first.hasPrefix("whsec_"))
  }
}
