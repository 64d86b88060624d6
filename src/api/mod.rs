//! The RPC route table (docs/contract.md#routes): URI + method → service call → Response.
//!
//! Matching is equivalent to the Go service's regexes: whole paths, lowercase UUIDs only,
//! list routes need a `?`. Errors become typed replies (docs/contract.md#errors) built from
//! [`ServiceError`]; nothing internal (SQL, broker detail) is put in a reply. The request
//! metric's labels are the route's fixed label (`notfound` for anything unmatched), the
//! method mapped to a fixed set and the class of the reply's status code (`2xx` .. `5xx`), so
//! hostile envelopes cannot add time series.

mod routes;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use crate::bus::metrics::{method_label, status_label};
use crate::bus::{Request, RequestHandler, Response};
use crate::service::{Service, ServiceError};

pub use routes::{Route, RouteSpec, route_label, route_table};

/// Largest accepted request body.
pub const MAX_BODY: usize = 1024 * 1024;

/// Serves the campaign-manager request queue.
pub struct Api {
    service: Service,
}

impl Api {
    /// The API over a service.
    pub fn new(service: Service) -> Arc<Api> {
        Arc::new(Api { service })
    }

    /// Handles one request (also usable without a broker, e.g. in tests and the benchmark).
    pub async fn dispatch(&self, req: &Request) -> Response {
        let started = Instant::now();
        let (label, response) = match Route::parse(&req.method, &req.uri) {
            None => ("notfound", Response::status(404)),
            Some(route) => {
                let label = route.label();
                let response = if req.data.as_ref().is_some_and(|d| d.get().len() > MAX_BODY) {
                    error_reply(&ServiceError::Invalid(format!(
                        "request body is larger than {MAX_BODY} bytes"
                    )))
                } else {
                    match routes::handle(&self.service, route, req).await {
                        Ok(r) => r,
                        Err(e) => {
                            log_error(req, &e);
                            error_reply(&e)
                        }
                    }
                };
                (label, response)
            }
        };
        self.service
            .metrics()
            .receive_request_process_time
            .with_label_values(&[
                label,
                method_label(&req.method),
                status_label(response.status_code),
            ])
            .observe(started.elapsed().as_secs_f64() * 1000.0);
        response
    }
}

#[async_trait]
impl RequestHandler for Api {
    async fn handle(&self, req: Request) -> Response {
        self.dispatch(&req).await
    }
}

fn log_error(req: &Request, e: &ServiceError) {
    match e {
        ServiceError::Store(_) => {
            tracing::error!(uri = %req.uri, method = %req.method, error = %e, "request failed")
        }
        ServiceError::Peer(_) => {
            tracing::warn!(uri = %req.uri, method = %req.method, error = %e, "request failed upstream")
        }
        _ => tracing::debug!(uri = %req.uri, method = %req.method, error = %e, "request refused"),
    }
}

/// The reply for an error: typed body with the class's status code.
pub fn error_reply(e: &ServiceError) -> Response {
    let typed = e.to_voipbin();
    match crate::bus::envelope::to_raw(&typed) {
        Ok(raw) => Response::new(typed.status_code(), "voipbin_error", Some(raw)),
        Err(_) => Response::status(typed.status_code()),
    }
}
