// Shared by the build scripts of the crates that link libtorch (included
// with `include!`): torch-sys compiles its own wrapper with an rpath but does
// not give one to the final binaries, so each binary records where libtorch
// is (no LD_LIBRARY_PATH needed). When the libtorch found is a CUDA build,
// libtorch.so is linked with --no-as-needed, because nothing references its
// symbols directly and the linker would otherwise drop it, and with it CUDA.
// TWINSIM_CUDA=0 builds a CPU-only binary from a CUDA libtorch.
fn twinsim_link_libtorch() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=TWINSIM_CUDA");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    let cuda = std::path::Path::new(&lib).join("libtorch_cuda.so").exists();
    if cuda && std::env::var("TWINSIM_CUDA").as_deref() != Ok("0") {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-L{lib}");
        println!("cargo:rustc-link-arg=-ltorch");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
