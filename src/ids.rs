//! Typed ids. Each kind of prefixed id (`evt_…` an event, `whe_…` a webhook endpoint, and
//! for enterprise connect `app_…`, `ser_…`, `ou_…`, `acc_…`, `pro_…`, `cnf_…`) is its own type, parsed
//! once where it enters (a path, a parameter), so one cannot be passed where another is
//! meant and a malformed one never reaches a query. Pure: no I/O.

use std::fmt;

/// Longest part after the prefix (ids we mint have 32).
const MAX_BODY: usize = 64;

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new, time-ordered id.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            /// `Some` when `s` is the prefix and 1 to 64 lower-case letters and digits.
            pub fn parse(s: &str) -> Option<Self> {
                let body = s.strip_prefix($prefix)?;
                let ok = !body.is_empty()
                    && body.len() <= MAX_BODY
                    && body.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
                ok.then(|| Self(s.to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).ok_or_else(|| {
                    serde::de::Error::custom(format!("not a {} id", $prefix))
                })
            }
        }
    };
}

prefixed_id!(
    /// An event (`evt_…`).
    EventId,
    "evt_"
);
prefixed_id!(
    /// A webhook endpoint (`whe_…`).
    EndpointId,
    "whe_"
);
prefixed_id!(
    /// A calendar or conferencing service account of an organizational unit (`ser_…`).
    ServiceAccountId,
    "ser_"
);
prefixed_id!(
    /// An organizational unit (`ou_…`).
    OrgUnitId,
    "ou_"
);
prefixed_id!(
    /// A provisioned per-person calendar account (`acc_…`).
    AccountId,
    "acc_"
);
prefixed_id!(
    /// A conferencing profile (`cnf_…`).
    ConferencingProfileId,
    "cnf_"
);
prefixed_id!(
    /// An integrator's OAuth client (`app_…`); its `client_id` is a separate random value.
    ApplicationId,
    "app_"
);
prefixed_id!(
    /// A calendar profile of an account (`pro_…`, Cronofy's prefix).
    ProfileId,
    "pro_"
);
prefixed_id!(
    /// A customer setup link (`stl_…`); the secret its URL carries is separate.
    SetupLinkId,
    "stl_"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_once_and_kept_apart() {
        let e = EventId::generate();
        assert!(e.as_str().starts_with("evt_") && e.as_str().len() == 36);
        assert_eq!(EventId::parse(e.as_str()), Some(e.clone()));
        assert!(EndpointId::parse(e.as_str()).is_none());
        assert!(EndpointId::parse("whe_global").is_some());
        for bad in [
            "evt_",
            "evt_ABC",
            "evt_a\u{0}b",
            "evt_a-b",
            "x",
            &format!("evt_{}", "a".repeat(65)),
        ] {
            assert!(EventId::parse(bad).is_none(), "{bad:?}");
        }
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<EventId>(&json).unwrap(), e);
        assert!(serde_json::from_str::<OrgUnitId>("\"ou_\"").is_err());
    }
}
