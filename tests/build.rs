//! With `--features liburcu`: compiles rcuscale's liburcu peers (peers/liburcu.c) and links
//! the urcu-qsbr and urcu-memb flavours. Without it: nothing (no C compiler, no liburcu).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "liburcu")]
    liburcu();
}

#[cfg(feature = "liburcu")]
fn liburcu() {
    println!("cargo:rerun-if-changed=peers/liburcu.c");
    // Linked by rcuscale's own `#[link]` attributes (liburcu.rs), not the package's library:
    // the library never calls it, so the archive bundled there would be left out.
    cc::Build::new()
        .file("peers/liburcu.c")
        .std("gnu11")
        .opt_level(2)
        .warnings(true)
        .cargo_metadata(false)
        .compile("rcuscale_liburcu");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    println!("cargo:rustc-link-search=native={out}");
}
