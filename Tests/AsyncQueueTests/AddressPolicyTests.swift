import HTTPClient
import Testing

@Suite struct AddressPolicyTests {
  @Test(arguments: [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254",
    "100.64.0.1", "0.0.0.0", "::1", "::", "fd00::1", "fe80::1", "::ffff:10.0.0.1",
  ])
  func privateAddressIsRefused(address: String) {
    #expect(AddressPolicy.isPrivate(address))
    #expect(!AddressPolicy(allowPrivateNetwork: false).allows(address))
    #expect(AddressPolicy(allowPrivateNetwork: true).allows(address))
  }

  @Test(arguments: ["8.8.8.8", "172.32.0.1", "2606:4700::1111", "100.128.0.1"])
  func publicAddressIsAllowed(address: String) {
    #expect(!AddressPolicy.isPrivate(address))
  }
}
