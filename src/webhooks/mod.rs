//! Webhooks: signing and verifying deliveries (the delivery workers are being built).

pub mod signing;
