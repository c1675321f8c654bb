//! Scripted faults: a schedule of steps, each lasting a number of requests
//! or a span of time, plus faults bound to particular upstream keys.
//!
//! Text form (for `--schedule`): steps separated by `;`, each
//! `<length>(<fault>,<fault>…)` where length is `3x` (requests), `10s` or
//! `500ms` (time, from the step's first request) or `*` (for ever), and a
//! fault is `status=503`, `retry-after=1`, `latency-ms=30000`,
//! `drop=before-headers`, `drop-after-chunks=5`, `chunk-delay-ms=20`,
//! `code=insufficient_quota` or `ok`. After the last step, requests are
//! served normally.
//!
//! `3x(status=429,retry-after=1);10s(status=503);*(ok)`

use super::Faults;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepLength {
    Requests(u64),
    For(Duration),
    Forever,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub length: StepLength,
    pub faults: Faults,
}

impl Step {
    pub fn requests(n: u64, faults: Faults) -> Step {
        Step {
            length: StepLength::Requests(n),
            faults,
        }
    }
    pub fn for_ms(ms: u64, faults: Faults) -> Step {
        Step {
            length: StepLength::For(Duration::from_millis(ms)),
            faults,
        }
    }
    pub fn forever(faults: Faults) -> Step {
        Step {
            length: StepLength::Forever,
            faults,
        }
    }
}

#[derive(Default)]
pub struct Schedule {
    steps: Vec<Step>,
    state: Mutex<(usize, u64, Option<Instant>)>,
}

impl Schedule {
    pub fn new(steps: Vec<Step>) -> Self {
        Schedule {
            steps,
            state: Mutex::new((0, 0, None)),
        }
    }

    /// The faults for the next request, if a step is active.
    pub fn next(&self) -> Option<Faults> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        loop {
            let (index, served, started) = *st;
            let step = self.steps.get(index)?;
            let started = started.unwrap_or(now);
            let over = match step.length {
                StepLength::Requests(n) => served >= n,
                StepLength::For(d) => served > 0 && now.duration_since(started) >= d,
                StepLength::Forever => false,
            };
            if over {
                *st = (index + 1, 0, None);
                continue;
            }
            *st = (index, served + 1, Some(started));
            return Some(step.faults.clone());
        }
    }
}

pub fn parse(text: &str) -> Result<Vec<Step>, String> {
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_step)
        .collect()
}

fn parse_step(s: &str) -> Result<Step, String> {
    let (length, rest) = s
        .split_once('(')
        .ok_or_else(|| format!("{s:?}: expected <length>(<faults>)"))?;
    let body = rest
        .strip_suffix(')')
        .ok_or_else(|| format!("{s:?}: missing `)`"))?;
    let length = match length.trim() {
        "*" => StepLength::Forever,
        l if l.ends_with('x') => StepLength::Requests(
            l[..l.len() - 1]
                .parse()
                .map_err(|_| format!("{l:?}: bad request count"))?,
        ),
        l if l.ends_with("ms") => StepLength::For(Duration::from_millis(
            l[..l.len() - 2]
                .parse()
                .map_err(|_| format!("{l:?}: bad duration"))?,
        )),
        l if l.ends_with('s') => StepLength::For(Duration::from_secs_f64(
            l[..l.len() - 1]
                .parse()
                .map_err(|_| format!("{l:?}: bad duration"))?,
        )),
        l => return Err(format!("{l:?}: length must be Nx, Ns, Nms or *")),
    };
    let mut f = Faults {
        tokens_per_chunk: 1,
        ..Faults::default()
    };
    for item in body
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty() && *i != "ok")
    {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?}: expected name=value"))?;
        let num = || {
            v.parse::<u64>()
                .map_err(|_| format!("{item:?}: not a number"))
        };
        match k {
            "status" => f.status = Some(num()? as u16),
            "retry-after" => f.retry_after = Some(v.to_string()),
            "latency-ms" => f.latency_ms = num()?,
            "chunk-delay-ms" => f.chunk_delay_ms = num()?,
            "drop" if v == "before-headers" => f.drop_before_headers = true,
            "drop-after-chunks" => f.drop_after_chunks = Some(num()? as usize),
            "code" => f.error_code = Some(v.to_string()),
            _ => return Err(format!("{item:?}: unknown fault")),
        }
    }
    Ok(Step { length, faults: f })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_runs_steps_in_order() {
        let steps = parse("2x(status=429,retry-after=1); 50ms(status=503); *(ok)").unwrap();
        assert_eq!(steps.len(), 3);
        let s = Schedule::new(steps);
        let statuses: Vec<_> = (0..3).map(|_| s.next().unwrap().status).collect();
        assert_eq!(statuses, [Some(429), Some(429), Some(503)]);
        assert_eq!(s.next().unwrap().status, Some(503));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(s.next().unwrap().status, None);
        assert!(parse("3(status=1)").is_err());
        assert!(parse("3x(bogus=1)").is_err());
        let done = Schedule::new(parse("1x(status=500)").unwrap());
        assert!(done.next().is_some());
        assert!(done.next().is_none(), "past the last step: normal service");
    }
}
