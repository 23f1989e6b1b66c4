//! harbinger-engine: the part of harbinger that acts.
//!
//! The [`Engine`] ticks every host's risk on the clock it is given, turns alert
//! transitions, Alertmanager webhooks, change events and operators' requests into
//! triggers, asks the pure planner (`harbinger-plan`) for a plan, and performs it through
//! an [`Actuator`], journaling every action before and after (shadow store of
//! `harbinger-core`), so a crash never loses or duplicates a shadow.
//!
//! # Layout
//! - [`engine`]: [`Engine`] (open and resume, tick, create, promote, alerts, status).
//! - [`actuator`]: the [`Actuator`] trait and the `log` dry run.
//! - [`ingest`]: [`Ingest`], the one path samples and events take from HTTP and gRPC.
//! - [`alerts`]: Alertmanager's webhook payload and the triggers it means.
//! - [`watchdog`]: health checks of primaries and failover when they fail.
//! - [`telemetry`]: harbinger's own metrics, shared by HTTP and gRPC.
//!
//! Start with [`Engine::open`] and [`Engine::tick`].

pub mod actuator;
pub mod alerts;
pub mod engine;
pub mod ingest;
pub mod telemetry;
pub mod watchdog;

pub use actuator::{Actuator, ActuatorOutcome, ActuatorRequest, LogActuator};
pub use engine::{AlertReport, Engine, EngineConfig, EngineError, EngineParts, Executed, ResumeReport, Status, StatusFilter, TickReport};
pub use ingest::{EventsRefused, Ingest, SamplesAccepted};
pub use telemetry::Telemetry;
pub use watchdog::{Watchdog, WatchdogConfig};
