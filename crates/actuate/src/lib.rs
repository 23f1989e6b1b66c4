//! harbinger-actuate: the actuators harbinger acts through, and the layers around any of
//! them.
//!
//! # Layout
//! - [`config`]: builds the chain from the `[[actuators]]` tables of the configuration
//!   (start here).
//! - [`chain`]: several actuators called in order, each for some resource kinds.
//! - [`layers`]: timeout, retry with backoff, rate limit and circuit breaker, each an
//!   [`Actuator`](harbinger_engine::Actuator) wrapping another.
//! - [`exec`]: runs a command with the action as JSON on stdin.
//! - [`webhook`]: POSTs the action as JSON, HMAC-SHA256 signed.
//! - [`process`]: starts, health-checks and stops a local service.
//! - [`haproxy`]: switches traffic through HAProxy's runtime API.
//! - [`redis`]: shadows as Redis replicas, promoted with `REPLICAOF NO ONE`.

pub mod chain;
pub mod config;
pub mod exec;
pub mod haproxy;
pub mod layers;
pub mod process;
pub mod redis;
pub mod webhook;

pub use chain::{Chain, Step};
pub use config::{ActuatorConfigError, BuildContext, BuiltChain, build_chain};
