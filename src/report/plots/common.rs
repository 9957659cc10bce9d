//! What every plot shares: the canvas, the colours, the legend, axis numbers.

use plotters::coord::Shift;
use plotters::prelude::*;

/// Plot size in pixels.
pub const W: u32 = 1000;
pub const H: u32 = 560;

const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The `i`th series' colour (backends keep theirs across plots).
pub fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

pub type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// The legend every plot draws: framed, on a translucent white box, at `position`,
/// with labels of `font_size` (plotters' default when `None`).
pub fn draw_legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
    font_size: Option<u32>,
) -> anyhow::Result<()> {
    let mut style = chart.configure_series_labels();
    style
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(position);
    if let Some(size) = font_size {
        style.label_font(("sans-serif", size));
    }
    style.draw().map_err(draw_err)
}

pub fn draw_err(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow::anyhow!("drawing a plot: {e:?}")
}

/// An SVG of [`W`] × [`H`] on white, drawn by `f`.
pub fn with_svg(f: impl FnOnce(&Area) -> anyhow::Result<()>) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        f(&root)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// An axis number: 0, 1.5k, 2M, 12, 0.25.
pub fn short_num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if v >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// At most one decimal, none when whole.
fn trim(x: f64) -> String {
    let s = format!("{x:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}
