//! The names a durable store takes for projection checkpoints: one rule for every backend, so
//! that a name one store refuses no other store accepts.

/// The most bytes a checkpoint name has.
pub(crate) const MAX_CHECKPOINT_NAME: usize = 500;

/// Checks a checkpoint name: 1 to [`MAX_CHECKPOINT_NAME`] bytes. The error is the reason,
/// for an `InvalidInput` error at the checkpoint.
pub(crate) fn checkpoint_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_CHECKPOINT_NAME {
        return Err(format!(
            "a checkpoint name has 1 to {MAX_CHECKPOINT_NAME} bytes; this one has {}",
            name.len()
        ));
    }
    Ok(())
}
