//! The SVG plot of the load sweep: updates delivered and p99 latency by the
//! number of cubes, gamenet against the naive snapshot.

use std::path::Path;
use std::time::Duration;

use plotters::prelude::*;

type Result = std::result::Result<(), Box<dyn std::error::Error>>;

const SERIES: [(&str, RGBColor); 2] = [
    ("gamenet", RGBColor(31, 119, 180)),
    ("naive bincode snapshot", RGBColor(214, 39, 40)),
];

/// One point of the load sweep.
pub struct Point {
    /// Cubes replicated.
    pub cubes: usize,
    /// Moving-cube updates delivered per second.
    pub updates_per_sec: f64,
    /// 99th percentile of the update latency, in milliseconds.
    pub p99_ms: f64,
}

/// Draws the load sweep to `path`, with `limit` as the latency line past
/// which a run no longer keeps up.
pub fn sweep(path: &Path, gamenet: &[Point], naive: &[Point], limit: Duration) -> Result {
    let root = SVGBackend::new(path, (1100, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(550);
    let all = || gamenet.iter().chain(naive);
    let max_cubes = all().map(|p| p.cubes).max().unwrap_or(1000) as f64 * 1.2;
    let max_rate = all().map(|p| p.updates_per_sec).fold(1.0, f64::max) * 1.15;
    let max_p99 = all().map(|p| p.p99_ms).fold(1.0, f64::max) * 2.0;
    let series = [gamenet, naive];

    let mut chart = ChartBuilder::on(&left)
        .caption(
            "Moving-cube updates delivered per second",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(72)
        .build_cartesian_2d((700f64..max_cubes).log_scale(), 0f64..max_rate)?;
    chart
        .configure_mesh()
        .x_desc("cubes (2 peers, 60 Hz, 30 % moving)")
        .x_labels(6)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(WHITE)
        .y_desc("updates/s")
        .y_label_formatter(&|v| format!("{:.0}k", v / 1000.0))
        .draw()?;
    for (points, (name, color)) in series.iter().zip(SERIES) {
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.cubes as f64, p.updates_per_sec)),
                color.stroke_width(2),
            ))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart.draw_series(
            points
                .iter()
                .map(|p| Circle::new((p.cubes as f64, p.updates_per_sec), 3, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()?;

    let mut chart = ChartBuilder::on(&right)
        .caption("p99 update latency", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(72)
        .build_cartesian_2d(
            (700f64..max_cubes).log_scale(),
            (1f64..max_p99.max(500.0)).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("cubes (2 peers, 60 Hz, 30 % moving)")
        .x_labels(6)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(WHITE)
        .y_desc("ms")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    let limit = limit.as_secs_f64() * 1e3;
    chart
        .draw_series(LineSeries::new(
            [(700.0, limit), (max_cubes, limit)],
            BLACK.mix(0.5).stroke_width(2),
        ))?
        .label(format!("{limit:.0} ms: no longer keeping up"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5)));
    for (points, (name, color)) in series.iter().zip(SERIES) {
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.cubes as f64, p.p99_ms.max(1.0))),
                color.stroke_width(2),
            ))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart.draw_series(
            points
                .iter()
                .map(|p| Circle::new((p.cubes as f64, p.p99_ms.max(1.0)), 3, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()?;
    root.present()?;
    Ok(())
}
