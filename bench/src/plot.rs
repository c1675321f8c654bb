//! Latency distributions as an SVG: latency (log scale) against
//! percentile, drawn HdrHistogram-style so the tail gets room — x is
//! "nines": 1 = p90, 2 = p99, 3 = p99.9.

use plotters::element::DashedPathElement;
use plotters::prelude::*;

pub struct Series {
    pub label: String,
    /// (percentile in 0..1, latency in milliseconds).
    pub points: Vec<(f64, f64)>,
    /// Index into the palette; series of one target share it.
    pub color: usize,
    pub dashed: bool,
}

/// The percentiles a curve is sampled at.
pub const PERCENTILES: [f64; 9] = [0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999];

pub fn nines(p: f64) -> f64 {
    -(1.0 - p).max(1e-6).log10()
}

pub fn latency_svg(path: &std::path::Path, title: &str, series: &[Series]) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let (lo, hi) = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return Err("nothing to plot".into());
    }
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            nines(0.5)..4.05f64,
            ((lo * 0.8).max(0.001)..hi * 1.25).log_scale(),
        )
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("percentile (left edge: p50)")
        .y_desc("latency (ms)")
        // Label whole nines only (p90, p99, …); other ticks stay bare.
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() > 0.01 || x.round() < 1.0 {
                String::new()
            } else {
                format!("p{}", format_percentile(1.0 - 10f64.powf(-x.round())))
            }
        })
        .draw()
        .map_err(|x| e(&x))?;
    let palette = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    for s in series {
        let color = palette[s.color % palette.len()];
        let points: Vec<(f64, f64)> = s.points.iter().map(|(p, v)| (nines(*p), *v)).collect();
        let dashed = s.dashed;
        let style = color.stroke_width(if dashed { 1 } else { 2 });
        let drawn = if s.dashed {
            chart.draw_series(DashedLineSeries::new(points, 6, 4, style))
        } else {
            chart.draw_series(LineSeries::new(points, style))
        };
        drawn
            .map_err(|x| e(&x))?
            .label(s.label.clone())
            // The key shows the line as drawn: dashed for the direct runs.
            .legend(move |(x, y)| {
                let (dash, gap) = if dashed { (5, 3) } else { (24, 1) };
                DashedPathElement::new(vec![(x, y), (x + 24, y)], dash, gap, style)
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))
}

fn format_percentile(p: f64) -> String {
    let s = format!("{:.4}", p * 100.0);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_and_labels() {
        assert!((nines(0.99) - 2.0).abs() < 1e-9);
        assert_eq!(format_percentile(0.999), "99.9");
        assert_eq!(format_percentile(0.5), "50");
    }

    #[test]
    fn writes_an_svg() {
        let path = std::env::temp_dir().join(format!("sy-plot-{}.svg", std::process::id()));
        let s = Series {
            label: "gateway".into(),
            points: PERCENTILES.iter().map(|p| (*p, 0.1 + nines(*p))).collect(),
            color: 0,
            dashed: false,
        };
        latency_svg(&path, "test", &[s]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("gateway"));
        std::fs::remove_file(&path).unwrap();
    }
}
