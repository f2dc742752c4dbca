//! Inline SVG charts: requests and refusals over time, and horizontal bar charts. Every label
//! comes through [`esc`]; nothing refers to anything outside the element.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use super::html::esc;
use super::timeline::{Bucket, width_text};

/// The colour of requests that were let through.
pub(crate) const ALLOWED: &str = "#3b6ea8";
/// The colour of refusals.
pub(crate) const REFUSED: &str = "#c0392b";

/// The longest label drawn, in characters (the whole text is in the bar's tooltip).
const MAX_LABEL_CHARS: usize = 30;

/// A bucket start as text, as precise as the width needs.
fn bucket_label(start: u64, width: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(start);
    let full = humantime::format_rfc3339_seconds(t).to_string(); // 2026-12-06T23:35:07Z
    let full = full.trim_end_matches('Z').replacen('T', " ", 1);
    let keep = match width {
        w if w % 86_400 == 0 => 10, // date
        w if w % 60 == 0 => 16,     // date and minutes
        _ => 19,
    };
    full.chars().take(keep).collect()
}

/// Requests per bucket as stacked bars (refused at the bottom, in red), with the y scale, the
/// first, middle and last bucket's time, and a legend.
pub(crate) fn timeline(buckets: &[(u64, Bucket)], width: u64) -> String {
    let (w, h) = (1000.0_f64, 280.0_f64);
    let (left, right, top, bottom) = (56.0, 12.0, 30.0, 40.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let max = buckets
        .iter()
        .map(|(_, b)| b.requests)
        .max()
        .unwrap_or(0)
        .max(1);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" id="timeline" viewBox="0 0 {w} {h}" role="img" aria-labelledby="timeline-title"><title id="timeline-title">Requests and refusals over time, per {}</title>"#,
        esc(&width_text(width))
    );
    // axes and scale
    let _ = write!(
        s,
        r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{y0}" stroke="#888"/><line x1="{left}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#888"/><text x="{lx}" y="{ty}" text-anchor="end" class="axis">{max}</text><text x="{lx}" y="{y0}" text-anchor="end" class="axis">0</text>"##,
        y0 = top + plot_h,
        x1 = left + plot_w,
        lx = left - 6.0,
        ty = top + 4.0,
    );
    let n = buckets.len().max(1) as f64;
    let slot = plot_w / n;
    let bar = (slot * 0.8).clamp(0.5, 40.0);
    for (i, (start, b)) in buckets.iter().enumerate() {
        let x = left + slot * i as f64 + (slot - bar) / 2.0;
        let refused_h = plot_h * b.refused as f64 / max as f64;
        let allowed_h = plot_h * (b.requests - b.refused.min(b.requests)) as f64 / max as f64;
        let y_refused = top + plot_h - refused_h;
        let y_allowed = y_refused - allowed_h;
        let tip = format!(
            "{}: {} requests, {} refused",
            bucket_label(*start, width),
            b.requests,
            b.refused
        );
        let _ = write!(s, "<g><title>{}</title>", esc(&tip));
        if allowed_h > 0.0 {
            let _ = write!(
                s,
                r#"<rect class="bar allowed" x="{x:.2}" y="{y_allowed:.2}" width="{bar:.2}" height="{allowed_h:.2}" fill="{ALLOWED}"/>"#
            );
        }
        if refused_h > 0.0 {
            let _ = write!(
                s,
                r#"<rect class="bar refused" x="{x:.2}" y="{y_refused:.2}" width="{bar:.2}" height="{refused_h:.2}" fill="{REFUSED}"/>"#
            );
        }
        s.push_str("</g>");
    }
    // time labels: first, middle, last
    let mut marks: Vec<usize> = vec![0, buckets.len() / 2, buckets.len().saturating_sub(1)];
    marks.dedup();
    for (k, i) in marks.into_iter().enumerate() {
        let Some((start, _)) = buckets.get(i) else {
            continue;
        };
        let x = left + slot * i as f64 + slot / 2.0;
        let anchor = match k {
            0 => "start",
            _ if i + 1 == buckets.len() => "end",
            _ => "middle",
        };
        let _ = write!(
            s,
            r#"<text x="{x:.2}" y="{}" text-anchor="{anchor}" class="axis">{}</text>"#,
            top + plot_h + 18.0,
            esc(&bucket_label(*start, width))
        );
    }
    // legend
    let _ = write!(
        s,
        r#"<rect x="{left}" y="6" width="12" height="12" fill="{ALLOWED}"/><text x="{}" y="16" class="legend">allowed (and errors)</text><rect x="{}" y="6" width="12" height="12" fill="{REFUSED}"/><text x="{}" y="16" class="legend">refused</text><text x="{}" y="16" text-anchor="end" class="legend">one bar per {}</text></svg>"#,
        left + 16.0,
        left + 190.0,
        left + 206.0,
        left + plot_w,
        esc(&width_text(width))
    );
    s
}

/// Horizontal bars, one a row: the label (cut to a readable length; the whole in the tooltip),
/// the bar, the value.
pub(crate) fn bars(id: &str, title: &str, rows: &[(&str, u64)], colour: &str) -> String {
    let row_h = 26.0_f64;
    let (w, label_w, value_w) = (600.0_f64, 230.0, 60.0);
    let h = row_h * rows.len().max(1) as f64 + 8.0;
    let plot_w = w - label_w - value_w;
    let max = rows.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" id="{id}" viewBox="0 0 {w} {h}" role="img" aria-labelledby="{id}-title"><title id="{id}-title">{}</title>"#,
        esc(title)
    );
    if rows.is_empty() {
        let _ = write!(s, r#"<text x="0" y="20" class="axis">none</text>"#);
    }
    for (i, (label, value)) in rows.iter().enumerate() {
        let y = 4.0 + row_h * i as f64;
        let len = plot_w * *value as f64 / max as f64;
        let shown: String = if label.chars().count() > MAX_LABEL_CHARS {
            label
                .chars()
                .take(MAX_LABEL_CHARS - 1)
                .chain(['…'])
                .collect()
        } else {
            (*label).to_owned()
        };
        let _ = write!(
            s,
            r#"<g><title>{tip}: {value}</title><text x="{lx}" y="{ty:.1}" text-anchor="end" class="label">{shown}</text><rect class="bar" x="{label_w}" y="{y:.1}" width="{len:.2}" height="{bh:.1}" fill="{colour}"/><text x="{vx:.2}" y="{ty:.1}" class="value">{value}</text></g>"#,
            tip = esc(label),
            shown = esc(&shown),
            lx = label_w - 8.0,
            ty = y + row_h * 0.62,
            bh = row_h * 0.7,
            vx = label_w + len + 6.0,
        );
    }
    s.push_str("</svg>");
    s
}
