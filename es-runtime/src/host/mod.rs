//! The [`Host`]: runs commands against aggregate instances kept in memory over an
//! [`EventStore`].
//!
//! # What a command goes through
//!
//! 1. **Routing.** The aggregate id names a stream (`NAME-id`). The host finds its instance
//!    in a sharded map, or inserts an empty slot for it. Only that shard's lock is taken, and
//!    only for the lookup.
//! 2. **One at a time.** The instance's own lock is held for the rest of the command, so the
//!    commands of one aggregate run one after another, and those of different aggregates run
//!    in parallel, appends included: a group-committing store sees them all at once.
//! 3. **Rehydration**, on first use: the newest snapshot whose state version matches and
//!    that decodes (one still waiting for the background writer counts; a kept older one
//!    stands in for newer ones of another state version, damaged or undecodable, which are
//!    skipped with a warning), then the events after it.
//! 4. **Handle, append, apply.** [`Aggregate::handle_with`] decides the events, each put in
//!    its id as it comes; they are appended with the instance's version as the expected
//!    version, put in their envelopes where the store placed them, then applied through
//!    [`Aggregate::apply_ref`]. A conflict (another
//!    host or process wrote the stream) reads the new events, and the command is run again,
//!    up to [`max_retries`](HostBuilder::max_retries) times, each after a random pause
//!    ([`retry_backoff`](HostBuilder::retry_backoff)).
//! 5. **Snapshot**, when the batch reaches or crosses a multiple of the policy's interval
//!    ([`SnapshotPolicy`]). The state is encoded on the command's thread and written by a
//!    background thread, so the command never waits for a snapshot write.
//!
//! A panic in [`Aggregate::handle_with`] or [`Aggregate::apply_ref`] (or the `handle` and
//! `apply` they call), or in the `Serialize` of the command's events, fails that command with
//! [`ExecuteError::Panicked`] and drops the instance, which is rebuilt from the store on its
//! next use; every other instance carries on. A panic while loading (in `apply`, an event's
//! `Deserialize` or the state's `Default`) is [`LoadError::Panicked`]; one in the state's
//! `Deserialize` makes the host ignore that snapshot and replay the events instead; and one in
//! the state's `Serialize` costs the snapshot being taken (counted in
//! [`Metrics::snapshot_failures`]), whichever thread takes it. Passivated instances are
//! dropped once the cache's locks are released, and a panic in the state's `Drop` then is
//! logged and counted in [`Metrics::panics`].
//!
//! A panic in `apply` comes after the events were stored: they are part of the stream, so
//! rebuilding the instance replays them and panics again, and every later command for that
//! aggregate fails with [`ExecuteError::Load`] naming the event until `apply` is fixed (a
//! snapshot taken before the event does not help: the event follows it). The store is never
//! left half-written, and other aggregates are unaffected.
//!
//! # Passivation
//!
//! At most [`max_live`](HostBuilder::max_live) instances are held (10,000 by default; the
//! least recently used goes first), and an instance unused for
//! [`idle_timeout`](HostBuilder::idle_timeout) (5 minutes) is dropped by a background sweep.
//! A command that arrives while its instance is being passivated waits, then loads a fresh
//! instance from the store.
//!
//! When the policy takes snapshots, a passivated instance is snapshotted on its way out (once
//! the cache's locks are released) if it is at least a tenth of the interval past its last
//! snapshot (the one it was loaded from or last took; 10 events with the default 100). So
//! loading it again replays at most a few events. An instance passivated for idleness or on
//! request (not evicted to make room, which under churn happens at the rate of commands) is
//! also snapshotted if it has a snapshot and the events since hold more bytes than that one:
//! a small state behind large events then reloads without replaying any.
//!
//! # Blocking or async
//!
//! [`Host::execute`] blocks the calling thread until the events are stored: use it from plain
//! threads, and from async code only inside `spawn_blocking` or similar. In async code, use
//! [`Host::execute_async`]: the command runs on a pool of threads owned by the host, and the
//! task waits on a future without blocking its executor, whatever the runtime.

mod blocking;
mod cache;
mod command;
pub(crate) mod error;
mod load;
mod metrics;
mod options;
mod schema;
mod shared;
mod snapshots;
mod sweeper;
mod with_metadata;

use std::fmt::{self, Display};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub use self::error::{ExecuteError, LoadError, Phase};
pub use self::metrics::Metrics;
pub use self::options::{GivenServices, HostBuilder, NoServices, NoneNeeded, ServicesFor};
pub use self::with_metadata::WithMetadata;

use self::blocking::Pool;
use self::metrics::bump;
use self::shared::{Shared, stream_of, with_key};
use crate::aggregate::Aggregate;
use crate::event::{RecordedEvent, StreamId};
use crate::snapshot::SnapshotPolicy;
use crate::store::EventStore;

/// Runs commands against the instances of aggregate `A`, stored in `S`.
///
/// A `Host` is a cheap handle: clone it to share it between threads and tasks. The instances,
/// threads and pending snapshots go away when the last clone is dropped (pending snapshots
/// are written first).
///
/// ```
/// use es_runtime::{Aggregate, DomainEvent, ExecuteError, Host, MemoryStore};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Default, Clone, Serialize, Deserialize)]
/// struct Account { balance: u64 }
///
/// #[derive(Debug, Clone)]
/// enum AccountCommand { Deposit(u64), Withdraw(u64) }
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// enum AccountEvent { Deposited { amount: u64 }, Withdrawn { amount: u64 } }
///
/// impl DomainEvent for AccountEvent {
///     const TYPES: &'static [&'static str] = &["Deposited", "Withdrawn"];
///     fn event_type(&self) -> &'static str {
///         match self { Self::Deposited { .. } => "Deposited", Self::Withdrawn { .. } => "Withdrawn" }
///     }
/// }
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("insufficient funds")]
/// struct InsufficientFunds;
///
/// impl Aggregate for Account {
///     const NAME: &'static str = "account";
///     type Command = AccountCommand;
///     type Event = AccountEvent;
///     type Error = InsufficientFunds;
///     type Services = ();
///     fn handle(&self, command: AccountCommand) -> Result<Vec<AccountEvent>, InsufficientFunds> {
///         match command {
///             AccountCommand::Deposit(amount) => Ok(vec![AccountEvent::Deposited { amount }]),
///             AccountCommand::Withdraw(amount) if amount > self.balance => Err(InsufficientFunds),
///             AccountCommand::Withdraw(amount) => Ok(vec![AccountEvent::Withdrawn { amount }]),
///         }
///     }
///     fn apply(&mut self, event: AccountEvent) {
///         match event {
///             AccountEvent::Deposited { amount } => self.balance += amount,
///             AccountEvent::Withdrawn { amount } => self.balance -= amount,
///         }
///     }
/// }
///
/// let host = Host::<Account, _>::new(MemoryStore::new());
/// let done = host.execute("alice", AccountCommand::Deposit(100))?;
/// assert_eq!(done.version, 1);
/// assert_eq!(done.events[0].payload, AccountEvent::Deposited { amount: 100 });
///
/// let refused = host.execute("alice", AccountCommand::Withdraw(500));
/// assert!(matches!(refused, Err(ExecuteError::Rejected(InsufficientFunds))));
///
/// // Passivated instances come back from the store.
/// host.passivate("alice");
/// assert_eq!(host.state("alice")?.balance, 100);
/// assert_eq!(host.metrics().rehydrations, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Host<A: Aggregate, S: EventStore + 'static> {
    shared: Arc<Shared<A, S>>,
}

impl<A: Aggregate, S: EventStore + 'static> Clone for Host<A, S> {
    fn clone(&self) -> Self {
        Host {
            shared: self.shared.clone(),
        }
    }
}

impl<A: Aggregate, S: EventStore + 'static> fmt::Debug for Host<A, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("aggregate", &A::NAME)
            .field("policy", &self.shared.policy)
            .field("metrics", &self.metrics())
            .finish_non_exhaustive()
    }
}

/// What a command did: the events it recorded and the stream's version after them.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Executed<E> {
    /// The aggregate's stream.
    pub stream: StreamId,
    /// The stream's version after the command (unchanged when it emitted no events).
    pub version: u64,
    /// The recorded events, in order (empty when the command emitted none).
    pub events: Vec<RecordedEvent<E>>,
}

/// What [`Host::execute`] returns.
pub type ExecuteResult<A> =
    Result<Executed<<A as Aggregate>::Event>, ExecuteError<<A as Aggregate>::Error>>;

/// What [`Host::execute_and_read`] returns: what the command did, and what the closure read
/// from the new state.
pub type ExecuteAndReadResult<A, R> =
    Result<(Executed<<A as Aggregate>::Event>, R), ExecuteError<<A as Aggregate>::Error>>;

impl<A: Aggregate, S: EventStore + 'static> Host<A, S> {
    /// A host over `store` with the default settings (see [`HostBuilder`]), for an aggregate
    /// whose commands consult no services (give those with
    /// [`HostBuilder::services`]).
    pub fn new(store: S) -> Self
    where
        NoServices: ServicesFor<A>,
    {
        Self::builder(store).build()
    }

    /// Starts configuring a host over `store`.
    pub fn builder(store: S) -> HostBuilder<A, S> {
        HostBuilder::new(store)
    }

    fn from_builder(store: S, options: options::HostOptions, services: A::Services) -> Self {
        let record = options.record_schema;
        let host = Host {
            shared: Arc::new(Shared::new(store, options, services)),
        };
        if record {
            host.record_schema_at_build();
        }
        host
    }

    /// The store the host writes to.
    pub fn store(&self) -> &S {
        &self.shared.store
    }

    /// The snapshot policy the host follows for `A`.
    pub fn snapshot_policy(&self) -> SnapshotPolicy {
        self.shared.policy
    }

    /// The host's counters.
    pub fn metrics(&self) -> Metrics {
        let (live, commands) = self.shared.cache.counts();
        self.shared.counters.read(live, commands)
    }

    /// Runs `f` on the state and version of aggregate `id` as this host holds it, loading it
    /// if needed. Commands on it wait while `f` runs.
    ///
    /// An aggregate with no events reads as `A::default()` at version 0. When other hosts or
    /// processes write the same stream, a live instance shows their events only once a
    /// command has run on it since (or after it was passivated).
    ///
    /// `f` must not use this host on the same aggregate (nor call
    /// [`passivate_all`](Self::passivate_all), which waits for every instance): the instance
    /// is locked while it runs. Commands on other aggregates are fine.
    pub fn read<R>(&self, id: impl Display, f: impl FnOnce(&A, u64) -> R) -> Result<R, LoadError> {
        with_key::<A, _>(id, |key| {
            let shared = &*self.shared;
            shared.locked(key, false, |stream, slot| {
                let instance = shared.loaded(stream, slot)?;
                Ok(f(&instance.state, instance.version))
            })
        })
    }

    /// A copy of the current state of aggregate `id`, loading it if needed.
    pub fn state(&self, id: impl Display) -> Result<A, LoadError>
    where
        A: Clone,
    {
        self.read(id, |state, _| state.clone())
    }

    /// The current version of aggregate `id`'s stream as this host knows it (0: no events).
    pub fn version(&self, id: impl Display) -> Result<u64, LoadError> {
        self.read(id, |_, version| version)
    }

    /// Drops aggregate `id`'s instance now, waiting for a command running on it. Returns
    /// whether it was live.
    ///
    /// Like every passivation, this takes a snapshot of the instance on its way out if the
    /// policy takes snapshots and the instance is far enough past its last one (see the
    /// [module documentation](crate::host)), so that reloading it replays at most a few events.
    pub fn passivate(&self, id: impl Display) -> bool {
        let shared = &*self.shared;
        let retired = with_key::<A, _>(id, |key| shared.cache.passivate(key, &shared.counters));
        let n = shared.snapshots.retire(retired) > 0;
        if n {
            bump(&self.shared.counters.passivations_manual);
        }
        n
    }

    /// Drops every instance idle for longer than the idle timeout now, instead of waiting for
    /// the background sweep. Returns how many were dropped.
    pub fn passivate_idle(&self) -> usize {
        self.shared.passivate_idle()
    }

    /// Drops every instance, waiting for running commands. Returns how many were dropped.
    pub fn passivate_all(&self) -> usize {
        let shared = &*self.shared;
        let n = shared
            .snapshots
            .retire(shared.cache.passivate_all(&shared.counters));
        self.shared
            .counters
            .passivations_manual
            .fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// Writes the snapshots still waiting for the background writer, and waits for the one
    /// it is writing. Useful before inspecting the store's snapshots, or before a shutdown
    /// that does not drop the host.
    pub fn flush_snapshots(&self) {
        self.shared.snapshots.flush();
    }
}

impl<A: Aggregate, S: EventStore + 'static> Host<A, S>
where
    A::Command: Clone,
{
    /// Runs `command` on aggregate `id`, blocking until its events are stored and applied.
    ///
    /// `command` is the command itself, or a [`WithMetadata`] carrying the metadata
    /// (correlation and causation ids, user pairs) to record on every event.
    /// The command's `Clone` lets the host run it again after a version conflict.
    #[doc(alias = "execute_with")]
    pub fn execute(
        &self,
        id: impl Display,
        command: impl Into<WithMetadata<A::Command>>,
    ) -> ExecuteResult<A> {
        let WithMetadata { command, metadata } = command.into();
        with_key::<A, _>(id, |key| {
            self.shared
                .execute(key, command, metadata, |_| ())
                .map(|(done, ())| done)
        })
    }

    /// [`execute`](Self::execute), then runs `f` on the new state before another command can
    /// change it. Like [`read`](Self::read)'s, `f` must not use this host on the same
    /// aggregate.
    pub fn execute_and_read<R>(
        &self,
        id: impl Display,
        command: impl Into<WithMetadata<A::Command>>,
        f: impl FnOnce(&A) -> R,
    ) -> ExecuteAndReadResult<A, R> {
        let WithMetadata { command, metadata } = command.into();
        with_key::<A, _>(id, |key| self.shared.execute(key, command, metadata, f))
    }

    /// Runs `command` on aggregate `id` on the host's thread pool; the future resolves when
    /// the events are stored and applied. For async code: no executor thread ever blocks on
    /// the store. `command` is taken as by [`execute`](Self::execute).
    ///
    /// The command starts at once, and runs to the end even if the future is dropped.
    /// Commands sent to one aggregate this way run in the order they were sent, one at a
    /// time, whether or not the caller awaits each before sending the next; while they wait
    /// for their turn, they hold none of the pool's threads, which go on running the commands
    /// of other aggregates.
    #[doc(alias = "execute_with_async")]
    pub fn execute_async(
        &self,
        id: impl Display,
        command: impl Into<WithMetadata<A::Command>>,
    ) -> impl Future<Output = ExecuteResult<A>> + Send + 'static {
        let WithMetadata { command, metadata } = command.into();
        let key: Arc<str> = with_key::<A, _>(id, |key| key.into());
        let shared = self.shared.clone();
        let pool = self
            .shared
            .pool
            .get_or_init(|| Pool::new(self.shared.options.max_blocking_threads));
        let stream = key.clone();
        // The command's span is a child of the caller's, as with `execute`.
        let caller = tracing::Span::current();
        let rx = pool.spawn(key.clone(), move || {
            caller.in_scope(|| {
                shared
                    .execute(&key, command, metadata, |_| ())
                    .map(|(done, ())| done)
            })
        });
        async move {
            rx.await.unwrap_or_else(|| {
                // The command got past its stream id: the key makes one.
                Err(match stream_of::<A>(&stream) {
                    Ok(stream) => ExecuteError::Panicked {
                        stream,
                        phase: Phase::Store,
                        message: "the store or the host panicked while running the command"
                            .to_owned(),
                    },
                    Err(invalid) => invalid.into(),
                })
            })
        }
    }
}
