//! `switchyard usage`: the ledger, summarised, from the command line.

use crate::ledger::{report, sqlite};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct UsageArgs {
    /// The ledger file; default: the policy's `usage.ledger`.
    #[arg(long)]
    pub ledger: Option<PathBuf>,
    /// A policy (YAML or snapshot) naming the ledger.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// The fleet's ledger in PostgreSQL (`usage.postgres`) instead of a
    /// local file.
    #[arg(long)]
    pub postgres: Option<String>,
    /// Start: a duration ago (`24h`, `7d`) or an RFC 3339 time.
    #[arg(long, default_value = "30d")]
    pub since: String,
    /// End: `now`, a duration ago, or an RFC 3339 time.
    #[arg(long, default_value = "now")]
    pub until: String,
    /// key, user, team, model, alias, provider, task, route (router/rule)
    /// or label (the classifier's label).
    #[arg(long, default_value = "key")]
    pub by: String,
    /// table or json.
    #[arg(long, default_value = "table")]
    pub format: String,
}

pub fn run(a: UsageArgs) -> Result<(), String> {
    if let Some(url) = &a.postgres {
        let source = Source::Postgres(url.clone());
        print!(
            "{}",
            summary(&source, &a.since, &a.until, &a.by, &a.format)?
        );
        return Ok(());
    }
    let path = match (&a.ledger, &a.policy) {
        (Some(p), _) => p.clone(),
        (None, Some(policy)) => {
            let loaded = policy::load_path(policy).map_err(|e| e.to_string())?;
            let p = loaded.snapshot.policy().tenancy.ledger.path.to_string();
            if p.is_empty() {
                return Err("the policy configures no usage ledger (usage.ledger)".into());
            }
            PathBuf::from(p)
        }
        (None, None) => PathBuf::from("switchyard-usage.db"),
    };
    if !path.exists() {
        return Err(format!("no usage ledger at {}", path.display()));
    }
    let text = summary(&Source::File(path), &a.since, &a.until, &a.by, &a.format)?;
    print!("{text}");
    Ok(())
}

/// Where a report reads usage from.
#[derive(Debug, Clone)]
pub enum Source {
    /// One replica's SQLite ledger.
    File(PathBuf),
    /// The fleet's ledger (a URL).
    Postgres(String),
}

/// The report as text (shared with `GET /admin/usage`).
pub fn summary(
    source: &Source,
    since: &str,
    until: &str,
    by: &str,
    format: &str,
) -> Result<String, String> {
    let now = jiff::Timestamp::now().as_millisecond();
    let since = report::parse_time(since, now)?;
    let until = report::parse_time(until, now)?;
    // A report up to "now" includes this very millisecond.
    let until = if until >= now { now + 1 } else { until };
    let by = report::GroupBy::parse(by)?;
    let r = match source {
        Source::File(path) => {
            let conn = sqlite::open_read(path).map_err(|e| e.to_string())?;
            report::summarise(&conn, since, until, by).map_err(|e| e.to_string())?
        }
        Source::Postgres(url) => {
            let mut client = crate::ledger::postgres::connect(url).map_err(|e| e.to_string())?;
            report::summarise_pg(&mut client, since, until, by).map_err(|e| e.to_string())?
        }
    };
    match format {
        "json" => Ok(r.json() + "\n"),
        "table" => Ok(r.table()),
        other => Err(format!("unknown format {other:?}: expected table or json")),
    }
}
