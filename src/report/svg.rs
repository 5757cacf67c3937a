//! The HTML report's charts, hand-built SVG strings: one time axis shared
//! by all of them (the session's first to last event), the checkpoints as
//! vertical lines, the freeze window shaded. No script: hover titles only.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::fmt::{self, clock};
use super::html::esc;
use super::model::*;

const W: f64 = 880.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 16.0;
/// Below the plot: time ticks, then the legend.
const BOTTOM: f64 = 48.0;

/// Points of a line without a gap.
type Stretch = Vec<(DateTime<Utc>, f64)>;

/// A chart's frame: the time axis and the value axis.
struct Frame {
    t0: DateTime<Utc>,
    span_ms: f64,
    top: f64,
    height: f64,
    y_max: f64,
    /// log10(1 + v): for rates spanning orders of magnitude.
    log: bool,
}

impl Frame {
    fn new(r: &Report, top: f64, height: f64, y_max: f64) -> Option<Frame> {
        let (t0, t1) = (r.first?, r.last?);
        Some(Frame {
            t0,
            span_ms: ((t1 - t0).num_milliseconds() as f64).max(1000.0),
            top,
            height,
            y_max: y_max.max(1.0),
            log: false,
        })
    }

    fn x(&self, t: DateTime<Utc>) -> f64 {
        let ms = (t - self.t0).num_milliseconds() as f64;
        LEFT + (W - LEFT - RIGHT) * (ms / self.span_ms).clamp(0.0, 1.0)
    }

    fn y(&self, v: f64) -> f64 {
        let share = if self.log {
            (1.0 + v.max(0.0)).log10() / (1.0 + self.y_max).log10()
        } else {
            v / self.y_max
        };
        self.bottom() - self.height * share.clamp(0.0, 1.0)
    }

    fn bottom(&self) -> f64 {
        self.top + self.height
    }

    fn total(&self) -> f64 {
        self.bottom() + BOTTOM
    }
}

/// A round step giving about `n` ticks up to `max`.
fn nice_step(max: f64, n: f64) -> f64 {
    let raw = (max / n).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// Byte steps in powers of two times 1, 2 or 5 of a binary unit.
fn nice_bytes(max: f64) -> f64 {
    let mut unit = 1.0;
    while max / unit >= 1024.0 {
        unit *= 1024.0;
    }
    nice_step(max / unit, 4.0) * unit
}

fn open(o: &mut String, id: &str, title: &str, f: &Frame) {
    let _ = write!(
        o,
        "<svg id=\"{id}\" class=\"chart\" viewBox=\"0 0 {W} {h:.0}\" role=\"img\" \
         aria-labelledby=\"{id}-title\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"{id}-title\">{}</title>",
        esc(title),
        h = f.total()
    );
}

/// Grid, value ticks (every `step`; on a log scale 0 and the powers of
/// ten), time ticks.
fn axes(o: &mut String, f: &Frame, step: f64, label: impl Fn(f64) -> String) {
    o.push_str("<g class=\"axis\">");
    // At most a dozen ticks, whatever the caller's step.
    let step = if step > 0.0 && f.y_max / step <= 12.0 {
        step
    } else {
        f.y_max / 4.0
    };
    let mut ticks = Vec::new();
    if f.log {
        ticks.push(0.0);
        let mut p = 10.0;
        while p <= f.y_max * 1.0001 {
            ticks.push(p);
            p *= 10.0;
        }
    } else {
        let mut v = 0.0;
        while v <= f.y_max * 1.0001 {
            ticks.push(v);
            v += step;
        }
    }
    for v in ticks {
        let y = f.y(v);
        let _ = write!(
            o,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"ytick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            esc(&label(v))
        );
    }
    let span_s = f.span_ms / 1000.0;
    let tick_s = [
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600,
    ]
    .into_iter()
    .find(|s| span_s / *s as f64 <= 9.0)
    .unwrap_or(43200) as i64;
    let first = (f.t0.timestamp() / tick_s + 1) * tick_s;
    let mut t = first;
    while ((t - f.t0.timestamp()) as f64) * 1000.0 <= f.span_ms {
        if let Some(at) = DateTime::from_timestamp(t, 0) {
            let x = f.x(at);
            let _ = write!(
                o,
                "<line class=\"tick\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{b:.1}\" y2=\"{b2:.1}\"/>\
                 <text class=\"xtick\" x=\"{x:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\">{}</text>",
                clock(at),
                b = f.bottom(),
                b2 = f.bottom() + 4.0,
                ty = f.bottom() + 17.0
            );
        }
        t += tick_s;
    }
    let _ = write!(
        o,
        "<line class=\"baseline\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{b:.1}\" y2=\"{b:.1}\"/></g>",
        W - RIGHT,
        b = f.bottom()
    );
}

/// The freeze windows shaded, their budget's end dashed.
fn freezes(o: &mut String, r: &Report, f: &Frame, label: bool) {
    for w in &r.freezes {
        let (x0, x1) = (f.x(w.from), f.x(w.until));
        let _ = write!(
            o,
            "<g class=\"freeze-window\"><title>{}</title><rect class=\"freeze\" x=\"{x0:.1}\" \
             y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"/>",
            esc(&format!(
                "write freeze on the {}: {}",
                w.side.as_str(),
                super::words::verdict(w)
            )),
            f.top,
            (x1 - x0).max(1.5),
            f.height
        );
        if label {
            let _ = write!(
                o,
                "<text class=\"freeze-label\" x=\"{:.1}\" y=\"{:.1}\">freeze {} of {} s</text>",
                x1 + 3.0,
                f.bottom() - 6.0,
                esc(&fmt::duration_ms(w.duration_ms())),
                w.budget_secs
            );
        }
        // Where the budget ran out, when the window went past it.
        let budget_end = w.from + chrono::Duration::seconds(w.budget_secs as i64);
        if label && budget_end <= w.until {
            let xb = f.x(budget_end);
            let _ = write!(
                o,
                "<line class=\"budget\" x1=\"{xb:.1}\" x2=\"{xb:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>\
                 <text class=\"budget-label\" x=\"{:.1}\" y=\"{:.1}\">budget {} s</text>",
                f.top,
                f.bottom(),
                xb + 3.0,
                f.top + 10.0,
                w.budget_secs
            );
        }
        o.push_str("</g>");
    }
}

/// Every checkpoint run as a vertical line; with `labels`, its key above,
/// staggered so close ones stay readable.
fn marks(o: &mut String, r: &Report, f: &Frame, labels: bool) {
    o.push_str("<g class=\"marks\">");
    let mut last_x = [f64::NEG_INFINITY; 4];
    for run in &r.runs {
        let x = f.x(run.started);
        let class = match run.result {
            RunResult::Ok => "mark ok",
            RunResult::Failed => "mark failed",
            RunResult::Unfinished => "mark open",
        };
        let key = run.key.unwrap_or("•");
        let _ = write!(
            o,
            "<g class=\"{class}\"><title>{}</title><line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{:.1}\" \
             y2=\"{:.1}\"/>",
            esc(&format!(
                "{} {} — {} {}",
                clock(run.started),
                run.title(),
                run.result.word(),
                run.duration_ms().map(fmt::duration_ms).unwrap_or_default()
            )),
            f.top - if labels { 4.0 } else { 0.0 },
            f.bottom()
        );
        if labels {
            // The first row whose last label is far enough left; when
            // none is (five runs within a few pixels), the label goes just
            // right of the row's last one rather than on top of it.
            let (row, lx) = match (0..4).find(|i| x - last_x[*i] >= 12.0) {
                Some(row) => (row, x),
                None => {
                    let row = (0..4)
                        .min_by(|a, b| last_x[*a].total_cmp(&last_x[*b]))
                        .unwrap_or(0);
                    (row, last_x[row] + 12.0)
                }
            };
            last_x[row] = lx;
            let _ = write!(
                o,
                "<text class=\"mark-label\" x=\"{lx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                f.top - 8.0 - 13.0 * (3 - row) as f64,
                esc(key)
            );
        }
        o.push_str("</g>");
    }
    o.push_str("</g>");
}

/// `points` as polylines, one per stretch without a gap.
fn polylines<'a>(
    o: &mut String,
    class: &str,
    f: &Frame,
    stretches: impl IntoIterator<Item = &'a [(DateTime<Utc>, f64)]>,
) {
    for s in stretches {
        if s.is_empty() {
            continue;
        }
        let pts: Vec<String> = s
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", f.x(*t), f.y(*v)))
            .collect();
        let pts = if pts.len() == 1 {
            // One sample: a short tick so it shows.
            let (t, v) = s[0];
            format!(
                "{:.1},{:.1} {:.1},{:.1}",
                f.x(t) - 1.5,
                f.y(v),
                f.x(t) + 1.5,
                f.y(v)
            )
        } else {
            pts.join(" ")
        };
        let _ = write!(o, "<polyline class=\"series {class}\" points=\"{pts}\"/>");
    }
}

fn legend(o: &mut String, f: &Frame, items: &[(&str, &str)]) {
    let mut x = LEFT;
    let y = f.bottom() + 36.0;
    for (class, label) in items.iter().filter(|(_, l)| !l.is_empty()) {
        o.push_str("<g class=\"legend\">");
        if !class.is_empty() {
            let _ = write!(
                o,
                "<line class=\"series {class}\" x1=\"{x:.1}\" x2=\"{:.1}\" y1=\"{y:.1}\" \
                 y2=\"{y:.1}\"/>",
                x + 18.0
            );
            x += 22.0;
        }
        let _ = write!(
            o,
            "<text x=\"{x:.1}\" y=\"{:.1}\">{}</text></g>",
            y + 4.0,
            esc(label)
        );
        x += 14.0 + 6.8 * label.chars().count() as f64;
    }
}

/// Replication lag (bytes) of the subscription's slot.
pub fn lag(r: &Report) -> Option<String> {
    let all = r.lag.iter().filter_map(|p| p.bytes).max()?;
    // Scaled to the lag while the subscription applied: a slot whose
    // consumer stopped (as planned, after the switch) only grows, and would
    // flatten the lag that matters; it is drawn clipped.
    let active = r
        .lag
        .iter()
        .filter(|p| p.active)
        .filter_map(|p| p.bytes)
        .max();
    let max = (active.filter(|a| *a > 0).unwrap_or(all) as f64).max(1.0);
    let step = nice_bytes(max);
    let f = Frame::new(r, 64.0, 190.0, (max / step).ceil().max(1.0) * step)?;
    let mut o = String::new();
    open(&mut o, "chart-lag", "Replication lag over time (bytes)", &f);
    freezes(&mut o, r, &f, true);
    axes(&mut o, &f, step, |v| fmt::bytes(v as i64));
    marks(&mut o, r, &f, true);
    // Stretches: split at gaps and where the slot's consumer came or went.
    let mut stretches: Vec<(bool, Stretch)> = Vec::new();
    for p in &r.lag {
        let Some(b) = p.bytes else {
            stretches.push((p.active, Vec::new()));
            continue;
        };
        match stretches.last_mut() {
            Some((active, pts)) if *active == p.active || pts.is_empty() => {
                *active = p.active;
                pts.push((p.at, b as f64));
            }
            Some((_, pts)) => {
                // Joined to the last point, so the line does not break.
                let joint = pts.last().copied();
                stretches.push((
                    p.active,
                    joint.into_iter().chain([(p.at, b as f64)]).collect(),
                ));
            }
            None => stretches.push((p.active, vec![(p.at, b as f64)])),
        }
    }
    for active in [true, false] {
        let class = if active { "lag" } else { "lag inactive" };
        polylines(
            &mut o,
            class,
            &f,
            stretches
                .iter()
                .filter(|(a, _)| *a == active)
                .map(|(_, p)| p.as_slice()),
        );
    }
    let inactive = if all as f64 > f.y_max {
        format!("slot without consumer (clipped: up to {})", fmt::bytes(all))
    } else {
        "slot without consumer".to_string()
    };
    legend(
        &mut o,
        &f,
        &[
            ("lag", "lag, subscription applying"),
            ("lag inactive", &inactive),
        ],
    );
    o.push_str("</svg>");
    Some(o)
}

fn stretches(points: &[Point<f64>]) -> Vec<Stretch> {
    let mut out: Vec<Stretch> = vec![Vec::new()];
    for p in points {
        match p.value {
            Some(v) => out.last_mut().into_iter().for_each(|s| s.push((p.at, v))),
            None => out.push(Vec::new()),
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// Rows written per second on each side.
pub fn writes(r: &Report) -> Option<String> {
    let all = r.writes_source.iter().chain(&r.writes_target);
    let max = all
        .filter_map(|p| p.value)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))?;
    let step = nice_step(max.max(1.0), 4.0);
    let mut f = Frame::new(r, 14.0, 170.0, (max / step).ceil().max(1.0) * step)?;
    // An initial copy writes thousands of times the application's rate: a
    // log scale keeps both readable.
    let mut positive: Vec<f64> = r
        .writes_source
        .iter()
        .chain(&r.writes_target)
        .filter_map(|p| p.value)
        .filter(|v| *v >= 1.0)
        .collect();
    positive.sort_by(f64::total_cmp);
    if let Some(median) = positive.get(positive.len() / 2) {
        if max > 50.0 * median {
            f.log = true;
            f.y_max = 10f64.powf(max.log10().ceil());
        }
    }
    let title = if f.log {
        "Rows written per second on each side (log scale)"
    } else {
        "Rows written per second on each side"
    };
    let mut o = String::new();
    open(&mut o, "chart-writes", title, &f);
    freezes(&mut o, r, &f, false);
    axes(&mut o, &f, step, |v| format!("{}/s", fmt::int(v as i64)));
    marks(&mut o, r, &f, false);
    let (s, t) = (stretches(&r.writes_source), stretches(&r.writes_target));
    polylines(&mut o, "w-source", &f, s.iter().map(Vec::as_slice));
    polylines(&mut o, "w-target", &f, t.iter().map(Vec::as_slice));
    let scale = if f.log { "log scale" } else { "" };
    legend(
        &mut o,
        &f,
        &[("w-source", "source"), ("w-target", "target"), ("", scale)],
    );
    o.push_str("</svg>");
    Some(o)
}

/// Ready pods of each workload (desired dashed), as steps.
pub fn rollout(r: &Report) -> Option<String> {
    let max = r
        .rollouts
        .iter()
        .flat_map(|w| &w.points)
        .map(|p| p.ready.max(p.desired))
        .max()?;
    let f = Frame::new(r, 14.0, 130.0, f64::from(max.max(1)))?;
    let step = nice_step(f.y_max, 4.0).max(1.0);
    let mut o = String::new();
    open(
        &mut o,
        "chart-rollout",
        "Ready pods per workload over time",
        &f,
    );
    freezes(&mut o, r, &f, false);
    axes(&mut o, &f, step, |v| format!("{v:.0}"));
    marks(&mut o, r, &f, false);
    let end = r.last?;
    let mut names = Vec::new();
    for (i, w) in r.rollouts.iter().enumerate() {
        let class = format!("s{}", i % 6);
        for (what, value) in [
            (
                "desired",
                (|p: &RolloutPoint| p.desired) as fn(&RolloutPoint) -> i32,
            ),
            ("ready", |p: &RolloutPoint| p.ready),
        ] {
            let mut d = String::new();
            for (j, p) in w.points.iter().enumerate() {
                let (x, y) = (f.x(p.at), f.y(f64::from(value(p))));
                if j == 0 {
                    let _ = write!(d, "M{x:.1},{y:.1}");
                } else {
                    let _ = write!(d, " H{x:.1} V{y:.1}");
                }
            }
            let _ = write!(d, " H{:.1}", f.x(end));
            let _ = write!(
                o,
                "<path class=\"series step {what} {class}\" d=\"{d}\"><title>{}</title></path>",
                esc(&format!("{} pods of deployment/{}", what, w.deployment))
            );
        }
        names.push((class, format!("{} ready (desired dashed)", w.deployment)));
    }
    let items: Vec<(&str, &str)> = names
        .iter()
        .map(|(c, n)| (c.as_str(), n.as_str()))
        .collect();
    legend(&mut o, &f, &items);
    o.push_str("</svg>");
    Some(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_and_single_samples_still_draw() {
        let mut r = super::super::build(&[]);
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        r.first = Some(t0);
        r.last = Some(t0);
        r.lag = vec![LagPoint {
            at: t0,
            bytes: Some(0),
            active: true,
        }];
        r.writes_source = vec![Point {
            at: t0,
            value: Some(0.0),
        }];
        let lag = lag(&r).unwrap();
        assert!(
            lag.contains("<polyline class=\"series lag\" points=\""),
            "{lag}"
        );
        assert!(lag.matches("class=\"ytick\"").count() <= 13);
        assert!(writes(&r).unwrap().contains("series w-source"));
        assert!(rollout(&r).is_none());
    }

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(930.0, 4.0), 500.0);
        assert_eq!(nice_step(3.0, 4.0), 1.0);
        assert_eq!(nice_bytes(10_745_232.0), 5.0 * 1024.0 * 1024.0);
        assert_eq!(nice_bytes(900.0), 500.0);
    }
}
