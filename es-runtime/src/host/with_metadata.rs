//! A command with the metadata its events record: one value, so that every way of running a
//! command takes the same argument, with or without metadata.

use crate::event::Metadata;

/// A command together with the [`Metadata`] (correlation and causation ids, user pairs) to
/// record on every event it emits.
///
/// [`Host::execute`](crate::Host::execute), [`execute_async`](crate::Host::execute_async) and
/// [`execute_and_read`](crate::Host::execute_and_read) take `impl Into<WithMetadata<C>>`: a
/// bare command converts with empty metadata, so `host.execute(id, command)` needs no wrapper.
///
/// ```
/// use es_runtime::Metadata;
/// use es_runtime::host::WithMetadata;
/// use uuid::Uuid;
///
/// # #[derive(Debug, PartialEq)]
/// # enum AccountCommand { Deposit(u64) }
/// let request = Uuid::now_v7();
/// let command = WithMetadata::new(
///     AccountCommand::Deposit(5),
///     Metadata::default().with_correlation_id(request),
/// );
/// assert_eq!(command.metadata.correlation_id, Some(request));
///
/// let bare: WithMetadata<_> = AccountCommand::Deposit(5).into();
/// assert!(bare.metadata.is_empty());
/// ```
#[doc(alias = "execute_with")]
#[doc(alias = "execute_with_async")]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WithMetadata<C> {
    /// The command.
    pub command: C,
    /// What every event the command emits records besides its payload.
    pub metadata: Metadata,
}

impl<C> WithMetadata<C> {
    /// `command`, recording `metadata` on its events.
    pub fn new(command: C, metadata: Metadata) -> Self {
        WithMetadata { command, metadata }
    }
}

/// A bare command records empty metadata (which allocates nothing).
impl<C> From<C> for WithMetadata<C> {
    fn from(command: C) -> Self {
        WithMetadata::new(command, Metadata::default())
    }
}
