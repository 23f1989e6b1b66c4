//! The `harbinger` binary: parse flags, load config, install logging, run one command.

use clap::Parser;
use harbinger_cli::args::Cli;

// Ingest allocates many small buffers; mimalloc roughly halves their cost versus glibc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    let config = match harbinger_cli::load_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}", harbinger_cli::error_text(&e));
            return std::process::ExitCode::from(2);
        }
    };
    if let Err(e) = harbinger_cli::init_logging(&config) {
        eprintln!("error: {}", harbinger_cli::error_text(&e));
        return std::process::ExitCode::from(2);
    }
    match harbinger_cli::run(cli, config) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", harbinger_cli::error_text(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// `harbinger … | head` closes stdout early; `println!` then panics with a broken pipe.
/// Stop quietly with the status a shell tool killed by SIGPIPE would have (128 + 13).
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied()).unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}
