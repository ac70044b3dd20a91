//! The `peft-bootstrap` binary: parse, run, report, exit with the contract's code.

use std::process::ExitCode;

use clap::Parser;
use peft_bootstrap::{Cli, Error, Event, Next, Reporter, Session, Settings};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            peft_bootstrap::log_filter(),
        ))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    let json = cli.json;
    let reporter = peft_bootstrap::reporter(json);
    let failed = |e: Error| {
        reporter.emit(Event::Error {
            code: e.code().into(),
            reason: e.reason().as_str().into(),
            message: e.to_string(),
            exit_code: e.exit_code(),
            hint: e.hint(),
        });
        if json {
            // People reading a terminal see the event's text; scripts see the JSON.
            eprintln!("error: {e}");
        }
        ExitCode::from(e.exit_code())
    };
    match run(cli, reporter.as_ref()) {
        Ok(Next::Exit) => ExitCode::SUCCESS,
        // The command replaced this binary first (min_bootstrapper): run it again.
        Ok(Next::Reexec { exe, otherwise }) => match peft_bootstrap::reexec(&exe) {
            Some(code) => ExitCode::from(code),
            None => failed(otherwise),
        },
        Err(e) => failed(e),
    }
}

fn run(cli: Cli, reporter: &dyn Reporter) -> Result<Next, Error> {
    let session = Session::new(Settings::resolve(&cli.settings)?, reporter, cli.json);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(peft_bootstrap::run(cli.command, &session))
}

/// A command line clap refused (exit 2; 0 for `--help` and `--version`). clap could
/// not parse it, so `--json` is looked for in the raw arguments here, and only here.
fn usage_error(e: clap::Error) -> ExitCode {
    let code = e.exit_code();
    if code != 0 && std::env::args().any(|a| a == "--json") {
        let ev = Event::Error {
            code: "usage".into(),
            reason: "usage".into(),
            message: e.kind().to_string(),
            exit_code: 2,
            hint: Some(e.to_string()),
        };
        if let Ok(line) = serde_json::to_string(&ev) {
            println!("{line}");
        }
    }
    let _ = e.print();
    ExitCode::from(if code == 0 { 0 } else { 2 })
}
