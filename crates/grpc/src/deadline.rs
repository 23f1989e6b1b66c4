//! A tower layer in front of every service: deadlines answer DEADLINE_EXCEEDED, and
//! oversized messages RESOURCE_EXHAUSTED.
//!
//! tonic's server already reads `grpc-timeout`, but when it fires it answers CANCELLED.
//! This layer runs inside tonic's timer with a deadline a little shorter (see [`margin`]),
//! so it fires first and answers DEADLINE_EXCEEDED, as the gRPC specification asks. The
//! margin also lets the answer reach a client whose clock started before the server's
//! (tonic clients give up at their own deadline with CANCELLED "Timeout expired"). The handler future
//! is dropped; blocking work already handed to a worker thread finishes and is discarded.
//!
//! tonic also answers OUT_OF_RANGE for a request message over the decode limit, where gRPC
//! servers answer RESOURCE_EXHAUSTED, and INTERNAL for a request that is not a valid
//! protobuf message — the client's fault, so INVALID_ARGUMENT; the layer rewrites both.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::codegen::http;
use tonic::{Code, Status};
use tower::{Layer, Service};

/// How much earlier than the client's deadline `d` this layer gives up: `d / 20`, at
/// least 2 ms and at most 50 ms.
pub fn margin(d: Duration) -> Duration {
    (d / 20).clamp(Duration::from_millis(2), Duration::from_millis(50))
}

/// See the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeadlineLayer;

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;
    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline { inner }
    }
}

/// The service [`DeadlineLayer`] wraps around the routes.
#[derive(Clone, Debug)]
pub struct Deadline<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Deadline<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let timeout = req.headers().get("grpc-timeout").and_then(|v| v.to_str().ok()).and_then(parse_grpc_timeout);
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = match timeout {
                Some(d) => match tokio::time::timeout(d.saturating_sub(margin(d)), fut).await {
                    Ok(r) => r?,
                    Err(_) => {
                        tracing::debug!(deadline = ?d, "gRPC call exceeded its deadline");
                        return Ok(Status::deadline_exceeded(format!("the call did not finish within its deadline of {d:?}")).into_http());
                    }
                },
                None => fut.await?,
            };
            Ok(rewrite_undecodable(rewrite_oversized(resp)))
        })
    }
}

fn rewrite_oversized<B: Default>(resp: http::Response<B>) -> http::Response<B> {
    let oversized = resp.headers().get("grpc-status").is_some_and(|v| v.as_bytes() == b"11")
        && Status::from_header_map(resp.headers())
            .is_some_and(|s| s.code() == Code::OutOfRange && crate::error::is_oversized_message("11", s.message()));
    if !oversized {
        return resp;
    }
    let msg = Status::from_header_map(resp.headers()).map(|s| s.message().to_string()).unwrap_or_default();
    Status::resource_exhausted(format!("{msg} (grpc.max_message_bytes)")).into_http()
}

/// INTERNAL "failed to decode Protobuf message" (tonic's answer to a request body that
/// does not decode) becomes INVALID_ARGUMENT with the same message.
fn rewrite_undecodable<B: Default>(resp: http::Response<B>) -> http::Response<B> {
    if resp.headers().get("grpc-status").is_none_or(|v| v.as_bytes() != b"13") {
        return resp;
    }
    match Status::from_header_map(resp.headers()) {
        Some(s) if s.code() == Code::Internal && s.message().starts_with("failed to decode Protobuf message") => {
            Status::invalid_argument(format!("the request is not a valid message: {}", s.message())).into_http()
        }
        _ => resp,
    }
}

/// Parses a `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers OK after `delay`.
    #[derive(Clone)]
    struct Slow(Duration);

    impl Service<http::Request<()>> for Slow {
        type Response = http::Response<String>;
        type Error = std::convert::Infallible;
        type Future = BoxFuture<Result<Self::Response, Self::Error>>;
        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _req: http::Request<()>) -> Self::Future {
            let d = self.0;
            Box::pin(async move {
                tokio::time::sleep(d).await;
                Ok(http::Response::new("done".to_string()))
            })
        }
    }

    fn with_timeout(v: &str) -> http::Request<()> {
        let mut req = http::Request::new(());
        req.headers_mut().insert("grpc-timeout", http::HeaderValue::from_str(v).expect("ascii"));
        req
    }

    #[tokio::test]
    async fn a_call_past_its_deadline_answers_deadline_exceeded() {
        let mut svc = DeadlineLayer.layer(Slow(Duration::from_secs(10)));
        let resp = svc.call(with_timeout("200m")).await.expect("a response");
        let s = Status::from_header_map(resp.headers()).expect("a status");
        assert_eq!(s.code(), Code::DeadlineExceeded);
        assert!(s.message().contains("200ms"), "{}", s.message());

        let mut fast = DeadlineLayer.layer(Slow(Duration::from_millis(10)));
        let resp = fast.call(with_timeout("1S")).await.expect("a response");
        assert_eq!(resp.into_body(), "done");
        let resp = fast.call(http::Request::new(())).await.expect("no deadline");
        assert_eq!(resp.into_body(), "done");
    }

    #[test]
    fn the_margin_is_bounded() {
        assert_eq!(margin(Duration::from_millis(10)), Duration::from_millis(2));
        assert_eq!(margin(Duration::from_millis(500)), Duration::from_millis(25));
        assert_eq!(margin(Duration::from_secs(60)), Duration::from_millis(50));
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout("5u"), Some(Duration::from_micros(5)));
        assert_eq!(parse_grpc_timeout("7n"), Some(Duration::from_nanos(7)));
        for bad in ["", "m", "10x", "123456789S", "-1S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_undecodable_request_is_invalid_argument_and_other_internal_errors_stay() {
        let resp: http::Response<String> = Status::internal("failed to decode Protobuf message: invalid varint").into_http();
        let s = Status::from_header_map(rewrite_undecodable(resp).headers()).expect("status");
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().ends_with("failed to decode Protobuf message: invalid varint"), "{}", s.message());
        let other: http::Response<String> = Status::internal("store exploded").into_http();
        assert_eq!(Status::from_header_map(rewrite_undecodable(other).headers()).map(|s| s.code()), Some(Code::Internal));
    }

    #[test]
    fn out_of_range_for_size_becomes_resource_exhausted() {
        let resp: http::Response<String> =
            Status::out_of_range("Error, decoded message length too large: found 9 bytes, the limit is: 4 bytes").into_http();
        let out = rewrite_oversized(resp);
        let s = Status::from_header_map(out.headers()).expect("status");
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert!(s.message().contains("the limit is: 4 bytes"), "{}", s.message());
        let other: http::Response<String> = Status::out_of_range("index").into_http();
        assert_eq!(Status::from_header_map(rewrite_oversized(other).headers()).map(|s| s.code()), Some(Code::OutOfRange));
    }
}
