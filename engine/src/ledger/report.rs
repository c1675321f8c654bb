//! Reading the ledger back: spend and tokens over a time range, grouped
//! by key, user, team, model, alias, provider, task, route or label. Used by
//! `switchyard usage` and `GET /admin/usage`.

use super::LedgerError;
use rusqlite::Connection;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Key,
    User,
    Team,
    Model,
    Alias,
    Provider,
    Task,
    Route,
    Label,
}

impl GroupBy {
    pub fn parse(s: &str) -> Result<GroupBy, String> {
        Ok(match s {
            "key" => GroupBy::Key,
            "user" => GroupBy::User,
            "team" => GroupBy::Team,
            "model" => GroupBy::Model,
            "alias" => GroupBy::Alias,
            "provider" => GroupBy::Provider,
            "task" => GroupBy::Task,
            "route" => GroupBy::Route,
            "label" => GroupBy::Label,
            other => {
                return Err(format!(
                    "cannot group by {other:?}: expected key, user, team, model, alias, provider, task, route or label"
                ))
            }
        })
    }

    /// The column: a fixed name, never user text.
    fn column(self) -> &'static str {
        match self {
            GroupBy::Key => "key",
            GroupBy::User => "user",
            GroupBy::Team => "team",
            GroupBy::Model => "model",
            GroupBy::Alias => "alias",
            GroupBy::Provider => "provider",
            GroupBy::Task => "task",
            GroupBy::Route => "route",
            GroupBy::Label => "route_label",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Row {
    pub group: String,
    pub requests: u64,
    pub errors: u64,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    /// In currency units, from exact nano-unit sums.
    pub cost: f64,
    pub cost_nanos: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub since_ms: i64,
    pub until_ms: i64,
    pub by: &'static str,
    pub rows: Vec<Row>,
    pub total: Row,
}

pub fn summarise(
    conn: &Connection,
    since_ms: i64,
    until_ms: i64,
    by: GroupBy,
) -> Result<Report, LedgerError> {
    let sql = format!(
        "SELECT {c}, COUNT(*), SUM(status >= 400), SUM(input_tokens), SUM(cached_input_tokens), \
         SUM(output_tokens), SUM(reasoning_tokens), SUM(cost_nanos) \
         FROM usage WHERE ts_ms >= ?1 AND ts_ms < ?2 GROUP BY {c} ORDER BY SUM(cost_nanos) DESC, {c}",
        c = by.column()
    );
    let e = |source| LedgerError::Sqlite {
        path: conn.path().unwrap_or("?").to_string(),
        source,
    };
    let mut q = conn.prepare(&sql).map_err(e)?;
    let n = |r: &rusqlite::Row<'_>, i| {
        r.get::<_, Option<i64>>(i)
            .map(|v| v.unwrap_or(0).max(0) as u64)
    };
    let rows = q
        .query_map([since_ms, until_ms], |r| {
            let cost_nanos = n(r, 7)?;
            Ok(Row {
                group: r.get(0)?,
                requests: n(r, 1)?,
                errors: n(r, 2)?,
                input_tokens: n(r, 3)?,
                cached_input_tokens: n(r, 4)?,
                output_tokens: n(r, 5)?,
                reasoning_tokens: n(r, 6)?,
                cost: cost_nanos as f64 / 1e9,
                cost_nanos,
            })
        })
        .map_err(e)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(e)?;
    Ok(report(rows, since_ms, until_ms, by))
}

/// The same report from the fleet's ledger in PostgreSQL.
pub fn summarise_pg(
    client: &mut postgres::Client,
    since_ms: i64,
    until_ms: i64,
    by: GroupBy,
) -> Result<Report, LedgerError> {
    // `user` is a reserved word in PostgreSQL.
    let c = match by {
        GroupBy::User => "\"user\"",
        other => other.column(),
    };
    let sql = format!(
        "SELECT {c}, COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END)::BIGINT, \
         SUM(input_tokens)::BIGINT, SUM(cached_input_tokens)::BIGINT, SUM(output_tokens)::BIGINT, \
         SUM(reasoning_tokens)::BIGINT, SUM(cost_nanos)::BIGINT \
         FROM switchyard_usage WHERE ts_ms >= $1 AND ts_ms < $2 GROUP BY {c} ORDER BY SUM(cost_nanos) DESC, {c}"
    );
    let found = client
        .query(sql.as_str(), &[&since_ms, &until_ms])
        .map_err(|e| {
            LedgerError::Postgres(
                e.as_db_error()
                    .map_or_else(|| "query failed".to_string(), |d| d.message().to_string()),
            )
        })?;
    let n = |r: &postgres::Row, i: usize| {
        r.try_get::<_, Option<i64>>(i)
            .ok()
            .flatten()
            .unwrap_or(0)
            .max(0) as u64
    };
    let rows = found
        .iter()
        .map(|r| {
            let cost_nanos = n(r, 7);
            Row {
                group: r.try_get(0).unwrap_or_default(),
                requests: n(r, 1),
                errors: n(r, 2),
                input_tokens: n(r, 3),
                cached_input_tokens: n(r, 4),
                output_tokens: n(r, 5),
                reasoning_tokens: n(r, 6),
                cost: cost_nanos as f64 / 1e9,
                cost_nanos,
            }
        })
        .collect();
    Ok(report(rows, since_ms, until_ms, by))
}

fn report(rows: Vec<Row>, since_ms: i64, until_ms: i64, by: GroupBy) -> Report {
    let mut total = Row {
        group: "total".into(),
        ..Row::default()
    };
    for r in &rows {
        total.requests = total.requests.saturating_add(r.requests);
        total.errors = total.errors.saturating_add(r.errors);
        total.input_tokens = total.input_tokens.saturating_add(r.input_tokens);
        total.cached_input_tokens = total
            .cached_input_tokens
            .saturating_add(r.cached_input_tokens);
        total.output_tokens = total.output_tokens.saturating_add(r.output_tokens);
        total.reasoning_tokens = total.reasoning_tokens.saturating_add(r.reasoning_tokens);
        total.cost_nanos = total.cost_nanos.saturating_add(r.cost_nanos);
    }
    total.cost = total.cost_nanos as f64 / 1e9;
    Report {
        since_ms,
        until_ms,
        by: by.column(),
        rows,
        total,
    }
}

impl Report {
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// A fixed-width table for terminals.
    pub fn table(&self) -> String {
        let ts = |ms: i64| {
            jiff::Timestamp::from_millisecond(ms)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| ms.to_string())
        };
        let mut out = format!(
            "usage from {} to {}, by {}\n\n",
            ts(self.since_ms),
            ts(self.until_ms),
            self.by
        );
        let header = [
            self.by,
            "requests",
            "errors",
            "input",
            "cached",
            "output",
            "reasoning",
            "cost",
        ];
        let mut lines: Vec<[String; 8]> = vec![header.map(str::to_string)];
        for r in self.rows.iter().chain(std::iter::once(&self.total)) {
            let group = if r.group.is_empty() {
                "-".to_string()
            } else {
                r.group.clone()
            };
            lines.push([
                group,
                r.requests.to_string(),
                r.errors.to_string(),
                r.input_tokens.to_string(),
                r.cached_input_tokens.to_string(),
                r.output_tokens.to_string(),
                r.reasoning_tokens.to_string(),
                format!("{:.6}", r.cost),
            ]);
        }
        let widths: Vec<usize> = (0..8)
            .map(|i| {
                lines
                    .iter()
                    .map(|l| l[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for (n, l) in lines.iter().enumerate() {
            if n == lines.len() - 1 {
                let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
                out.push_str(&rule.join("  "));
                out.push('\n');
            }
            let cells: Vec<String> = l
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if i == 0 {
                        format!("{c:<w$}", w = widths[i])
                    } else {
                        format!("{c:>w$}", w = widths[i])
                    }
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}

/// `24h`, `7d`, `30m` (ago) or an RFC 3339 time → Unix ms.
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, String> {
    let text = text.trim();
    if text == "now" {
        return Ok(now_ms);
    }
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(t.as_millisecond());
    }
    if let Ok(d) = humantime::parse_duration(text) {
        return Ok(now_ms - d.as_millis() as i64);
    }
    Err(format!(
        "{text:?} is neither a duration ago (24h, 7d) nor an RFC 3339 time (2026-11-01T00:00:00Z)"
    ))
}
