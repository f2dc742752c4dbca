//! What the JWKS integration tests share: one request through an `AuthLayer` around a service
//! that answers with the principal it was given, read in full.
#![allow(dead_code)]

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use mcp_auth::layer::AuthLayer;
use mcp_security_core::{AuthFailure, AuthOutcome, Principal};
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt};

/// An answer: status, headers, the JSON body, and the outcome the layer recorded.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub outcome: Option<AuthOutcome>,
}

impl Answer {
    /// The `WWW-Authenticate` challenge; panics when there is none.
    pub fn challenge(&self) -> &str {
        self.headers["www-authenticate"].to_str().unwrap()
    }

    /// The refusal the layer recorded, if it refused.
    pub fn failure(&self) -> Option<AuthFailure> {
        match &self.outcome {
            Some(AuthOutcome::Rejected { failure, .. }) => Some(*failure),
            _ => None,
        }
    }
}

/// `POST /mcp` with `Authorization: Bearer {token}` through `layer`; the inner service answers
/// `{"sub", "scopes"}` of the principal it was given (`null` without one).
pub async fn call(layer: &AuthLayer, token: &str) -> Answer {
    let svc = ServiceBuilder::new().layer(layer.clone()).service_fn(
        |req: Request<Full<Bytes>>| async move {
            let who = req
                .extensions()
                .get::<Principal>()
                .map(|p| json!({ "sub": p.id(), "scopes": p.scopes().iter().collect::<Vec<_>>() }))
                .unwrap_or(Value::Null);
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(who.to_string()))))
        },
    );
    let req = Request::post("/mcp")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let outcome = res.extensions().get::<AuthOutcome>().cloned();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        outcome,
    }
}
