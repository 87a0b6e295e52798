//! Webhooks: which endpoint gets which event (fan-out), the delivery workers, signatures
//! and delivery metrics. Requests go out through [`crate::outbound`].
//! Queues and endpoints are stored by [`crate::store::deliveries`] and
//! [`crate::store::webhooks`]; admins manage them through [`crate::directory::webhooks`].

pub mod delivery;
pub mod fanout;
pub mod metrics;
pub mod signing;
