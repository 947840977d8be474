//! qa-eval's integration tests, in one binary (each test binary links Burn).

mod predict;
mod score;
