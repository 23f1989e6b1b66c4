//! The `harbinger` binary: parse flags, load config, install logging, run one command.

use clap::Parser;
use harbinger_cli::args::Cli;

// Ingest allocates many small buffers; mimalloc roughly halves their cost versus glibc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match harbinger_cli::load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Err(e) = harbinger_cli::init_logging(&config) {
        eprintln!("error: {e:#}");
        return std::process::ExitCode::from(2);
    }
    match harbinger_cli::run(cli, config) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
