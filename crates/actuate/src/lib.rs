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
//! - [`resource`]: resources a change touches (files, Redis keys and parameters,
//!   commands): read, write, stage; used by change safety.

pub mod chain;
pub mod config;
pub mod exec;
pub mod haproxy;
pub mod layers;
pub mod process;
pub mod redis;
pub mod resource;
pub mod webhook;

pub use chain::{Chain, Step};
pub use config::{ActuatorConfigError, BuildContext, BuiltChain, build_chain};

use harbinger_engine::{ActuatorOutcome, ActuatorRequest};

/// Logs what an actuator answered to an action: one line per action, the same fields for
/// every kind (`on`: what it acted through — a program, a URL, a socket, a shadow).
pub(crate) fn log_answer(actuator: &'static str, req: &ActuatorRequest, out: &ActuatorOutcome, on: &dyn std::fmt::Display) {
    tracing::info!(
        target: "harbinger::actuator",
        actuator,
        key = %req.key,
        attempt = req.attempt,
        action = exec::action_name(&req.action),
        outcome = out.status.as_str(),
        endpoint = ?out.endpoint,
        shadow = %req.shadow.id,
        on = %on,
        "{}",
        out.detail
    );
}

/// An error and its sources, `: `-separated (a source whose text is already there is left
/// out).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let next = c.to_string();
        if !s.contains(&next) {
            s.push_str(": ");
            s.push_str(&next);
        }
        src = c.source();
    }
    s
}
