//! The PNG figure BENCHMARKS.md embeds: four panels (in-kernel cost, scale,
//! flood, transfer), medians as bars or points with min–max whiskers.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::stats::Summary;

/// Fonts tried, in order (Debian: fonts-dejavu-core).
const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// One bar: a label, its median and spread.
pub struct Bar {
    pub label: String,
    pub value: Summary,
    pub color: RGBColor,
}

/// One line of the scale panel: a label and one summary per level.
pub struct Line {
    pub label: String,
    pub points: Vec<Summary>,
    pub color: RGBColor,
}

/// Everything the figure shows.
pub struct Figure {
    pub kernel_steady: Vec<Bar>,
    pub kernel_single: Vec<Bar>,
    pub scale_levels: Vec<String>,
    pub scale: Vec<Line>,
    pub memory: Vec<Bar>,
    pub flood: Vec<Bar>,
    pub transfer: Vec<Bar>,
}

pub const BLUE: RGBColor = RGBColor(52, 101, 164);
pub const ORANGE: RGBColor = RGBColor(230, 126, 34);
pub const GREEN: RGBColor = RGBColor(39, 174, 96);
pub const GREY: RGBColor = RGBColor(127, 140, 141);
pub const RED: RGBColor = RGBColor(192, 57, 43);

fn register_font() -> Result<()> {
    let path = FONTS
        .iter()
        .find(|p| Path::new(p).exists())
        .with_context(|| format!("no font found ({FONTS:?}); install fonts-dejavu-core"))?;
    let bytes: &'static [u8] = Box::leak(std::fs::read(path)?.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{path} is not a usable font"))
}

/// Draws the figure to `path` (PNG).
pub fn draw(fig: &Figure, path: &Path) -> Result<()> {
    register_font()?;
    let root = BitMapBackend::new(path, (1600, 1500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let root = root
        .titled(
            "ftpct benchmarks (median, whiskers min–max over rounds)",
            ("sans-serif", 26),
        )
        .map_err(|e| anyhow!("{e}"))?;
    let panels = root.split_evenly((3, 2));
    hbars(
        &panels[0],
        "In-kernel, steady state (BPF_PROG_TEST_RUN, repeat N)",
        "ns per packet",
        &fig.kernel_steady,
    )?;
    hbars(
        &panels[1],
        "In-kernel, one-shot paths (repeat 1, incl. harness)",
        "ns per packet",
        &fig.kernel_single,
    )?;
    lines(
        &panels[2],
        "Scale: live entries in the expectation and flow tables",
        "ns per packet",
        &fig.scale_levels,
        &fig.scale,
    )?;
    hbars(
        &panels[3],
        "Map memory (kernel accounting)",
        "MiB",
        &fig.memory,
    )?;
    hbars(
        &panels[4],
        "SYN flood: receiver CPU per packet (veth, threaded NAPI)",
        "ns of receiver CPU per flood packet",
        &fig.flood,
    )?;
    hbars(
        &panels[5],
        "100 MB FTP download (vsftpd → curl)",
        "MB/s",
        &fig.transfer,
    )?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

fn hbars(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
    xdesc: &str,
    bars: &[Bar],
) -> Result<()> {
    let n = bars.len().max(1) as i32;
    // Bar i is drawn in slot n-1-i: the first bar on top.
    let slot = |i: usize| n - 1 - i as i32;
    let label_px = bars
        .iter()
        .map(|b| b.label.chars().count())
        .max()
        .unwrap_or(4) as u32
        * 8
        + 16;
    let xmax = bars
        .iter()
        .map(|b| b.value.max.max(b.value.median))
        .fold(1.0_f64, f64::max)
        * 1.15;
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    let fmt = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) => usize::try_from(n - 1 - *i)
            .ok()
            .and_then(|k| labels.get(k))
            .cloned()
            .unwrap_or_default(),
        _ => String::new(),
    };
    let xfmt = |v: &f64| format!("{v:.0}");
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(label_px)
        .build_cartesian_2d(0.0..xmax, (0..n - 1).into_segmented())
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(bars.len())
        .y_label_formatter(&fmt)
        .x_label_formatter(&xfmt)
        .x_desc(xdesc)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for (i, bar) in bars.iter().enumerate() {
        let i = slot(i);
        let mut rect = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(i)),
                (bar.value.median, SegmentValue::Exact(i + 1)),
            ],
            bar.color.mix(0.8).filled(),
        );
        rect.set_margin(5, 5, 0, 0);
        chart
            .draw_series(std::iter::once(rect))
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![
                    (bar.value.min, SegmentValue::CenterOf(i)),
                    (bar.value.max, SegmentValue::CenterOf(i)),
                ],
                BLACK.stroke_width(2),
            )))
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .draw_series(std::iter::once(Text::new(
                if bar.value.median >= 10.0 {
                    format!("{:.0}", bar.value.median)
                } else {
                    format!("{:.1}", bar.value.median)
                },
                (
                    bar.value.max.max(bar.value.median) + xmax * 0.01,
                    SegmentValue::CenterOf(i),
                ),
                ("sans-serif", 13).into_font(),
            )))
            .map_err(|e| anyhow!("{e}"))?;
    }
    Ok(())
}

fn lines(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
    ydesc: &str,
    levels: &[String],
    lines: &[Line],
) -> Result<()> {
    let n = levels.len().max(1) as i32;
    let ymax = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.max))
        .fold(1.0_f64, f64::max)
        * 1.2;
    let fmt = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) => levels
            .get(usize::try_from(*i).unwrap_or(usize::MAX))
            .cloned()
            .unwrap_or_default(),
        _ => String::new(),
    };
    let yfmt = |v: &f64| format!("{v:.0}");
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0.0..ymax)
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(levels.len())
        .x_label_formatter(&fmt)
        .y_label_formatter(&yfmt)
        .x_desc("live entries in each table")
        .y_desc(ydesc)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for line in lines {
        let color = line.color;
        let pts: Vec<(SegmentValue<i32>, f64)> = line
            .points
            .iter()
            .enumerate()
            .map(|(i, p)| (SegmentValue::CenterOf(i as i32), p.median))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(3)))
            .map_err(|e| anyhow!("{e}"))?
            .label(line.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        chart
            .draw_series(
                pts.iter()
                    .map(|p| Circle::new(p.clone(), 5, color.filled())),
            )
            .map_err(|e| anyhow!("{e}"))?;
        for (i, p) in line.points.iter().enumerate() {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![
                        (SegmentValue::CenterOf(i as i32), p.min),
                        (SegmentValue::CenterOf(i as i32), p.max),
                    ],
                    BLACK.stroke_width(1),
                )))
                .map_err(|e| anyhow!("{e}"))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    Ok(())
}
