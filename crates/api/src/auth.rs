//! Bearer tokens: the one check both servers (HTTP here, gRPC in `harbinger-grpc`) use.

/// Why an `authorization` value was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No `authorization` header or metadata.
    #[error("this call changes server state and needs the header `authorization: Bearer <token>`")]
    Missing,
    /// Not readable text, or not of the form `Bearer <token>`.
    #[error("`authorization` must be `Bearer <token>`")]
    Malformed,
    /// A token other than the configured one.
    #[error("invalid bearer token")]
    Wrong,
}

/// Checks an `authorization` value against `Bearer <expected>`, in time independent of
/// where the tokens differ and of the expected token's length.
///
/// # Errors
/// [`AuthFailure`] saying what is wrong.
pub fn check_bearer(expected: &str, header: Option<&[u8]>) -> Result<(), AuthFailure> {
    let header = header.ok_or(AuthFailure::Missing)?;
    let header = std::str::from_utf8(header).map_err(|_| AuthFailure::Malformed)?;
    let given = header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")).ok_or(AuthFailure::Malformed)?.trim();
    // Compare fixed-size digests (BLAKE3's `Hash` equality is constant-time): the time
    // says neither where the tokens differ nor how long the expected one is.
    if blake3::hash(given.as_bytes()) == blake3::hash(expected.as_bytes()) { Ok(()) } else { Err(AuthFailure::Wrong) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_passes() {
        assert_eq!(check_bearer("s3cret", Some(b"Bearer s3cret")), Ok(()));
        assert_eq!(check_bearer("s3cret", Some(b"bearer s3cret")), Ok(()));
        assert_eq!(check_bearer("s3cret", None), Err(AuthFailure::Missing));
        assert_eq!(check_bearer("s3cret", Some(b"Basic czNjcmV0")), Err(AuthFailure::Malformed));
        assert_eq!(check_bearer("s3cret", Some(b"Bearer s3cre")), Err(AuthFailure::Wrong));
        assert_eq!(check_bearer("s3cret", Some(b"Bearer s3cret2")), Err(AuthFailure::Wrong));
        assert_eq!(check_bearer("s3cret", Some(&[0xff, 0xfe])), Err(AuthFailure::Malformed));
    }
}
