//! Event ids: UUID v7, made without a lock, and sorting in creation order among the ids one
//! thread makes.

use std::cell::Cell;

use uuid::Uuid;

use super::time::coarse_unix_millis;

/// A fresh UUID v7: the Unix time in milliseconds, then a 42-bit counter, then 32 random bits.
///
/// On Linux the time comes from the coarse real-time clock, which costs a memory read instead
/// of a clock read but may be a scheduler tick (a few milliseconds) behind; RFC 9562 lets an
/// id's timestamp be approximate. Event timestamps are the store's, to the nanosecond.
///
/// Each thread keeps its own generator, so making an id takes no lock: the counter starts at a
/// random value each millisecond and counts up within it, so the ids one thread makes sort in
/// the order it made them (RFC 9562, method 1), and the random bits keep threads apart. If the
/// clock steps back, a thread keeps counting from where it was.
pub fn new_event_id() -> Uuid {
    /// A thread's generator; `rng == 0` until it is seeded.
    #[derive(Clone, Copy)]
    struct Generator {
        rng: u64,
        millis: u64,
        counter: u64,
    }
    thread_local!(static GENERATOR: Cell<Generator> = const {
        Cell::new(Generator { rng: 0, millis: 0, counter: 0 })
    });
    const COUNTER_MAX: u64 = (1 << 42) - 1;

    let now = coarse_unix_millis();
    let mut g = GENERATOR.get();
    if g.rng == 0 {
        // Seeded once per thread: std's hasher keys come from the operating system's
        // randomness and differ for every `RandomState`.
        g.rng = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), now) | 1;
    }
    let random = wyrand(&mut g.rng);
    if now > g.millis {
        g.millis = now;
        // Start anywhere in the lower half (41 random bits), so the millisecond has room to
        // count.
        g.counter = random >> 23;
    } else if g.counter < COUNTER_MAX {
        g.counter += 1;
    } else {
        // More ids in one millisecond than the counter holds: borrow the next one.
        g.millis += 1;
        g.counter = 0;
    }
    GENERATOR.set(g);
    let c = g.counter;
    let r = random as u32;
    // The builder keeps the low 4 bits of byte 0 and the low 6 of byte 2 (the rest hold the
    // version and variant): 4 + 8 + 6 + 8 + 8 + 8 = 42 counter bits, then 32 random ones.
    let bytes = [
        (c >> 38) as u8,
        (c >> 30) as u8,
        (c >> 24) as u8,
        (c >> 16) as u8,
        (c >> 8) as u8,
        c as u8,
        (r >> 24) as u8,
        (r >> 16) as u8,
        (r >> 8) as u8,
        r as u8,
    ];
    uuid::Builder::from_unix_timestamp_millis(g.millis, &bytes).into_uuid()
}

/// One step of wyrand: a small, fast generator with a 64-bit state.
fn wyrand(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0xa076_1d64_78bd_642f);
    let t = u128::from(*state) * u128::from(*state ^ 0xe703_7ed1_a0b4_28db);
    ((t >> 64) ^ t) as u64
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::SystemTime;

    use super::*;
    use crate::event::Timestamp;

    #[test]
    fn event_ids_from_one_thread_sort_in_creation_order() {
        // The ids' clock is coarse: it may be a scheduler tick (up to 10 ms) behind.
        let before = Timestamp::from(SystemTime::now()).as_millis() - 10;
        let ids: Vec<Uuid> = (0..100_000).map(|_| new_event_id()).collect();
        let after = Timestamp::from(SystemTime::now()).as_millis();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
        }
        for id in [ids[0], ids[ids.len() - 1]] {
            assert_eq!(id.get_version(), Some(uuid::Version::SortRand));
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            let (secs, nanos) = id.get_timestamp().expect("v7 has a timestamp").to_unix();
            let millis = secs * 1000 + u64::from(nanos) / 1_000_000;
            assert!(
                (before..=after).contains(&millis),
                "{before} <= {millis} <= {after}"
            );
        }
    }

    #[test]
    fn event_ids_from_many_threads_never_collide() {
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..50_000).map(|_| new_event_id()).collect::<Vec<_>>()))
            .collect();
        let mut seen = HashSet::new();
        for t in threads {
            for id in t.join().expect("no panic") {
                assert!(seen.insert(id), "duplicate id {id}");
            }
        }
        assert_eq!(seen.len(), 200_000);
    }
}
