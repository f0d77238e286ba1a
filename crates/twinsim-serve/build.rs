//! Lets this crate's test binaries find libtorch at run time.
fn main() {
    twinsim_link_libtorch();
}

include!("../../scripts/link_libtorch.rs");
