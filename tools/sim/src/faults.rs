//! Failure injection: make the next K matching requests fail, go unanswered or be answered late.
//!
//! Faults are consumed in insertion order, first match wins. `status` and `no_reply_ms` are
//! checked before a request is routed, so such a request changes no state (as if the peer had
//! crashed before handling it). The other kinds are what the real peers do after taking a
//! request (docs/contract.md, "The peers as they answer"):
//! * `late_reply_ms`: the request is handled as usual (the call exists, its timers run, its
//!   events fire) and only the reply is held back, as when a peer is slow or its reply is lost
//!   after the work was done;
//! * `status_after_effect`: the request takes effect and is then answered with a bare status,
//!   as call-manager answers 500 for errors after it inserted the call row;
//! * `late_effect_ms`: the request is taken now, takes effect only after N ms and is never
//!   answered: a consumer that stalled after taking it and acts whenever it resumes (the
//!   broker's expiry only drops requests still queued).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::service::Service;

/// What happens to a faulted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Reply with this bare status, e.g. `500`.
    Status(u16),
    /// Reply (with a bare 500) only after this many ms: a caller with a shorter timeout sees no
    /// reply at all. The RPC server always answers, so this is how a timeout is simulated.
    NoReplyMs(u64),
    /// Handle the request as usual and send its reply only after this many ms: a caller with a
    /// shorter timeout sees no reply although the request took effect.
    LateReplyMs(u64),
    /// Handle the request as usual (it takes effect), then answer with this bare status
    /// instead of its reply, e.g. `500`.
    StatusAfterEffect(u16),
    /// Take the request now, handle it only after this many ms, and never answer it.
    LateEffectMs(u64),
}

/// A rule matching requests; all given selectors must match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// Only requests to this service (any when `None`).
    #[serde(default)]
    pub service: Option<Service>,
    /// Only this method, e.g. `POST` (any when `None`).
    #[serde(default)]
    pub method: Option<String>,
    /// Only URIs containing this text, e.g. `/progressing` (any when `None`).
    #[serde(default)]
    pub uri_contains: Option<String>,
    /// What to do.
    pub kind: FaultKind,
    /// How many requests to affect.
    pub count: u32,
}

impl Fault {
    /// The next `count` requests to `service` get a bare `status`.
    pub fn status(service: Service, status: u16, count: u32) -> Fault {
        Fault {
            service: Some(service),
            method: None,
            uri_contains: None,
            kind: FaultKind::Status(status),
            count,
        }
    }

    /// The next `count` requests to `service` are answered only after `delay`.
    pub fn no_reply(service: Service, delay: Duration, count: u32) -> Fault {
        Fault {
            service: Some(service),
            method: None,
            uri_contains: None,
            kind: FaultKind::NoReplyMs(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
            count,
        }
    }

    /// The next `count` requests to `service` are handled as usual and answered only after
    /// `delay`.
    pub fn late_reply(service: Service, delay: Duration, count: u32) -> Fault {
        Fault {
            service: Some(service),
            method: None,
            uri_contains: None,
            kind: FaultKind::LateReplyMs(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
            count,
        }
    }

    /// The next `count` requests to `service` take effect, then get a bare `status`.
    pub fn status_after_effect(service: Service, status: u16, count: u32) -> Fault {
        Fault::status(service, status, count).with_kind(FaultKind::StatusAfterEffect(status))
    }

    /// The next `count` requests to `service` take effect only after `delay` and are never
    /// answered.
    pub fn late_effect(service: Service, delay: Duration, count: u32) -> Fault {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        Fault::status(service, 500, count).with_kind(FaultKind::LateEffectMs(ms))
    }

    fn with_kind(mut self, kind: FaultKind) -> Fault {
        self.kind = kind;
        self
    }

    /// Restrict to `method`, e.g. `POST`.
    pub fn on_method(mut self, method: &str) -> Fault {
        self.method = Some(method.to_string());
        self
    }

    /// Restrict to URIs containing `text`.
    pub fn on_uri(mut self, text: &str) -> Fault {
        self.uri_contains = Some(text.to_string());
        self
    }

    fn matches(&self, service: Service, method: &str, uri: &str) -> bool {
        self.count > 0
            && self.service.is_none_or(|s| s == service)
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.uri_contains.as_deref().is_none_or(|u| uri.contains(u))
    }
}

/// Pending faults.
#[derive(Debug, Default)]
pub struct Faults {
    pending: Vec<Fault>,
}

impl Faults {
    /// Add a rule.
    pub fn add(&mut self, fault: Fault) {
        if fault.count > 0 {
            self.pending.push(fault);
        }
    }

    /// Remove every rule.
    pub fn clear(&mut self) {
        self.pending.clear();
    }

    /// Rules not used up yet.
    pub fn pending(&self) -> &[Fault] {
        &self.pending
    }

    /// Consume one use of the first rule matching the request.
    pub fn take(&mut self, service: Service, method: &str, uri: &str) -> Option<FaultKind> {
        let i = self
            .pending
            .iter()
            .position(|f| f.matches(service, method, uri))?;
        let kind = self.pending[i].kind;
        self.pending[i].count -= 1;
        if self.pending[i].count == 0 {
            self.pending.remove(i);
        }
        Some(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumed_in_order_with_selectors() {
        let mut f = Faults::default();
        f.add(Fault::status(Service::Call, 500, 2));
        f.add(Fault::no_reply(Service::Outdial, Duration::from_secs(4), 1).on_uri("/progressing"));
        assert_eq!(f.take(Service::Flow, "POST", "/v1/flows"), None);
        assert_eq!(
            f.take(Service::Call, "POST", "/v1/calls/x"),
            Some(FaultKind::Status(500))
        );
        assert_eq!(f.take(Service::Outdial, "GET", "/v1/outdials/x"), None);
        assert_eq!(
            f.take(Service::Outdial, "POST", "/v1/outdialtargets/x/progressing"),
            Some(FaultKind::NoReplyMs(4000))
        );
        assert_eq!(
            f.take(Service::Call, "POST", "/v1/calls/y"),
            Some(FaultKind::Status(500))
        );
        assert_eq!(f.take(Service::Call, "POST", "/v1/calls/z"), None);
        assert!(f.pending().is_empty());
        let json: Fault =
            serde_json::from_str(r#"{"service":"call","kind":{"no_reply_ms":10},"count":1}"#)
                .unwrap();
        assert_eq!(json.kind, FaultKind::NoReplyMs(10));
        let json: Fault = serde_json::from_str(
            r#"{"service":"call","method":"POST","kind":{"late_reply_ms":2500},"count":1}"#,
        )
        .unwrap();
        assert_eq!(json.kind, FaultKind::LateReplyMs(2500));
        assert_eq!(
            json,
            Fault::late_reply(Service::Call, Duration::from_millis(2500), 1).on_method("POST")
        );
        let json: Fault = serde_json::from_str(
            r#"{"service":"call","method":"POST","kind":{"status_after_effect":500},"count":2}"#,
        )
        .unwrap();
        assert_eq!(
            json,
            Fault::status_after_effect(Service::Call, 500, 2).on_method("POST")
        );
        let json: Fault =
            serde_json::from_str(r#"{"service":"flow","kind":{"late_effect_ms":4000},"count":1}"#)
                .unwrap();
        assert_eq!(
            json,
            Fault::late_effect(Service::Flow, Duration::from_secs(4), 1)
        );
    }
}
