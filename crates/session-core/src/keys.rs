//! Signing keys: the secret type and the rules a key list must meet (for signers built
//! outside [`Config`](crate::Config), such as `session-cookie`'s `Keygrip`).

pub use crate::config::{MAX_KEYS, MIN_KEY_LEN, Secret, validate_keys};
