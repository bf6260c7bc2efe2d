//! Benchmarks live in benches/benches/; see benches/RESULTS.md.
