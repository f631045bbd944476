//! `maribank-etl migrate`: rewrites a warehouse written by an earlier version in the current
//! layout (partition columns in folder names only), idempotently and resumably.

use std::process::ExitCode;

use clap::Args;

use super::output::{errln, outln};
use crate::ExitStatus;
use crate::load::{Destination, DestinationOptions};

/// Options of `migrate`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  maribank-etl migrate --dest ./warehouse\n  maribank-etl migrate --dest s3://bucket/maribank --dry-run"
)]
pub struct MigrateArgs {
    /// The warehouse: `./warehouse`, `file:///data/wh` or `s3://bucket/prefix`.
    #[arg(long)]
    pub dest: String,
    /// Only count the files that would be rewritten.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs `migrate`.
pub async fn run(args: MigrateArgs) -> ExitCode {
    let dest = match Destination::parse(&args.dest, &DestinationOptions::default()) {
        Ok(d) => d,
        Err(e) => {
            let shown = crate::redact::destination(&args.dest);
            errln!("error: destination `{shown}`: {e}");
            return ExitCode::from(ExitStatus::Usage as u8);
        }
    };
    let mut total = 0;
    for table in crate::registry::all_tables() {
        match crate::load::migrate::migrate_table(&dest, table, args.dry_run).await {
            Ok(m) => {
                total += m.rewritten;
                if m.files > 0 {
                    let verb = if args.dry_run {
                        "to rewrite"
                    } else {
                        "rewritten"
                    };
                    outln!(
                        "{:<18} {:>6} files, {:>6} {verb}, {} crash leftovers removed",
                        m.table,
                        m.files,
                        m.rewritten,
                        m.leftovers_removed
                    );
                }
            }
            Err(e) => {
                errln!("error: {}: {e} (rerun `migrate` to resume)", table.name);
                return ExitCode::from(ExitStatus::Transient as u8);
            }
        }
    }
    if total == 0 {
        outln!("{}: already in the current layout", dest.url);
    }
    ExitCode::SUCCESS
}
