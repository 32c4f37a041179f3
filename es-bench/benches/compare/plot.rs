//! The plot of a command's cost against history length, as SVG.

use std::path::Path;

use plotters::prelude::*;

use crate::history::Point;

fn label(history: u64) -> String {
    match history {
        0 => "0".to_owned(),
        h if h.is_multiple_of(1000) => format!("{}k", h / 1000),
        h => h.to_string(),
    }
}

/// A line: its name, colour, and value at a point.
type Series = (&'static str, RGBColor, fn(&Point) -> f64);

/// Draws one line per contender: microseconds per command (log scale) at each history length
/// (evenly spaced).
pub(crate) fn history(points: &[Point], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let series: [Series; 4] = [
        ("cqrs-es 0.5 (MemStore)", RGBColor(200, 40, 40), |p| p.cqrs),
        ("es, cold, no snapshots", RGBColor(230, 150, 20), |p| {
            p.cold_no_snapshots
        }),
        (
            "es, cold, snapshots every 100",
            RGBColor(30, 90, 200),
            |p| p.cold_snapshots,
        ),
        ("es, live instance", RGBColor(30, 150, 60), |p| p.live),
    ];
    let values = || {
        points
            .iter()
            .flat_map(|p| series.iter().map(move |s| s.2(p)))
    };
    let max = values().fold(f64::MIN, f64::max);
    let min = values().fold(f64::MAX, f64::min);
    let labels: Vec<String> = points.iter().map(|p| label(p.history)).collect();
    let last = (points.len() - 1) as f64;

    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Cost of one command against the aggregate's history (in memory)",
            ("sans-serif", 20),
        )
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.2..last + 0.2, (min / 2.0..max * 2.0).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("events of history")
        .y_desc("µs per command (log scale)")
        .disable_x_mesh()
        // Ticks every 0.2; only the whole ones are history lengths.
        .x_labels(20)
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-6 && *x > -0.5 {
                labels.get(x.round() as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| {
            if *y >= 1.0 {
                format!("{y:.0}")
            } else {
                format!("{y}")
            }
        })
        .draw()?;
    for (name, color, value) in series {
        let line: Vec<(f64, f64)> = points
            .iter()
            .enumerate()
            .map(|(i, p)| (i as f64, value(p)))
            .collect();
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(line.into_iter().map(|p| Circle::new(p, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
