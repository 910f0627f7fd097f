//! The `pgoci` binary: parse, set up logging, run, map errors to exit codes.

mod cli;
mod commands;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let json = cli.global.json;
    let quiet = cli.global.quiet > 0;
    init_tracing(cli.global.verbose, cli.global.quiet);
    let command = commands::name(&cli.command);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(outcome) => {
            outcome.print(json, quiet);
            ExitCode::SUCCESS
        }
        Err(err) => {
            if json {
                println!("{}", commands::output::error_json(command, &err));
            }
            eprintln!("error: {}", err.message);
            if let Some(h) = &err.hint {
                eprintln!("hint: {h}");
            }
            if err.kind == pgoci::Kind::Internal {
                eprintln!("this is a bug in pgoci: please report it with the command line above");
            }
            ExitCode::from(err.kind.exit_code() as u8)
        }
    }
}

fn init_tracing(verbose: u8, quiet: u8) {
    let level = match (verbose, quiet) {
        (_, q) if q > 0 => "error",
        (0, _) => "warn",
        (1, _) => "info",
        (2, _) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PGOCI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("pgoci={level}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .init();
}
