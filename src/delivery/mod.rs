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
//! consults the breaker and the retry policy and records the outcome lives beside these files.
//! Nothing here logs or formats a message body: error details name the destination and the
//! failure, never the content.

pub mod backoff;
pub mod breaker;
pub mod transport;

pub use backoff::{Backoff, DeadReason, Next, Random, RetryPolicy};
pub use breaker::{
    BreakerConfig, BreakerSnapshot, BreakerState, Breakers, Clock, ManualClock, RetryAt,
    SystemClock,
};
pub use transport::{
    build, build_with, file_extension, FailureKind, FolderTransport, HttpClients, HttpSettings,
    HttpTransport, Outgoing, Response, Transport, TransportConfig, TransportError,
};
