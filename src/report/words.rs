//! What every format says the same way: the header's facts, the freeze's
//! milestones and verdict, a run's heading, lag and writes at a moment.

use chrono::{DateTime, Utc};

use super::fmt::{self, clock, clock_ms, duration_ms, int};
use super::model::*;

pub fn operator(op: &Operator) -> String {
    let mut s = match (&op.user, &op.host) {
        (Some(u), Some(h)) => format!("{u}@{h}"),
        (Some(u), None) => u.clone(),
        (None, Some(h)) => format!("on {h}"),
        (None, None) => String::new(),
    };
    // SSH_CLIENT is "address port port": the address says where from.
    if let Some(c) = op
        .ssh_client
        .as_deref()
        .and_then(|c| c.split_whitespace().next())
    {
        s.push_str(&format!(" (SSH from {c})"));
    }
    s.trim().to_string()
}

pub fn endpoint(e: &EndpointReport) -> String {
    let mut s = format!("{} — {}", e.label, e.describe);
    if let Some(v) = &e.server_version {
        s.push_str(&format!(", PostgreSQL {v}"));
    }
    if !e.hosts.is_empty() {
        s.push_str(&format!(" (hosts used: {})", e.hosts.join(", ")));
    }
    s
}

pub fn kube(k: &crate::session::KubeInfo) -> String {
    let mut s = format!(
        "context {}, namespace {}, deployment{} {}",
        k.context,
        k.namespace,
        if k.deployments.len() == 1 { "" } else { "s" },
        k.deployments.join(", ")
    );
    if let (Some(obj), Some(key)) = (&k.config_object, &k.config_key) {
        s.push_str(&format!("; switch {obj} key {key}"));
    }
    s
}

pub fn segment(s: &Segment) -> String {
    format!(
        "{} {} → {} (cutover {}{}): {}",
        if s.resumed { "resumed" } else { "started" },
        clock(s.started),
        clock(s.last),
        s.tool_version,
        if s.read_only { ", read-only" } else { "" },
        s.ended.as_deref().map_or_else(
            || "no end recorded (a crash or a lost connection)".to_string(),
            |e| format!("ended: {e}")
        )
    )
}

/// The freeze's milestones, each with its time since the privileges were taken.
pub fn milestones(f: &FreezeWindow) -> Vec<(DateTime<Utc>, String)> {
    let mut m = vec![(
        f.from,
        match &f.read_only_role {
            Some(role) => format!(
                "writes refused on the {}: the clients' config switched to read-only role \
                 {role} (from {})",
                f.side.as_str(),
                f.roles.join(", ")
            ),
            None => format!(
                "writes refused on the {}: {} privilege{} of {} taken",
                f.side.as_str(),
                f.privileges,
                if f.privileges == 1 { "" } else { "s" },
                f.roles.join(", ")
            ),
        },
    )];
    if let Some((at, lsn)) = &f.proven {
        m.push((*at, format!("proven frozen; WAL at {lsn}")));
    }
    if let Some(at) = f.switched {
        m.push((at, "database config switched".into()));
    }
    if let Some(at) = f.budget_exceeded {
        m.push((at, format!("past the {} s budget", f.budget_secs)));
    }
    if let Some(at) = f.app_on_target {
        m.push((
            at,
            "the app seen writing to the target: window closed".into(),
        ));
    }
    if let Some(at) = f.unfrozen {
        m.push((
            at,
            if f.read_only_role.is_some() {
                "the clients' config put back: writes again (unfrozen)".into()
            } else {
                "writes given back (unfrozen)".into()
            },
        ));
    }
    for (stopped, resumed) in &f.console_down {
        m.push((*stopped, "the console stopped, writes still frozen".into()));
        if let Some(at) = resumed {
            m.push((
                *at,
                format!(
                    "the console resumed, {} later",
                    duration_ms((*at - *stopped).num_milliseconds())
                ),
            ));
        }
    }
    if f.open {
        m.push((f.until, "the log ends with writes still frozen".into()));
    }
    m.sort_by_key(|(at, _)| *at);
    m
}

pub fn verdict(f: &FreezeWindow) -> String {
    let ms = f.duration_ms();
    let budget = f.budget_secs as i64 * 1000;
    let share = if budget > 0 {
        format!(" ({} %)", ms * 100 / budget)
    } else {
        String::new()
    };
    format!(
        "{} {} of the {} s budget{share}{}",
        if f.within_budget() { "✔" } else { "✖" },
        duration_ms(ms),
        f.budget_secs,
        if f.within_budget() {
            ": within budget"
        } else {
            ": OVER BUDGET"
        }
    )
}

pub fn witness(w: &crate::session::AppWitness) -> String {
    let mut s = format!(
        "The app pods measured {} failed writes",
        int(w.failed as i64)
    );
    if let Some(ms) = w.failure_window_ms {
        s.push_str(&format!(", a write-failure window of {}", duration_ms(ms)));
    }
    if let Some(ms) = w.source_to_target_ms {
        s.push_str(&format!(
            ", {} from the last write acknowledged on the source to the first on the target",
            duration_ms(ms)
        ));
    }
    s.push('.');
    s
}

pub fn run_head(run: &RunReport) -> String {
    format!(
        "{}{} — run {}, {} → {} ({}), {}",
        run.key.map(|k| format!("[{k}] ")).unwrap_or_default(),
        run.title(),
        run.id,
        clock_ms(run.started),
        run.finished.map_or("—".into(), clock_ms),
        run.duration_ms().map_or("—".into(), duration_ms),
        run.result.word()
    )
}

/// Lag and writes per second at `t`, as cells.
pub fn at_time(r: &Report, t: DateTime<Utc>) -> (String, String, String) {
    const AGE: i64 = 5_000;
    // A slot without its consumer (the subscription stopped) only grows: not lag.
    let lag = fmt::value_at(&r.lag, t, AGE, |p| (p.at, Some((p.bytes, p.active)))).map_or(
        "—".into(),
        |(b, active)| match (b, active) {
            (Some(b), true) => fmt::bytes(b),
            (Some(_), false) => "stopped".into(),
            (None, _) => "—".into(),
        },
    );
    let w = |s: &[Point<f64>]| {
        fmt::value_at(s, t, AGE, |p| (p.at, p.value)).map_or("—".into(), |v| int(v.round() as i64))
    };
    (lag, w(&r.writes_source), w(&r.writes_target))
}

pub fn anomaly_when(a: &Anomaly) -> String {
    match (a.at, a.until) {
        (Some(a), Some(b)) => format!("{}–{}", clock(a), clock(b)),
        (Some(a), None) => clock(a),
        _ => "—".into(),
    }
}

/// A run left in flight, in the checkpoint's entry: the step, how the
/// console ended, and what the servers said after.
pub fn in_flight(f: &InFlightReport) -> String {
    let step = match &f.step {
        Some((i, title)) => format!("step {} ({title})", i + 1),
        None => "between steps".to_string(),
    };
    format!("{step}, {}", in_flight_end(f))
}

/// A run left in flight, in the anomalies: the run named first.
pub fn in_flight_anomaly(run: &RunReport, f: &InFlightReport) -> String {
    let step = match &f.step {
        Some((i, title)) => format!("step {}, {title}", i + 1),
        None => "between steps".to_string(),
    };
    format!(
        "{}{} was in flight ({step}) {}",
        run.key.map(|k| format!("{k} ")).unwrap_or_default(),
        run.title(),
        in_flight_end(f)
    )
}

/// `when the console ended (…) at …; the resumed console asked the servers: …`.
fn in_flight_end(f: &InFlightReport) -> String {
    let ended = match &f.ended {
        Some(reason) => format!("when the console ended ({reason}) at {}", clock(f.ended_at)),
        None => format!(
            "when the console ended without a word (no end recorded: killed, a crash or a \
             lost connection) at {}",
            clock(f.ended_at)
        ),
    };
    let after = match (&f.found, f.resumed, &f.step) {
        (Some((_, outcome, evidence)), _, _) => format!(
            "the resumed console asked the servers: {} — {evidence}",
            outcome.word()
        ),
        (None, None, _) => "the log was not resumed: what became of it is unknown".into(),
        (None, Some(_), None) => "no step was under way: the resumed console asked nothing".into(),
        (None, Some(_), Some(_)) => {
            "the resumed console recorded no answer from the servers: what became of it is \
             unknown"
                .into()
        }
    };
    format!("{ended}; {after}")
}

/// The config as the header names it: its path and fingerprint.
pub fn config(r: &Report) -> Option<String> {
    match (&r.config_path, &r.config_fingerprint) {
        (Some(p), Some(f)) => Some(format!("{p} ({f})")),
        (Some(p), None) => Some(p.clone()),
        (None, Some(f)) => Some(f.clone()),
        (None, None) => None,
    }
}

/// The report the console's last checkpoint wrote, or could not.
pub fn report_written((at, path, error): &(DateTime<Utc>, String, Option<String>)) -> String {
    match error {
        None => format!("written by the console to {path} at {}", clock(*at)),
        Some(e) => format!("could not be written to {path} at {}: {e}", clock(*at)),
    }
}
