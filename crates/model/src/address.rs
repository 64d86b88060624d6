//! A dialable address (`commonaddress.Address`). Every field is omitted when empty, so an
//! empty address is `{}`. The `type` vocabulary belongs to the platform (tel, sip, agent, ...)
//! and is passed through unvalidated, as the Go service does: campaign-manager never
//! interprets an address, it copies it from outdial targets and outplans to call-manager.

use serde::{Deserialize, Serialize};

/// A source or destination of a call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Address {
    /// Address kind: `tel`, `sip`, `agent`, `extension`, ...
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// The address itself, e.g. `+821100000001`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub target: String,
    /// Display name of the target.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub target_name: String,
    /// Name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Free text.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl Address {
    /// A `tel` address.
    pub fn tel(number: &str) -> Address {
        Address {
            kind: "tel".into(),
            target: number.into(),
            ..Address::default()
        }
    }
}
