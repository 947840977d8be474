//! Turns at Burn's random generator for the tests (the unit tests, and the integration tests
//! through `tests/common`): it is one per backend, shared by every thread of a test binary. A test that seeds it and depends on what it then draws (dropout)
//! holds [`seeded`]; a test that only draws from it (a model's initial weights) holds
//! [`drawing`], so that no draw falls between a seeded test's seed and its own draws.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

static RANDOM: RwLock<()> = RwLock::new(());

/// The generator to oneself, for a test that seeds it.
pub fn seeded() -> RwLockWriteGuard<'static, ()> {
    RANDOM
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A turn shared with other tests that draw without seeding.
pub fn drawing() -> RwLockReadGuard<'static, ()> {
    RANDOM
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
