//! WeChat Pay APIv3 client, direct merchant, code pay (docs/protocol.md §15,
//! docs/gateways.md §8): `wire.rs` the request signature, answer verification, AES-GCM and
//! bodies; `cert.rs` platform certificates.

pub mod cert;
pub mod wire;
