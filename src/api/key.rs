//! The API key check API Gateway makes in front of the Lambda, for a server
//! with no gateway in front (`cargo xtask serve --api-key`).
//!
//! In AWS the usage plan requires `x-api-key` on every route and the Lambda
//! never sees a request without it, so the Lambda sets no key. The contract
//! (docs/openapi.json) declares that security for every operation; with a
//! key set, the local server holds to it too, which lets the contract test
//! probe it (issue 20). A refusal is the gateway's own answer, 403
//! `{"message":"Forbidden"}`, so a client meets one behaviour in both places.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The header API Gateway reads the key from (`ApiKeySourceType: HEADER`).
pub const API_KEY_HEADER: &str = "x-api-key";

/// Answers 403 as API Gateway does unless the request carries `key`.
pub(super) async fn require_api_key(
    State(key): State<std::sync::Arc<str>>,
    request: Request,
    next: Next,
) -> Response {
    let sent = request
        .headers()
        .get(API_KEY_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if equal_in_constant_time(sent, key.as_bytes()) {
        next.run(request).await
    } else {
        (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({ "message": "Forbidden" })),
        )
            .into_response()
    }
}

/// Compares without stopping at the first difference, so the time taken
/// does not say how much of a guess was right.
fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_by_every_byte() {
        assert!(equal_in_constant_time(b"secret", b"secret"));
        assert!(!equal_in_constant_time(b"secret", b"secreT"));
        assert!(!equal_in_constant_time(b"secret", b"secrets"));
        assert!(!equal_in_constant_time(b"", b"secret"));
    }
}
