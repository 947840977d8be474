//! qa-prepare's integration tests, in one binary.

mod download;
mod prepare;
