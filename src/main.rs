//! The `pgoci` binary: parse, set up logging, run, map errors to exit codes.

mod cli;
mod commands;

use clap::Parser;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let json = cli.global.json;
    let quiet = cli.global.quiet > 0;
    let verbose = cli.global.verbose;
    init_tracing(cli.global.verbose, cli.global.quiet);
    let command = commands::name(&cli.command);
    match commands::run(cli) {
        Ok(outcome) => {
            let printed = outcome.print(json, quiet);
            if let Some(err) = &outcome.error {
                // The document (with its `error`) is out; the lines follow.
                report(err, verbose);
                return ExitCode::from(err.kind.exit_code() as u8);
            }
            match printed {
                Ok(()) => ExitCode::SUCCESS,
                // The reader stopped reading (`| head`): nothing is wrong.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    let _ = writeln!(std::io::stderr(), "error: cannot write the output: {e}");
                    ExitCode::from(pgoci::Kind::Host.exit_code() as u8)
                }
            }
        }
        Err(err) => {
            if json {
                let doc = commands::output::error_json(command, &err);
                let _ = writeln!(std::io::stdout(), "{doc}");
            }
            report(&err, verbose);
            ExitCode::from(err.kind.exit_code() as u8)
        }
    }
}

/// The error's lines on stderr (each write may fail: stderr may be gone).
fn report(err: &pgoci::Error, verbose: u8) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {}", err.message);
    if verbose > 0 {
        for cause in err.causes() {
            let _ = writeln!(stderr, "  caused by: {cause}");
        }
    }
    for w in &err.warnings {
        let _ = writeln!(stderr, "warning: {w}");
    }
    if let Some(h) = &err.hint {
        let _ = writeln!(stderr, "hint: {h}");
    }
    if err.kind == pgoci::Kind::Internal {
        let _ = writeln!(
            stderr,
            "this is a bug in pgoci: please report it with the command line above"
        );
    }
}

/// `-v` shows each phase (a span per step, closed with its time), `-vv`
/// debug events, `-vvv` everything; `PGOCI_LOG` overrides.
fn init_tracing(verbose: u8, quiet: u8) {
    use tracing_subscriber::fmt::format::FmtSpan;
    let level = match (verbose, quiet) {
        (_, q) if q > 0 => "error",
        (0, _) => "warn",
        (1, _) => "info",
        (2, _) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PGOCI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("pgoci={level}")));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A stderr nobody reads (`2>&1 | head -1`) loses the line; the
        // default would report that with eprintln!, which panics there.
        .log_internal_errors(false)
        .with_ansi(ansi);
    if verbose == 0 {
        builder.without_time().init();
    } else {
        // Phases as spans: each closes with its busy and idle time.
        builder
            .with_span_events(FmtSpan::CLOSE)
            .with_timer(tracing_subscriber::fmt::time::Uptime::default())
            .init();
    }
}
