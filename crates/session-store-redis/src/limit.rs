//! The record size limit (the builder's `max_record_bytes`), checked by both formats before a
//! write's round trip.

use session_core::store::StoreError;

/// [`StoreError::TooLarge`] when `size` passes `limit`.
pub(crate) fn check_size(size: usize, limit: usize) -> Result<(), StoreError> {
    if size > limit {
        return Err(StoreError::TooLarge { size, limit });
    }
    Ok(())
}
