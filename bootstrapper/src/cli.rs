//! The command line (docs/CONTRACT.md §4), as clap types and nothing else.

use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::env;

/// Installs and updates the PEFT Studio backend that fits this machine.
#[derive(Debug, Parser)]
#[command(name = "peft-bootstrap", version = crate::version::VERSION, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// One JSON event per line on stdout, nothing else (before or after the command).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    pub settings: SettingsArgs,
}

impl Cli {
    /// Parses the command line. The settings are accepted by every subcommand (a
    /// caller may pass the same ones to all), but each subcommand's `--help` lists
    /// only those it reads ([`UNUSED`]).
    pub fn parse_args() -> Result<Cli, clap::Error> {
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        match Cli::try_parse_from(&args) {
            Err(e) if e.kind() == ErrorKind::DisplayHelp => match narrowed_help(&args) {
                Some(help) => {
                    print!("{help}");
                    std::process::exit(0);
                }
                None => Err(e),
            },
            parsed => parsed,
        }
    }
}

/// The help of the subcommand `args` ask about (`gc --help`, `help gc`), without
/// the settings it ignores; `None` for the top-level help.
fn narrowed_help(args: &[std::ffi::OsString]) -> Option<String> {
    let words: Vec<&str> = args.iter().skip(1).filter_map(|a| a.to_str()).collect();
    let mut cmd = Cli::command();
    let named = words
        .iter()
        .find(|w| cmd.get_subcommands().any(|c| c.get_name() == **w))?;
    let (sub, unused) = UNUSED.iter().find(|(sub, _)| sub == named)?;
    let long = words.contains(&"--help") || words.first() == Some(&"help");
    // Global arguments reach the subcommands when the command is built; the built
    // copy only renders the help (parsing uses the unchanged one).
    cmd.build();
    let sc = cmd.find_subcommand_mut(sub)?;
    let mut narrowed = std::mem::take(sc);
    for id in *unused {
        narrowed = narrowed.mut_arg(*id, |a| a.hide(true));
    }
    let help = if long {
        narrowed.render_long_help()
    } else {
        narrowed.render_help()
    };
    let help = if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        help.ansi().to_string()
    } else {
        help.to_string()
    };
    Some(help)
}

/// The settings each subcommand ignores, hidden from its `--help`.
pub const UNUSED: &[(&str, &[&str])] = &[
    (
        "status",
        &[
            "manifest_url",
            "channel",
            "offline_dir",
            "variant",
            "trusted_key",
            "ui_version",
            "lock_timeout",
        ],
    ),
    ("verify", &["variant", "ui_version"]),
    (
        "rollback",
        &[
            "manifest_url",
            "channel",
            "offline_dir",
            "variant",
            "trusted_key",
            "ui_version",
        ],
    ),
    (
        "gc",
        &[
            "manifest_url",
            "channel",
            "offline_dir",
            "variant",
            "trusted_key",
            "ui_version",
        ],
    ),
    ("self-update", &["variant", "ui_version"]),
];

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the hardware profile and every variant's verdict; install nothing.
    Detect,
    /// Make a verified backend for this machine ready and print where it is.
    Ensure,
    /// Show installed versions, the current one and the cache size.
    Status,
    /// Re-hash the current install's files against its signed index.
    Verify(VerifyArgs),
    /// Fetch and stage a newer compatible backend (by delta when possible); the next
    /// `ensure` makes it current.
    Update(UpdateArgs),
    /// Make the previous install current again and never choose the current one again
    /// (`--allow` lifts that).
    Rollback(RollbackArgs),
    /// Delete old installs and stale downloads (keeps the current and previous ones).
    Gc(GcArgs),
    /// Replace this binary with the newer signed build the manifest lists.
    SelfUpdate(SelfUpdateArgs),
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Only say whether an update exists and how many bytes it needs.
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Rewrite only the damaged or missing files, each from the cheapest source that
    /// has its signed bytes: another install or a complete download in the cache,
    /// then the offline folder, then the repository (only the needed byte ranges of
    /// the archive; the whole archive if the server ignores Range). Files the index
    /// does not list are reported, never removed.
    #[arg(long)]
    pub repair: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Why (recorded; e.g. "health check failed").
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// Instead of rolling back: let an install rolled back before (named
    /// `<version>-<variant>`, as `status` lists it) be chosen again.
    #[arg(long, value_name = "VERSION-VARIANT", conflicts_with = "reason")]
    pub allow: Option<String>,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// How many installs to keep (the current, previous and staged ones always stay).
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub keep: usize,
}

/// `self-update`'s flags.
#[derive(Debug, Args)]
pub struct SelfUpdateArgs {
    /// Only say whether a newer build is available; replace nothing.
    #[arg(long)]
    pub check: bool,
}

/// The settings every command shares; each has an environment variable, and the
/// repository, channel and keys may also come from `release.json` beside the binary.
#[derive(Debug, Args, Default)]
pub struct SettingsArgs {
    /// Channel manifest URL (https://, http://, file://) or repository root
    /// [default: release.json beside this executable].
    #[arg(long, global = true, env = env::MANIFEST_URL, value_name = "URL")]
    pub manifest_url: Option<String>,
    /// Release channel [default: release.json's, else stable].
    #[arg(long, global = true, env = env::CHANNEL, value_name = "NAME")]
    pub channel: Option<String>,
    /// Where installs and downloads live [default: <data dir>/PEFT Studio/backend].
    #[arg(long, global = true, env = env::CACHE_DIR, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// A pre-fetched bundle folder: the folder made by `peft-release offline`, or a
    /// folder holding it up to two levels below (e.g. the USB stick); no network is touched.
    #[arg(long, global = true, env = env::OFFLINE_DIR, value_name = "DIR")]
    pub offline_dir: Option<PathBuf>,
    /// Force a variant id, or `auto`.
    #[arg(long, global = true, env = env::BACKEND_VARIANT, value_name = "ID")]
    pub variant: Option<String>,
    /// A minisign public key (file path or key line) trusted instead of the built-in ones.
    #[arg(long, global = true, env = env::TRUSTED_KEY, value_name = "KEY")]
    pub trusted_key: Option<String>,
    /// The UI version asking; only releases whose ui_compat admits it are chosen.
    #[arg(long, global = true, env = env::UI_VERSION, value_name = "SEMVER")]
    pub ui_version: Option<String>,
    /// Seconds to wait for another instance to release the cache.
    #[arg(long, global = true, env = env::LOCK_TIMEOUT, default_value_t = 120, value_name = "SECONDS")]
    pub lock_timeout: u64,
}
