//! Time: a [`Timestamp`] is nanoseconds since the Unix epoch (UTC), and stores take it from an
//! injected [`Clock`], never from the system directly, so that tests can stop time.
//!
//! The readings of the operating system's clocks live here too, for the clock and for the
//! event ids' coarser milliseconds.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A point in time: nanoseconds since the Unix epoch (UTC).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Whole seconds and nanoseconds since the Unix epoch, kept apart: no 128-bit arithmetic
    /// on the append path. Saturates far in the future.
    fn from_unix(secs: u64, nanos: u64) -> Timestamp {
        let t = secs
            .checked_mul(1_000_000_000)
            .and_then(|n| n.checked_add(nanos));
        Timestamp(t.unwrap_or(u64::MAX))
    }

    /// Nanoseconds since the Unix epoch.
    pub fn as_nanos(self) -> u64 {
        self.0
    }

    /// Whole milliseconds since the Unix epoch.
    pub fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// The same instant as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.0)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        Timestamp::from_unix(since.as_secs(), u64::from(since.subsec_nanos()))
    }
}

/// Where stores get the time they stamp on events. Inject a [`ManualClock`] in tests.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        #[cfg(target_os = "linux")]
        if let Some((secs, nanos)) = linux_clock(libc::CLOCK_REALTIME) {
            return Timestamp::from_unix(secs, nanos);
        }
        Timestamp::from(SystemTime::now())
    }
}

/// A clock that only moves when told to, for tests.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock stopped at `t`.
    pub fn new(t: Timestamp) -> Self {
        ManualClock(AtomicU64::new(t.0))
    }

    /// Moves the clock to `t`.
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(nanos, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// Milliseconds since the Unix epoch from the cheapest clock that has them: on Linux the
/// coarse real-time clock (a memory read, updated every scheduler tick, so at most a few
/// milliseconds behind), elsewhere the system time.
pub(super) fn coarse_unix_millis() -> u64 {
    #[cfg(target_os = "linux")]
    if let Some((secs, nanos)) = linux_clock(libc::CLOCK_REALTIME_COARSE) {
        return secs * 1000 + nanos / 1_000_000;
    }
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    since.as_secs() * 1000 + u64::from(since.subsec_millis())
}

/// Seconds and nanoseconds since the Unix epoch from one of Linux's real-time clocks, read
/// directly (through the vDSO: no system call), or `None` before 1970 or on error.
#[cfg(target_os = "linux")]
fn linux_clock(clock: libc::clockid_t) -> Option<(u64, u64)> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    Some((
        u64::try_from(ts.tv_sec).ok()?,
        u64::try_from(ts.tv_nsec).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_convert_without_losing_nanoseconds() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        assert_eq!(Timestamp::from(t).as_nanos(), 1_700_000_000_123_456_789);
        assert_eq!(Timestamp::from(t).to_system_time(), t);
        assert_eq!(
            Timestamp::from(UNIX_EPOCH - Duration::from_secs(1)).as_nanos(),
            0
        );
    }
}
