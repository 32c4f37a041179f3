//! [`HostBuilder`]: the host's settings and their defaults.

use std::marker::PhantomData;
use std::time::Duration;

use crate::aggregate::Aggregate;
use crate::host::Host;
use crate::snapshot::SnapshotPolicy;
use crate::store::EventStore;

/// The settings of a [`Host`], all with defaults. Start from [`Host::builder`].
///
/// ```
/// use std::time::Duration;
/// # use es_runtime::{Aggregate, DomainEvent, Host, MemoryStore};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Debug, Default, Serialize, Deserialize)]
/// # struct Counter { value: u64 }
/// # #[derive(Debug, Clone, Serialize, Deserialize)]
/// # enum CounterEvent { Incremented { by: u64 } }
/// # impl DomainEvent for CounterEvent {
/// #     const TYPES: &'static [&'static str] = &["Incremented"];
/// #     fn event_type(&self) -> &'static str { "Incremented" }
/// # }
/// # impl Aggregate for Counter {
/// #     const NAME: &'static str = "counter";
/// #     type Command = u64;
/// #     type Event = CounterEvent;
/// #     type Error = std::convert::Infallible;
/// #     type Services = ();
/// #     fn handle(&self, by: u64) -> Result<Vec<CounterEvent>, Self::Error> {
/// #         Ok(vec![CounterEvent::Incremented { by }])
/// #     }
/// #     fn apply(&mut self, CounterEvent::Incremented { by }: CounterEvent) { self.value += by }
/// # }
/// let host = Host::<Counter, _>::builder(MemoryStore::new())
///     .max_live(50_000)
///     .idle_timeout(Duration::from_secs(60))
///     .snapshot_every(500)
///     .snapshot_keep(1)
///     .max_retries(5)
///     .build();
/// ```
///
/// An aggregate whose commands consult services (see [`Aggregate::Services`]) is given them
/// with [`services`](Self::services); `build` does not compile without them. One without
/// services needs nothing.
#[derive(Debug)]
#[must_use = "call `build` to get the host"]
pub struct HostBuilder<A, S, V = NoServices> {
    pub(crate) store: S,
    pub(crate) options: HostOptions,
    pub(crate) services: V,
    _aggregate: PhantomData<fn() -> A>,
}

/// What a [`HostBuilder`] holds before [`services`](HostBuilder::services) is called: enough
/// for an aggregate whose [`Services`](Aggregate::Services) are `()`.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct NoServices;

/// The services given to a [`HostBuilder`].
pub struct GivenServices<T>(T);

impl<T> std::fmt::Debug for GivenServices<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GivenServices(..)")
    }
}

/// What a [`HostBuilder`] holds for the services of `A`: [`NoServices`] for an aggregate
/// without any, or [`GivenServices`].
#[diagnostic::on_unimplemented(
    message = "the commands of `{A}` consult services: give them to the host with `.services(...)` before `.build()`",
    label = "no services given",
    note = "an aggregate declared with `#[aggregate(services = T)]` runs its commands with a `&T`, given once to the host"
)]
pub trait ServicesFor<A: Aggregate>: sealed::Sealed {
    #[doc(hidden)]
    fn into_services(self) -> A::Services;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::NoServices {}
    impl<T> Sealed for super::GivenServices<T> {}
    impl Sealed for () {}
}

impl<A: Aggregate> ServicesFor<A> for NoServices
where
    A::Services: NoneNeeded,
{
    fn into_services(self) -> A::Services {
        A::Services::none()
    }
}

/// The services of an aggregate whose commands consult none: `()`.
#[diagnostic::on_unimplemented(
    message = "the commands of this aggregate consult `{Self}`: give them to the host with `.services(...)` before `.build()`",
    label = "no services given",
    note = "an aggregate declared with `#[aggregate(services = T)]` runs its commands with a `&T`, given once to the host: `Host::builder(store).services(...).build()`"
)]
pub trait NoneNeeded: sealed::Sealed {
    #[doc(hidden)]
    fn none() -> Self;
}

impl NoneNeeded for () {
    fn none() -> Self {}
}

impl<A: Aggregate> ServicesFor<A> for GivenServices<A::Services> {
    fn into_services(self) -> A::Services {
        self.0
    }
}

/// The resolved settings of a host.
#[derive(Debug, Clone)]
pub(crate) struct HostOptions {
    pub(crate) max_live: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) sweep_interval: Option<Duration>,
    pub(crate) shards: usize,
    pub(crate) max_retries: u32,
    pub(crate) backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) snapshot_every: Option<u64>,
    pub(crate) snapshot_keep: Option<usize>,
    pub(crate) state_version: Option<u32>,
    pub(crate) background_snapshots: bool,
    pub(crate) max_blocking_threads: usize,
    pub(crate) record_schema: bool,
}

impl HostOptions {
    pub(crate) fn policy<A: Aggregate>(&self) -> SnapshotPolicy {
        let default = SnapshotPolicy::of::<A>();
        SnapshotPolicy {
            every: self.snapshot_every.unwrap_or(default.every),
            keep: self.snapshot_keep.unwrap_or(default.keep).max(1),
            state_version: self.state_version.unwrap_or(default.state_version),
        }
    }

    /// How often the background sweeper looks for idle instances, if at all.
    pub(crate) fn sweep_every(&self) -> Option<Duration> {
        if self.idle_timeout == Duration::MAX {
            return None;
        }
        match self.sweep_interval {
            Some(d) if d == Duration::MAX || d.is_zero() => None,
            Some(d) => Some(d),
            None => Some(
                (self.idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(60)),
            ),
        }
    }
}

impl<A: Aggregate, S: EventStore + 'static> HostBuilder<A, S> {
    pub(crate) fn new(store: S) -> Self {
        HostBuilder {
            store,
            options: HostOptions {
                max_live: Self::DEFAULT_MAX_LIVE,
                idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
                sweep_interval: None,
                shards: 64,
                max_retries: Self::DEFAULT_MAX_RETRIES,
                backoff: Self::DEFAULT_BACKOFF,
                max_backoff: Self::DEFAULT_MAX_BACKOFF,
                snapshot_every: None,
                snapshot_keep: None,
                state_version: None,
                background_snapshots: true,
                max_blocking_threads: Self::DEFAULT_MAX_BLOCKING_THREADS,
                record_schema: true,
            },
            services: NoServices,
            _aggregate: PhantomData,
        }
    }

    /// The services the aggregate's commands consult (see [`Aggregate::Services`]): every
    /// command of this host, and every retry of it after a version conflict, is decided with a
    /// shared reference to them. Never stored.
    pub fn services(self, services: A::Services) -> HostBuilder<A, S, GivenServices<A::Services>> {
        HostBuilder {
            store: self.store,
            options: self.options,
            services: GivenServices(services),
            _aggregate: PhantomData,
        }
    }
}

impl<A: Aggregate, S: EventStore + 'static, V> HostBuilder<A, S, V> {
    /// The default bound on live instances.
    pub const DEFAULT_MAX_LIVE: usize = 10_000;
    /// The default idle timeout.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
    /// The default number of retries after a version conflict.
    pub const DEFAULT_MAX_RETRIES: u32 = 20;
    /// The default longest pause before the first retry after a conflict.
    pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(1);
    /// The default bound on the pause before any retry after a conflict.
    pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_millis(20);
    /// The default bound on threads running async commands.
    pub const DEFAULT_MAX_BLOCKING_THREADS: usize = 256;

    /// The most instances held in memory at once (default 10,000, at least 1). When a new
    /// one is needed, the least recently used goes first.
    ///
    /// The bound is kept per shard of the instance map (the shards' shares add up to it), so
    /// the instance evicted is the least recently used of its shard: close to, but not
    /// exactly, the least recently used overall.
    pub fn max_live(mut self, max: usize) -> Self {
        self.options.max_live = max;
        self
    }

    /// Drop an instance unused for this long (default 5 minutes). `Duration::MAX` keeps idle
    /// instances until the live bound pushes them out.
    ///
    /// An instance is never dropped before it has been idle this long. The background sweep
    /// drops it within about two [sweep intervals](Self::sweep_interval) after that: uses are
    /// timed with a clock the sweep advances once a round, and expiry allows for the longest
    /// round seen.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.options.idle_timeout = timeout;
        self
    }

    /// How often a background thread passivates idle instances (default: a quarter of the
    /// idle timeout, between 10 ms and 1 minute). `Duration::ZERO` or `Duration::MAX` starts
    /// no thread: idle instances are then dropped when their shard is next used, or by
    /// [`Host::passivate_idle`].
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.options.sweep_interval = Some(interval);
        self
    }

    /// How many shards the instance map has (default 64, at most `max_live`). More shards mean
    /// less contention between threads, and a coarser LRU.
    pub fn shards(mut self, shards: usize) -> Self {
        self.options.shards = shards;
        self
    }

    /// How many times a command is run again after a version conflict before it fails with
    /// [`ExecuteError::Conflict`](crate::ExecuteError::Conflict) (default 12). Each retry after
    /// a conflict waits first; see [`retry_backoff`](Self::retry_backoff).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.options.max_retries = retries;
        self
    }

    /// The pause before a retry after a conflict: a random time up to `first` before the first
    /// retry, up to twice that before the second, and so on, never over `max` (defaults 1 ms
    /// and 50 ms). Writers that lost to each other then come back at different times instead
    /// of meeting again. The retry after a conflict found before appending (the instance was
    /// behind) does not wait. `Duration::ZERO` retries at once.
    pub fn retry_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.options.backoff = first;
        self.options.max_backoff = max.max(first);
        self
    }

    /// Take a snapshot every this many events, overriding
    /// [`Aggregate::SNAPSHOT_EVERY`]; `0` takes none. Default: the aggregate's setting, else
    /// [`SnapshotPolicy::DEFAULT_EVERY`].
    pub fn snapshot_every(mut self, events: u64) -> Self {
        self.options.snapshot_every = Some(events);
        self
    }

    /// Keep this many snapshots per stream, overriding [`Aggregate::SNAPSHOT_KEEP`]. Default:
    /// the aggregate's setting, else [`SnapshotPolicy::DEFAULT_KEEP`].
    pub fn snapshot_keep(mut self, keep: usize) -> Self {
        self.options.snapshot_keep = Some(keep);
        self
    }

    /// Write and accept snapshots of this state version, overriding
    /// [`Aggregate::STATE_VERSION`].
    pub fn state_version(mut self, version: u32) -> Self {
        self.options.state_version = Some(version);
        self
    }

    /// Record the aggregate's schema in the store when the host is built (the default; see
    /// [`Host::record_schema`]), or not.
    pub fn record_schema(mut self, record: bool) -> Self {
        self.options.record_schema = record;
        self
    }

    /// Write snapshots on a background thread (the default) rather than on the command's
    /// thread before it returns.
    ///
    /// In the background, a snapshot costs the command only the encoding of the state, never a
    /// store write (with a durable store, a write and an fsync). Snapshots waiting to be
    /// written are coalesced per stream, written when the host is dropped, and can be waited
    /// for with [`Host::flush_snapshots`].
    pub fn background_snapshots(mut self, background: bool) -> Self {
        self.options.background_snapshots = background;
        self
    }

    /// The most threads running async commands at once (default 256). Each async command
    /// holds one while it runs, so this bounds how many reach the store together.
    pub fn max_blocking_threads(mut self, threads: usize) -> Self {
        self.options.max_blocking_threads = threads;
        self
    }

    /// The snapshot policy the host will follow.
    pub fn snapshot_policy(&self) -> SnapshotPolicy {
        self.options.policy::<A>()
    }

    /// Builds the host.
    pub fn build(self) -> Host<A, S>
    where
        V: ServicesFor<A>,
    {
        Host::from_builder(self.store, self.options, self.services.into_services())
    }
}
