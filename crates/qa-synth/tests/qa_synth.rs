//! qa-synth's integration tests, in one binary (each test binary links Burn).

mod configs;
mod contaminate;
mod openai;
mod round_trip;
