//! The liburcu peers (tests/peers/liburcu.c): urcu-qsbr and urcu-memb loops timed inside C,
//! called once per measurement. Built only with `--features liburcu`; without it every
//! function returns `Err(NOT_BUILT)`, which the rows print in the peer's column.

/// What a liburcu peer's cell says when rcuscale was built without it.
#[cfg_attr(feature = "liburcu", allow(dead_code))]
pub(crate) const NOT_BUILT: &str = "not built (--features liburcu)";

/// Whether this rcuscale was built with the liburcu peers.
pub(crate) const BUILT: bool = cfg!(feature = "liburcu");

/// One W3 run of urcu-qsbr, as the C side reports it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct W3Result {
    pub(crate) reader_mops: f64,
    pub(crate) updater_mops: f64,
    pub(crate) allocated: u64,
    pub(crate) freed: u64,
    pub(crate) drain_ms: f64,
}

#[cfg(feature = "liburcu")]
mod ffi {
    use super::W3Result;

    // The archive first: it uses the flavours' libraries, linked dynamically as a liburcu
    // user links them.
    #[link(name = "rcuscale_liburcu", kind = "static")]
    #[link(name = "urcu-qsbr")]
    #[link(name = "urcu-memb")]
    #[link(name = "urcu-common")]
    extern "C" {
        pub(super) fn rcuscale_liburcu_memb_uses_membarrier() -> i32;
        pub(super) fn rcuscale_liburcu_qsbr_read(n: u64) -> f64;
        pub(super) fn rcuscale_liburcu_memb_read(n: u64) -> f64;
        pub(super) fn rcuscale_liburcu_qsbr_sync_offline(
            threads: usize,
            samples: usize,
            out: *mut f64,
        ) -> i32;
        pub(super) fn rcuscale_liburcu_qsbr_w3(secs: f64, out: *mut W3Result) -> i32;
    }
}

/// Whether urcu-memb's readers rely on membarrier (otherwise they fence at every section).
pub(crate) fn memb_uses_membarrier() -> Result<bool, &'static str> {
    #[cfg(feature = "liburcu")]
    // SAFETY: reads a flag liburcu set at load time.
    return Ok(unsafe { ffi::rcuscale_liburcu_memb_uses_membarrier() } != 0);
    #[cfg(not(feature = "liburcu"))]
    Err(NOT_BUILT)
}

/// ns per urcu-qsbr read: `rcu_dereference` + one field, a quiescent state every 1024 reads.
pub(crate) fn qsbr_read(n: u64) -> Result<f64, &'static str> {
    #[cfg(feature = "liburcu")]
    // SAFETY: registers and unregisters the calling thread itself; no pointer crosses.
    return Ok(unsafe { ffi::rcuscale_liburcu_qsbr_read(n.max(1)) });
    #[cfg(not(feature = "liburcu"))]
    {
        let _ = n;
        Err(NOT_BUILT)
    }
}

/// ns per urcu-memb read section: `rcu_read_lock`, `rcu_dereference` + one field,
/// `rcu_read_unlock`.
pub(crate) fn memb_read(n: u64) -> Result<f64, &'static str> {
    #[cfg(feature = "liburcu")]
    // SAFETY: as in `qsbr_read`.
    return Ok(unsafe { ffi::rcuscale_liburcu_memb_read(n.max(1)) });
    #[cfg(not(feature = "liburcu"))]
    {
        let _ = n;
        Err(NOT_BUILT)
    }
}

/// `samples` latencies (ns) of `urcu_qsbr_synchronize_rcu` with `threads` registered threads
/// (at most 16), all offline.
pub(crate) fn qsbr_sync_offline(threads: usize, samples: usize) -> Result<Vec<f64>, &'static str> {
    #[cfg(feature = "liburcu")]
    {
        let mut out = vec![0.0; samples];
        // SAFETY: `out` has room for `samples` values; the C side joins its threads.
        let rc =
            unsafe { ffi::rcuscale_liburcu_qsbr_sync_offline(threads, samples, out.as_mut_ptr()) };
        if rc == 0 {
            Ok(out)
        } else {
            Err("liburcu-qsbr: at most 16 offline threads")
        }
    }
    #[cfg(not(feature = "liburcu"))]
    {
        let _ = (threads, samples);
        Err(NOT_BUILT)
    }
}

/// One W3 run of urcu-qsbr for `secs` seconds (a reader and an updater thread, made in C).
pub(crate) fn qsbr_w3(secs: f64) -> Result<W3Result, &'static str> {
    #[cfg(feature = "liburcu")]
    {
        let mut out = W3Result::default();
        // SAFETY: `out` is a valid W3Result (the same layout: repr(C)); the C side joins
        // the threads it made before it returns.
        let rc = unsafe { ffi::rcuscale_liburcu_qsbr_w3(secs, &mut out) };
        if rc == 0 {
            Ok(out)
        } else {
            Err("liburcu-qsbr W3: pthread_create failed")
        }
    }
    #[cfg(not(feature = "liburcu"))]
    {
        let _ = secs;
        Err(NOT_BUILT)
    }
}
