//! The sweep plot: a PNG drawn with plotters' bitmap backend and no fonts (no system
//! dependencies), so it has no text. Left panel: server CPU µs per forwarded packet (red: whole
//! process, blue: media thread) against forwarded packets/s. Right panel: forwarding delay
//! (green: audio p50, orange: audio p99, dark green: video p50, brown: video p99) in ms against
//! forwarded packets/s. Both x axes start at 0; grey lines mark y = 1, 2, 5, 10 (µs or ms).

use std::path::Path;

use plotters::prelude::*;

use crate::run::StepResult;

type Series = (Vec<(f64, f64)>, RGBColor);

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    series: &[Series],
) -> Result<(), Box<dyn std::error::Error>> {
    let x_max = series
        .iter()
        .flat_map(|(s, _)| s.iter().map(|p| p.0))
        .fold(1.0f64, f64::max)
        * 1.1;
    let y_max = series
        .iter()
        .flat_map(|(s, _)| s.iter().map(|p| p.1))
        .fold(1.0f64, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(area)
        .margin(25)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    let axis = BLACK.stroke_width(2);
    chart.draw_series(LineSeries::new([(0.0, 0.0), (x_max, 0.0)], axis))?;
    chart.draw_series(LineSeries::new([(0.0, 0.0), (0.0, y_max)], axis))?;
    for y in [1.0, 2.0, 5.0, 10.0, 20.0, 50.0] {
        if y < y_max {
            chart.draw_series(LineSeries::new(
                [(0.0, y), (x_max, y)],
                RGBColor(200, 200, 200).stroke_width(1),
            ))?;
        }
    }
    for (points, color) in series {
        chart.draw_series(LineSeries::new(
            points.iter().copied(),
            color.stroke_width(3),
        ))?;
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 5, color.filled())))?;
    }
    Ok(())
}

/// Draws the sweep's cost and delay against load.
pub fn draw(path: &Path, steps: &[StepResult]) -> Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(600);
    let x = |r: &StepResult| r.forwarded_packets_per_s;
    let pick = |f: &dyn Fn(&StepResult) -> Option<f64>| -> Vec<(f64, f64)> {
        steps
            .iter()
            .filter_map(|r| f(r).map(|y| (x(r), y)))
            .collect()
    };
    panel(
        &left,
        &[
            (pick(&|r| r.cpu_us_per_packet), RED),
            (pick(&|r| r.media_thread_us_per_packet), BLUE),
        ],
    )?;
    let ms = |us: u32| Some(f64::from(us) / 1000.0);
    panel(
        &right,
        &[
            (pick(&|r| ms(r.audio_delay.p50_us)), GREEN),
            (pick(&|r| ms(r.audio_delay.p99_us)), RGBColor(255, 140, 0)),
            (pick(&|r| ms(r.video_delay.p50_us)), RGBColor(0, 100, 0)),
            (pick(&|r| ms(r.video_delay.p99_us)), RGBColor(140, 70, 20)),
        ],
    )?;
    root.present()?;
    Ok(())
}
