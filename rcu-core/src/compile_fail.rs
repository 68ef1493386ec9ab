//! Compile-time misuse spec of rcu-core (read sections, grace periods, RcuCell).
