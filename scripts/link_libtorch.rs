// Shared by the build scripts of the crates that link libtorch (included
// with `include!`): torch-sys compiles its own wrapper with an rpath but does
// not give one to the final binaries, so each binary records where libtorch
// is (no LD_LIBRARY_PATH needed).
//
// libtorch's CUDA half is not linked: torch-sys asks for -ltorch_cuda, but
// nothing references its symbols, so the linker's --as-needed drops it, and
// `twinsim_learn::device` loads it with dlopen (through this rpath) when a
// GPU is asked for. Linked in, libtorch_cuda and the cuDNN, cuBLAS and NCCL
// it needs made every command, `--version` included, cost 0.6 s and 460 MB
// before doing anything (docs/benchmarks.md, "Start-up").
fn twinsim_link_libtorch() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
}
