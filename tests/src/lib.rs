//! Shared helpers for the integration tests, rcutorture and rcuscale.
