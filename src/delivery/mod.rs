//! Delivery of outbox rows to their recipients: the means, not the bookkeeping.
//!
//! - [`transport`]: how one row's bytes reach a recipient — HTTP(S) POST (mutual TLS when a client
//!   certificate is configured) or a drop folder — and how every failure is classified
//!   ([`FailureKind`], retryable or not). A transport knows nothing of message formats: it sees a
//!   key, a content type and bytes.
//! - [`backoff`]: when to try a failed row again (capped exponential backoff with full jitter) and
//!   when to give up on it ([`RetryPolicy`] → dead letter after a number of attempts or an age).
//! - [`breaker`]: a circuit breaker per destination, so that a unit whose system is down is left
//!   alone for a cool-down instead of being hammered by every row addressed to it.
//!
//! What this module must NOT do: read or write the store, know which message a row carries, decide
//! routing, or sleep on behalf of the worker. The worker loop that leases rows, calls a transport,
//! consults the breaker and the retry policy and records the outcome is [`worker`].
//! Nothing here logs or formats a message body: error details name the destination and the
//! failure, never the content.

pub mod backoff;
pub mod breaker;
pub mod transport;
pub mod worker;

pub use backoff::{Backoff, DeadReason, Next, Random, RetryPolicy};
pub use breaker::{BreakerConfig, BreakerSnapshot, BreakerState, Breakers, RetryAt};
pub use transport::{
    build, build_with, file_extension, FailureKind, FolderTransport, HttpClients, HttpSettings,
    HttpTransport, Outgoing, Response, Transport, TransportConfig, TransportError,
};

/// Request timeout when the directory names none.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

/// The transport settings for a directory endpoint.
pub fn transport_config(e: &crate::registry::Endpoint) -> TransportConfig {
    match e {
        crate::registry::Endpoint::Http {
            url,
            client_cert,
            client_key,
            ca_cert,
            timeout_ms,
        } => TransportConfig::Http {
            url: url.clone(),
            client_cert: client_cert.clone(),
            client_key: client_key.clone(),
            ca_cert: ca_cert.clone(),
            timeout_ms: timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
        },
        crate::registry::Endpoint::Folder { dir } => TransportConfig::Folder { dir: dir.clone() },
    }
}

/// A directory endpoint as an outbox row stores it (JSON), so the row can be delivered even if
/// the directory changes meanwhile.
pub fn endpoint_json(e: &crate::registry::Endpoint) -> Result<String, serde_json::Error> {
    serde_json::to_string(e)
}
