"""Real servers for the integration tests, benchmarks and demo, started on 127.0.0.1 only.

- `bind.BindServer` / `bind.BindResolver`: authoritative BIND taking TSIG updates of TXT records,
  and a forwarding resolver in front of it that follows CNAMEs between the test zones.
- `pebble.Pebble`: the ACME test CA, validating through a given loopback DNS server.
- `pebble_front.PebbleFront`: Pebble behind an HTTPS front that hides a challenge type (a CA
  without dns-persist-01).
- `s3_header_stripping_proxy.HeaderStrippingProxy`: moto's S3 behind a proxy that drops
  `If-None-Match`/`If-Match` from writes (an S3-compatible server ignoring conditional writes).
- `tls.make_ca_and_server_cert`: the throw-away CA behind Pebble's HTTPS listener.
- `ports.free_port` / `ports.wait_until`: free loopback ports and deadline-bounded polling.
- `netguard.install`: the suite-wide guard refusing any traffic beyond loopback.

Only the standard library, cryptography and requests are imported here (dnspython never at module
level), so bench/ and demo scripts and the Python 3.8 agent tests can use these modules too.
"""
