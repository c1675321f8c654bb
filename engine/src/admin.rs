//! Admin endpoints (admin keys only): `GET /admin/usage`, and the
//! ledger's health in `/metrics`.

use crate::app::Gateway;
use crate::error::GatewayError;
use crate::ledger::UsageLedger;
use crate::pipeline::{fail, presented_key, Served};
use crate::state::ActivePolicy;
use crate::translate::ClientFormat;
use crate::usage_cli::Source;
use crate::{auth, respond};
use pingora::protocols::http::ServerSession;
use std::sync::atomic::Ordering::Relaxed;

/// `GET /admin/usage?since=24h&until=now&by=team&format=json|table`
pub(crate) async fn usage(
    session: &mut ServerSession,
    active: &ActivePolicy,
    rid: &str,
    gw: &Gateway,
) -> Served {
    let policy = active.snapshot.policy();
    if let Err(e) = auth::authenticate_admin(policy, presented_key(session)) {
        return fail(session, "admin", e, rid, ClientFormat::OpenAi).await;
    }
    let query = session.req_header().uri.query().unwrap_or("").to_string();
    let param =
        |name: &str, default: &str| url_param(&query, name).unwrap_or_else(|| default.to_string());
    let (since, until, by, format) = (
        param("since", "30d"),
        param("until", "now"),
        param("by", "key"),
        param("format", "json"),
    );
    // With a fleet ledger, the report is the fleet's.
    let pg = policy.tenancy.ledger.postgres.as_str();
    let source = match (&gw.ledger_path, pg) {
        (_, url) if !url.is_empty() => Source::Postgres(url.to_string()),
        (Some(path), _) => Source::File(path.clone()),
        (None, _) => {
            let e =
                GatewayError::NotImplemented("no usage ledger is configured (usage.ledger)".into());
            return fail(session, "admin", e, rid, ClientFormat::OpenAi).await;
        }
    };
    // Ledger reads block: off the worker's event loop.
    let result = tokio::task::spawn_blocking(move || {
        crate::usage_cli::summary(&source, &since, &until, &by, &format).map(|t| (t, format))
    })
    .await;
    match result {
        Ok(Ok((text, format))) => {
            let ct = if format == "json" {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            };
            respond::text(session, 200, ct, text.into_bytes(), rid).await;
            Served::plain("admin", 200)
        }
        Ok(Err(msg)) => {
            fail(
                session,
                "admin",
                GatewayError::BadRequest(msg),
                rid,
                ClientFormat::OpenAi,
            )
            .await
        }
        Err(e) => {
            fail(
                session,
                "admin",
                GatewayError::Internal(e.to_string()),
                rid,
                ClientFormat::OpenAi,
            )
            .await
        }
    }
}

/// One query parameter, percent-decoded (`+` as a space), at most
/// [`MAX_PARAM`] bytes of it kept.
pub fn url_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| {
            let v = v.replace('+', " ");
            let decoded = percent_encoding::percent_decode_str(&v).decode_utf8_lossy();
            crate::pipeline::clip(&decoded, MAX_PARAM).to_string()
        })
    })
}

/// Longest query parameter value kept: every valid one is a few words.
const MAX_PARAM: usize = 256;

/// The ledger's counters, Prometheus text.
pub fn ledger_metrics(l: &UsageLedger) -> String {
    let s = &l.stats;
    format!(
        "# HELP switchyard_usage_records_written_total Usage records committed to the ledger.\n\
         # TYPE switchyard_usage_records_written_total counter\n\
         switchyard_usage_records_written_total {}\n\
         # HELP switchyard_usage_dropped_total Usage records lost: queue full or ledger unwritable.\n\
         # TYPE switchyard_usage_dropped_total counter\n\
         switchyard_usage_dropped_total {}\n\
         # HELP switchyard_usage_write_errors_total Failed ledger writes (retried).\n\
         # TYPE switchyard_usage_write_errors_total counter\n\
         switchyard_usage_write_errors_total {}\n\
         # HELP switchyard_usage_queued Usage records waiting for the writer.\n\
         # TYPE switchyard_usage_queued gauge\n\
         switchyard_usage_queued {}\n",
        s.written.load(Relaxed),
        s.dropped.load(Relaxed),
        s.write_errors.load(Relaxed),
        s.queued.load(Relaxed),
    ) + &l.ship_stats().map(|s| format!(
        "# HELP switchyard_usage_shipped_total Usage records shipped to PostgreSQL.\n\
         # TYPE switchyard_usage_shipped_total counter\n\
         switchyard_usage_shipped_total {}\n\
         # HELP switchyard_usage_spooled Usage records in the local ledger not yet in PostgreSQL.\n\
         # TYPE switchyard_usage_spooled gauge\n\
         switchyard_usage_spooled {}\n\
         # HELP switchyard_usage_ship_errors_total Failed attempts to ship to PostgreSQL (retried).\n\
         # TYPE switchyard_usage_ship_errors_total counter\n\
         switchyard_usage_ship_errors_total {}\n\
         # HELP switchyard_usage_postgres_connected Whether the shipper holds a PostgreSQL connection.\n\
         # TYPE switchyard_usage_postgres_connected gauge\n\
         switchyard_usage_postgres_connected {}\n",
        s.shipped.load(Relaxed),
        s.spooled.load(Relaxed),
        s.errors.load(Relaxed),
        u8::from(s.connected.load(Relaxed)),
    )).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_parameters_decode_without_panicking_on_any_input() {
        use super::url_param;
        assert_eq!(
            url_param("since=24h&by=team", "by").as_deref(),
            Some("team")
        );
        assert_eq!(url_param("a=%41%42", "a").as_deref(), Some("AB"));
        assert_eq!(url_param("a=x+y", "a").as_deref(), Some("x y"));
        // A `%` before a multi-byte character once sliced inside it.
        assert_eq!(url_param("a=%a\u{e9}", "a").as_deref(), Some("%a\u{e9}"));
        assert_eq!(url_param("a=%ff", "a").as_deref(), Some("\u{fffd}"));
        assert_eq!(url_param("a=%", "a").as_deref(), Some("%"));
        assert_eq!(
            url_param(&format!("a={}", "x".repeat(10_000)), "a")
                .unwrap()
                .len(),
            256
        );
        assert_eq!(url_param("b=1", "a"), None);
        let q = "since=2026-11-01T00%3A00%3A00Z&by=team&x";
        assert_eq!(url_param(q, "since").unwrap(), "2026-11-01T00:00:00Z");
        assert_eq!(url_param(q, "x").unwrap(), "");
        assert_eq!(url_param("a=a%2", "a").unwrap(), "a%2");
    }
}
