//! The executable spec of token misuse: each `compile_fail` example has a compiling twin.
