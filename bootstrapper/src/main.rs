//! The `peft-bootstrap` binary: parse, run, report, exit with the contract's code.

use std::process::ExitCode;

use clap::Parser;
use peft_bootstrap::cli::{Cli, Command};
use peft_bootstrap::events::{self, Event};
use peft_bootstrap::settings::Settings;
use peft_bootstrap::{Error, env, self_update};
use peft_bootstrap::{commands, update};

fn main() -> ExitCode {
    let json = std::env::args().any(|a| a == "--json");
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = e.exit_code();
            if json && code != 0 {
                let ev = Event::Error {
                    code: "usage".into(),
                    message: e.kind().to_string(),
                    exit_code: 2,
                    hint: Some(e.to_string()),
                };
                if let Ok(line) = serde_json::to_string(&ev) {
                    println!("{line}");
                }
            }
            let _ = e.print();
            return ExitCode::from(if code == 0 { 0 } else { 2 });
        }
    };
    let filter = env::var(env::LOG).unwrap_or_else(|| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    let reporter = events::reporter(json);
    let result = run(cli, reporter.as_ref(), json);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The command replaced this binary first (min_bootstrapper): run it again.
            if let Some(exe) = self_update::updated_exe()
                && let Some(code) = self_update::reexec(exe)
            {
                return ExitCode::from(code);
            }
            reporter.emit(Event::Error {
                code: e.code().into(),
                message: e.to_string(),
                exit_code: e.exit_code(),
                hint: e.hint(),
            });
            if json {
                // People reading a terminal see the event's text; scripts see the JSON.
                eprintln!("error: {e}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(cli: Cli, reporter: &dyn events::Reporter, json: bool) -> Result<(), Error> {
    let settings = Settings::resolve(&cli.settings)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
    match cli.command {
        Command::Ensure(_) => {
            self_update::allow_update_first();
            let exe = rt.block_on(commands::ensure(&settings, reporter))?;
            if !json {
                println!("{}", exe.display());
            }
            Ok(())
        }
        Command::Detect(_) => rt.block_on(commands::detect(&settings, reporter)),
        Command::Status(_) => commands::status(&settings, json),
        Command::Verify(_) => commands::verify(&settings, json),
        Command::Update(a) => {
            // Like ensure: a manifest that needs a newer bootstrapper updates it first.
            self_update::allow_update_first();
            rt.block_on(update::update(&settings, reporter, a.check))
        }
        Command::Rollback(a) => update::rollback(&settings, reporter, a.reason.as_deref()),
        Command::Gc(a) => update::gc(&settings, reporter, a.keep),
        Command::SelfUpdate(a) => {
            let outcome = rt.block_on(self_update::run(&settings, reporter, a.check))?;
            self_update::report(&outcome, json);
            Ok(())
        }
    }
}
