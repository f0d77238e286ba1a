//! `twinsim serve`: the model (and index) over HTTP until SIGTERM or Ctrl-C.

use std::net::SocketAddr;

use twinsim_serve::{Limits, ServeConfig};

use crate::cli::{GlobalArgs, ServeArgs};

/// Runs `twinsim serve`.
pub fn run(global: &GlobalArgs, args: &ServeArgs) -> anyhow::Result<()> {
    let defaults = Limits::default();
    let config = ServeConfig {
        model: args.model.clone(),
        index: args.index.clone(),
        addr: SocketAddr::new(args.host, args.port),
        limits: Limits {
            max_body_bytes: args.max_body_bytes,
            max_pixels: args.max_pixels,
            max_files: args.max_files,
            max_fields: args.max_files + defaults.max_fields - defaults.max_files,
            max_k: args.max_k,
            ..defaults
        },
        data: super::data_options(global),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(twinsim_serve::serve(config, |addr| {
        // Flushed at once: scripts and tests wait for this line.
        println!("serving on http://{addr}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }))?;
    Ok(())
}
