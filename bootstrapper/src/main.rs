//! The `peft-bootstrap` binary: parse, run, report, exit with the contract's code.

use std::process::ExitCode;

use peft_bootstrap::{Cli, Error, Event, Next, Reporter, Session, Settings};

fn main() -> ExitCode {
    steady_malloc();
    let cli = match Cli::parse_args() {
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

/// Allocations from 128 KiB up get pages of their own, returned to the system when
/// freed. glibc's default raises that threshold to the size of each large block
/// freed, after which read buffers and zstd windows came from per-thread heaps that
/// kept their pages: a fresh install of the 15,700-file real-library tree peaked at
/// 32 MiB resident with 12 MiB of live heap; with the threshold fixed, 21 MiB
/// (docs/BENCHMARKS.md, "Memory of a fresh install").
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn steady_malloc() {
    // SAFETY: mallopt only sets a tuning parameter of the allocator; it is called
    // first thing in main, before any other thread exists. A refusal (0) leaves
    // glibc's default, which is only more memory.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn steady_malloc() {}

fn run(cli: Cli, reporter: &dyn Reporter) -> Result<Next, Error> {
    let session = Session::new(Settings::resolve(&cli.settings)?, reporter, cli.json);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the async runtime: {e}")))?;
    watch_interrupt(cli.json);
    rt.block_on(peft_bootstrap::run(cli.command, &session))
}

/// Ctrl-C (SIGINT) ends the process with exit 130 after saying what was kept, even
/// while the command is busy without yielding (unpacking, hashing, waiting for the
/// lock). Nothing needs undoing: every byte downloaded is already in the partial
/// file, the OS releases the lock, the next run removes an unfinished unpack, and
/// `current.json` only ever changes by an atomic rename.
fn watch_interrupt(json: bool) {
    let spawned = std::thread::Builder::new()
        .name("ctrl-c".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            if rt.block_on(tokio::signal::ctrl_c()).is_ok() {
                peft_bootstrap::interrupted(peft_bootstrap::reporter(json).as_ref());
                std::process::exit(i32::from(peft_bootstrap::INTERRUPTED));
            }
        });
    if let Err(e) = spawned {
        tracing::debug!("no Ctrl-C handler: {e}");
    }
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
