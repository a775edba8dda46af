"""Developer tooling: `make dev` and the process harness shared with the end-to-end tests and benches."""
