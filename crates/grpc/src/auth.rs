//! Bearer-token checks for mutating calls, and the client side that adds the token.

use std::sync::Arc;

use tonic::metadata::MetadataMap;

use crate::GrpcError;

/// The token mutating calls must carry, if any; reads too with `protect_reads`.
#[derive(Clone, Default)]
pub struct Auth {
    token: Option<Arc<str>>,
    protect_reads: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("token", &self.token.as_ref().map(|_| "<redacted>")).finish()
    }
}

impl Auth {
    /// Requires `token` on mutating calls; `None` leaves them open.
    pub fn new(token: Option<Arc<str>>) -> Self {
        Self { token, protect_reads: false }
    }

    /// Requires the token on reads too (risk, explanations, model info, shadow status,
    /// change records): `auth.protect_reads`. `Ping`, health and reflection stay open.
    pub fn protecting_reads(mut self, on: bool) -> Self {
        self.protect_reads = on;
        self
    }

    /// [`Auth::check`] for a read: only when reads are protected.
    ///
    /// # Errors
    /// As [`Auth::check`].
    pub fn check_read(&self, metadata: &MetadataMap) -> Result<(), GrpcError> {
        if self.protect_reads { self.check(metadata) } else { Ok(()) }
    }

    /// Whether a token is configured.
    pub fn enabled(&self) -> bool {
        self.token.is_some()
    }

    /// Checks `authorization: Bearer <token>` in `metadata` when a token is configured
    /// (the same check as the HTTP server's).
    ///
    /// # Errors
    /// [`GrpcError::Unauthenticated`] when the value is missing, malformed or wrong.
    pub fn check(&self, metadata: &MetadataMap) -> Result<(), GrpcError> {
        let Some(expected) = &self.token else { return Ok(()) };
        let given = metadata.get("authorization").map(|v| v.as_bytes());
        Ok(harbinger_api::auth::check_bearer(expected, given)?)
    }
}

/// A client interceptor adding `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct BearerToken(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl BearerToken {
    /// An interceptor for `token` (`None` adds nothing).
    ///
    /// # Errors
    /// [`GrpcError::Invalid`] when the token is not printable ASCII.
    pub fn new(token: Option<&str>) -> Result<Self, GrpcError> {
        token
            .map(|t| {
                format!("Bearer {t}").parse().map_err(|_| GrpcError::Invalid("the token must be printable ASCII without spaces".into()))
            })
            .transpose()
            .map(Self)
    }
}

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(v: Option<&str>) -> MetadataMap {
        let mut m = MetadataMap::new();
        if let Some(v) = v {
            m.insert("authorization", v.parse().expect("ascii"));
        }
        m
    }

    #[test]
    fn a_configured_token_is_required_and_compared() {
        let auth = Auth::new(Some("s3cret".into()));
        assert!(auth.check(&md(Some("Bearer s3cret"))).is_ok());
        for (v, msg) in [
            (None, "needs the header `authorization: Bearer <token>`"),
            (Some("Bearer wrong"), "invalid bearer token"),
            (Some("Bearer s3cre"), "invalid bearer token"),
            (Some("Basic czNjcmV0"), "must be `Bearer <token>`"),
        ] {
            let e = auth.check(&md(v)).expect_err("refused");
            assert_eq!(e.code(), tonic::Code::Unauthenticated);
            assert!(e.to_string().contains(msg), "{v:?}: {e}");
        }
    }

    #[test]
    fn without_a_token_everything_passes() {
        let auth = Auth::new(None);
        assert!(!auth.enabled());
        assert!(auth.check(&md(None)).is_ok());
        assert!(auth.check(&md(Some("Bearer anything"))).is_ok());
    }
}
