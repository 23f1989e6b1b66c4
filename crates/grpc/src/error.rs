//! The one place where request and domain errors become gRPC status codes.

use harbinger_actuate::resource::ResourceError;
use harbinger_api::http::ApiError;
use harbinger_change::ChangeError;
use harbinger_core::{HostId, ModelInfo, ScoreError, StoreError};
use harbinger_engine::EngineError;
use tonic::{Code, Status};

/// Why a call failed. Each variant has one status code (see [`GrpcError::code`]).
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    /// A malformed request; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// More hosts in one request than `grpc.max_hosts_per_request`.
    #[error("{requested} hosts in one request, the server's limit is {limit} (grpc.max_hosts_per_request); split the request")]
    TooManyHosts {
        /// Hosts asked for.
        requested: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A host the scorer does not know.
    #[error("unknown host {}: not in the inventory and no data received for it", harbinger_core::ids::echo(.0.as_str()))]
    UnknownHost(HostId),
    /// A mutating call without the bearer token, or with a wrong one.
    #[error("{0}")]
    Unauthenticated(#[from] harbinger_api::auth::AuthFailure),
    /// The server runs without a model.
    #[error("no failure model is loaded ({0}); point `model.dir` at a trained model and reload")]
    NoModel(String),
    /// The scorer failed for a reason other than the request.
    #[error("scoring failed: {0}")]
    Model(String),
    /// A reload failed; the previous model keeps serving.
    #[error("model reload failed, still serving model {previous}: {reason}")]
    Reload {
        /// Version still served.
        previous: String,
        /// Why the new model could not be loaded.
        reason: String,
    },
    /// The store refused or failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A worker task failed (a bug); logged.
    #[error("internal error: {0}")]
    Internal(String),
    /// The server runs without the engine (`ShadowService` calls).
    #[error("the engine is not running")]
    NoEngine,
    /// The engine refused or failed; see [`engine_code`] for the codes.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A request over a fixed limit (a change template over 4 MiB); the message names it.
    #[error("{0}")]
    TooLarge(String),
    /// The server runs without the change engine (`ChangeService` calls).
    #[error("the change engine is not running: its store could not be opened when the server started (the server logged why)")]
    NoChangeEngine,
    /// The change engine refused or failed; see [`change_code`] for the codes.
    #[error(transparent)]
    Change(#[from] ChangeError),
    /// The server keeps no rollout records (`GetRollout`, `ListRollouts`).
    #[error("this server keeps no rollout records")]
    NoRollouts,
    /// Reading a rollout record failed (the HTTP server's reader); see [`rollout_code`].
    #[error(transparent)]
    Rollout(ApiError),
}

/// The status code of an error reading rollout records:
///
/// | error | code |
/// | --- | --- |
/// | `BadQuery` (an id that cannot name a rollout) | INVALID_ARGUMENT |
/// | `NotFound` (no record of that id) | NOT_FOUND |
/// | `Unavailable` | UNAVAILABLE |
/// | `Internal` (a record that cannot be read or parsed), anything else | INTERNAL |
pub fn rollout_code(e: &ApiError) -> Code {
    match e {
        ApiError::BadQuery(_) => Code::InvalidArgument,
        ApiError::NotFound(_) => Code::NotFound,
        ApiError::Unavailable(_) => Code::Unavailable,
        _ => Code::Internal,
    }
}

/// The status code of a change-engine error:
///
/// | error | code |
/// | --- | --- |
/// | `Template` syntax or content, `Cycle`, `OutsideProfile`, a resource `Spec` or `State` | INVALID_ARGUMENT |
/// | `UnknownChange`, `UnknownResource` (not changed by that change) | NOT_FOUND |
/// | `NotApplied` (rollback of a rejected change) | FAILED_PRECONDITION |
/// | `Unreadable`, a resource `Io` error, `Store` (other than a corrupt record), snapshot `Io` | UNAVAILABLE |
/// | `Corrupt`, a corrupt store record, other `Snapshot` errors, `Template` `Read` | INTERNAL |
pub fn change_code(e: &ChangeError) -> Code {
    use harbinger_change::template::TemplateError;
    match e {
        ChangeError::Template(TemplateError::Syntax { .. } | TemplateError::Invalid { .. }) => Code::InvalidArgument,
        ChangeError::Template(TemplateError::Read { .. }) => Code::Internal,
        ChangeError::Cycle(_) | ChangeError::OutsideProfile { .. } => Code::InvalidArgument,
        ChangeError::Resource(ResourceError::Spec { .. } | ResourceError::State { .. }) => Code::InvalidArgument,
        ChangeError::Resource(ResourceError::Io { .. }) | ChangeError::Unreadable { .. } => Code::Unavailable,
        ChangeError::Store(s) if s.detail.contains("corrupt record") => Code::Internal,
        ChangeError::Store(_) => Code::Unavailable,
        ChangeError::Snapshot(harbinger_snapshot::SnapshotError::Io { .. }) => Code::Unavailable,
        ChangeError::Snapshot(_) | ChangeError::Corrupt(_) => Code::Internal,
        ChangeError::UnknownChange(_) | ChangeError::UnknownResource { .. } => Code::NotFound,
        ChangeError::NotApplied { .. } => Code::FailedPrecondition,
    }
}

/// The status code of an engine error:
///
/// | error | code |
/// | --- | --- |
/// | `UnknownResource`, `UnknownShadow` | NOT_FOUND |
/// | `Duplicate` (a live shadow made by hand exists) | ALREADY_EXISTS |
/// | `NotReady`, `NotPlaced` (the planner placed nothing) | FAILED_PRECONDITION |
/// | `Alerts`, `Invalid` | INVALID_ARGUMENT |
/// | `Store(Closed)` | UNAVAILABLE |
/// | `Actuator` (journaled as failed; trying again may succeed) | UNAVAILABLE |
/// | `NoSnapshots` | UNAVAILABLE |
/// | `Snapshot` of an unknown resource or sequence | NOT_FOUND |
/// | `Store`, `Internal`, other `Snapshot` errors | INTERNAL |
pub fn engine_code(e: &EngineError) -> Code {
    match e {
        EngineError::UnknownResource(_) | EngineError::UnknownShadow(_) => Code::NotFound,
        EngineError::Duplicate { .. } => Code::AlreadyExists,
        EngineError::NotReady { .. } | EngineError::NotPlaced { .. } => Code::FailedPrecondition,
        EngineError::Alerts(_) | EngineError::Invalid(_) => Code::InvalidArgument,
        EngineError::Store(StoreError::Closed) | EngineError::Actuator { .. } => Code::Unavailable,
        EngineError::NoSnapshots => Code::Unavailable,
        EngineError::Snapshot(
            harbinger_snapshot::SnapshotError::UnknownResource { .. } | harbinger_snapshot::SnapshotError::UnknownSeq { .. },
        ) => Code::NotFound,
        EngineError::Store(_) | EngineError::Internal(_) | EngineError::Snapshot(_) => Code::Internal,
    }
}

impl GrpcError {
    /// The status code of this error.
    pub fn code(&self) -> Code {
        match self {
            Self::Invalid(_) => Code::InvalidArgument,
            Self::TooManyHosts { .. } => Code::ResourceExhausted,
            Self::UnknownHost(_) => Code::NotFound,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::NoModel(_) | Self::NoEngine | Self::NoChangeEngine => Code::Unavailable,
            Self::Engine(e) => engine_code(e),
            Self::Change(e) => change_code(e),
            Self::NoRollouts => Code::Unavailable,
            Self::Rollout(e) => rollout_code(e),
            Self::TooLarge(_) => Code::ResourceExhausted,
            Self::Reload { .. } => Code::FailedPrecondition,
            Self::Store(StoreError::Closed) => Code::Unavailable,
            Self::Model(_) | Self::Store(_) | Self::Internal(_) => Code::Internal,
        }
    }

    /// A reload failure, naming the model still served.
    pub fn reload(previous: &ModelInfo, err: &ScoreError) -> Self {
        Self::Reload { previous: previous.version.to_string(), reason: err.to_string() }
    }
}

impl From<ScoreError> for GrpcError {
    fn from(e: ScoreError) -> Self {
        match e {
            ScoreError::UnknownHost(h) => Self::UnknownHost(h),
            ScoreError::Invalid(m) => Self::Invalid(m),
            ScoreError::Model(m) => Self::Model(m),
        }
    }
}

impl From<GrpcError> for Status {
    fn from(e: GrpcError) -> Self {
        let code = e.code();
        if matches!(code, Code::Internal) {
            tracing::error!(error = %e, "gRPC call failed");
        } else {
            tracing::debug!(error = %e, ?code, "gRPC call refused");
        }
        Status::new(code, e.to_string())
    }
}

/// tonic reports a message over the decode limit as OUT_OF_RANGE; gRPC's own servers (and
/// this API's contract) say RESOURCE_EXHAUSTED. Recognises tonic's message.
pub(crate) fn is_oversized_message(code: &str, message: &str) -> bool {
    code == "11" && message.contains("message length too large")
}

/// The status for a stream item that failed to decode: over the size limit becomes
/// RESOURCE_EXHAUSTED, anything else is passed on.
pub(crate) fn map_decode_error(s: Status) -> Status {
    if s.code() == Code::OutOfRange && is_oversized_message("11", s.message()) {
        Status::resource_exhausted(format!("{} (grpc.max_message_bytes)", s.message()))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_the_documented_code() {
        let cases: Vec<(GrpcError, Code)> = vec![
            (ScoreError::UnknownHost(HostId::new("h9")).into(), Code::NotFound),
            (ScoreError::Invalid("empty host id".into()).into(), Code::InvalidArgument),
            (ScoreError::Model("nan".into()).into(), Code::Internal),
            (GrpcError::TooManyHosts { requested: 5, limit: 2 }, Code::ResourceExhausted),
            (GrpcError::Unauthenticated(harbinger_api::auth::AuthFailure::Missing), Code::Unauthenticated),
            (GrpcError::NoModel("x".into()), Code::Unavailable),
            (GrpcError::Store(StoreError::Closed), Code::Unavailable),
            (GrpcError::NoEngine, Code::Unavailable),
        ];
        for (e, code) in cases {
            let s = Status::from(e);
            assert_eq!(s.code(), code, "{}", s.message());
        }
        let s = Status::from(GrpcError::UnknownHost(HostId::new("h9")));
        assert!(s.message().starts_with("unknown host \"h9\""), "{}", s.message());
        // Regression: a 1 MiB host id was echoed whole.
        let s = Status::from(GrpcError::UnknownHost(HostId::new("x".repeat(1 << 20))));
        assert!(s.message().len() < 300 && s.message().contains("(1048576 bytes)"), "{}", s.message().len());
    }

    #[test]
    fn engine_errors_have_the_documented_codes() {
        use harbinger_core::shadow::ShadowState;
        let cases: Vec<(EngineError, Code)> = vec![
            (EngineError::UnknownResource("db".into()), Code::NotFound),
            (EngineError::UnknownShadow("s".into()), Code::NotFound),
            (EngineError::Duplicate { resource: "db".into(), shadow: "s".into(), state: ShadowState::Ready }, Code::AlreadyExists),
            (EngineError::NotReady { shadow: "s".into(), state: ShadowState::Syncing }, Code::FailedPrecondition),
            (EngineError::NotPlaced { resource: "db".into(), reason: "no capacity".into() }, Code::FailedPrecondition),
            (EngineError::Invalid("x".into()), Code::InvalidArgument),
            (EngineError::Store(StoreError::Closed), Code::Unavailable),
            (EngineError::Actuator { actuator: "k8s", key: "promote:s".into(), detail: "refused".into() }, Code::Unavailable),
            (EngineError::Internal("bug".into()), Code::Internal),
        ];
        for (e, code) in cases {
            let text = e.to_string();
            let s = Status::from(GrpcError::from(e));
            assert_eq!((s.code(), s.message()), (code, text.as_str()));
        }
    }

    #[test]
    fn change_errors_have_the_documented_codes() {
        use harbinger_change::template::TemplateError;
        let file = std::path::PathBuf::from("template.yaml");
        let store = |detail: &str| harbinger_change::store::StoreError { path: "changes.redb".into(), detail: detail.into() };
        let cases: Vec<(ChangeError, Code)> = vec![
            (TemplateError::Syntax { file: file.clone(), line: 3, column: 7, detail: "bad".into() }.into(), Code::InvalidArgument),
            (TemplateError::Invalid { file, detail: "resource \"a\": missing key `kind`".into() }.into(), Code::InvalidArgument),
            (
                ChangeError::Cycle(harbinger_change::graph::CycleError { cycle: vec!["a".into(), "b".into(), "a".into()] }),
                Code::InvalidArgument,
            ),
            (
                ChangeError::OutsideProfile {
                    resource: "a".into(),
                    kind: "file".into(),
                    paths: vec!["/x".into()],
                    profile: vec!["/content".into()],
                },
                Code::InvalidArgument,
            ),
            (ResourceError::Spec { resource: "a".into(), detail: "x".into() }.into(), Code::InvalidArgument),
            (ResourceError::Io { resource: "a".into(), op: "read", detail: "refused".into() }.into(), Code::Unavailable),
            (ChangeError::Unreadable { resource: "a".into(), detail: "refused".into() }, Code::Unavailable),
            (ChangeError::Store(store("database is busy")), Code::Unavailable),
            (ChangeError::Store(store("c-1: corrupt record: eof")), Code::Internal),
            (ChangeError::UnknownChange("c-9".into()), Code::NotFound),
            (ChangeError::UnknownResource { change: "c-1".into(), resource: "b".into(), known: vec!["a".into()] }, Code::NotFound),
            (ChangeError::NotApplied { change: "c-1".into(), status: "rejected".into() }, Code::FailedPrecondition),
            (ChangeError::Corrupt("x".into()), Code::Internal),
        ];
        for (e, code) in cases {
            let text = e.to_string();
            let s = Status::from(GrpcError::from(e));
            assert_eq!((s.code(), s.message()), (code, text.as_str()));
        }
        assert_eq!(Status::from(GrpcError::NoChangeEngine).code(), Code::Unavailable);
        assert_eq!(Status::from(GrpcError::TooLarge("big".into())).code(), Code::ResourceExhausted);
    }

    #[test]
    fn rollout_errors_have_the_documented_codes() {
        let cases: Vec<(ApiError, Code)> = vec![
            (ApiError::BadQuery("rollout id \"../x\"".into()), Code::InvalidArgument),
            (ApiError::NotFound("no rollout \"r-9\"".into()), Code::NotFound),
            (ApiError::Unavailable("x".into()), Code::Unavailable),
            (ApiError::Internal("the record of rollout \"r-1\" is not valid".into()), Code::Internal),
        ];
        for (e, code) in cases {
            let text = e.to_string();
            let s = Status::from(GrpcError::Rollout(e));
            assert_eq!((s.code(), s.message()), (code, text.as_str()));
        }
        let s = Status::from(GrpcError::NoRollouts);
        assert_eq!((s.code(), s.message()), (Code::Unavailable, "this server keeps no rollout records"));
    }

    #[test]
    fn oversized_messages_become_resource_exhausted() {
        let s = map_decode_error(Status::out_of_range("Error, decoded message length too large: found 10 bytes, the limit is: 5 bytes"));
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(map_decode_error(Status::out_of_range("other")).code(), Code::OutOfRange);
    }
}
