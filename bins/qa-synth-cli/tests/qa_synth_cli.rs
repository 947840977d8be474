//! The qa-synth and qa-contaminate binaries' integration tests, in one binary (each test binary links Burn).

mod contaminate;
mod deploy;
mod synth;
