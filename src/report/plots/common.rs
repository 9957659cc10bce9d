//! What every plot shares: the canvas, the colours, the type sizes, titles,
//! legends beside (never over) the data, axis numbers.
//!
//! Sizes: plotters writes a text of size `s` as `font-size = s / 1.24` in the
//! SVG, so the sizes here are chosen for what lands in the SVG: tick labels and
//! legends at 14.5 px, axis descriptions at 16 px, titles at 19 px on the
//! 1000 × 560 canvas. Tick marks are short (plotters puts the labels twice a tick
//! away from the axis) and every label area is sized to its widest label, so an
//! axis description sits next to its numbers, not at the canvas's edge.

use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Plot size in pixels.
pub const W: u32 = 1000;
pub const H: u32 = 560;

/// Tick labels and legend entries (14.5 px in the SVG).
pub const TICK: u32 = 18;
/// Axis descriptions (16 px in the SVG).
pub const DESC: u32 = 20;
/// A chart's or panel's title (19 px in the SVG).
pub const TITLE: u32 = 24;
/// Tick mark length; labels sit twice as far from the axis.
const TICK_MARK: i32 = 4;

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

/// Grey for notes under a title.
const NOTE: RGBColor = RGBColor(70, 70, 70);

pub type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

pub fn draw_err(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow::anyhow!("drawing a plot: {e:?}")
}

/// An SVG of [`W`] × [`H`] on white, drawn by `f`.
pub fn with_svg(f: impl FnOnce(&Area) -> anyhow::Result<()>) -> anyhow::Result<String> {
    with_svg_sized(W, H, f)
}

/// An SVG of `w` × `h` on white, drawn by `f`.
pub fn with_svg_sized(
    w: u32,
    h: u32,
    f: impl FnOnce(&Area) -> anyhow::Result<()>,
) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        f(&root)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// Sans-serif text of plotters size `size` in `color`, anchored at `h`, `v`.
pub fn text_style(size: u32, color: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    ("sans-serif", size)
        .into_font()
        .color(&color)
        .pos(Pos::new(h, v))
}

/// Pixels in the SVG of a plotters text size.
fn px(size: u32) -> f64 {
    f64::from(size) / 1.24
}

/// An upper bound of the width of `text` at plotters size `size` in a sans-serif
/// font: DejaVu Sans's advances (the widest common sans-serif) rounded up per
/// kind of character.
pub fn text_width(text: &str, size: u32) -> u32 {
    let em: f64 = text
        .chars()
        .map(|c| match c {
            'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' => 0.3,
            'f' | 't' | 'r' | '-' | ' ' | '(' | ')' | '[' | ']' | '/' => 0.42,
            'm' | 'w' => 0.98,
            '0'..='9' | 'a'..='z' => 0.64,
            'A'..='Z' | '%' | '–' | '×' | '@' => 0.8,
            _ => 0.7,
        })
        .sum();
    (em * px(size)).ceil() as u32
}

/// The height of a line of text at plotters size `size`, with leading.
pub fn line_height(size: u32) -> u32 {
    (px(size) * 1.35).ceil() as u32
}

/// `text` broken at spaces into lines no wider than `width` at `size`.
pub fn wrap(text: &str, size: u32, width: u32) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let candidate = if line.is_empty() {
            word.to_string()
        } else {
            format!("{line} {word}")
        };
        if !line.is_empty() && text_width(&candidate, size) > width {
            lines.push(std::mem::replace(&mut line, word.to_string()));
        } else {
            line = candidate;
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Draws `title` (and `note` in smaller grey lines below it, wrapped to the
/// width) centred at the top of `area`; the rest of the area.
pub fn title<'a>(area: &Area<'a>, title: &str, note: Option<&str>) -> anyhow::Result<Area<'a>> {
    let (w, _) = area.dim_in_pixel();
    let mut lines: Vec<(String, u32, RGBColor)> = wrap(title, TITLE, w.saturating_sub(20))
        .into_iter()
        .map(|l| (l, TITLE, BLACK))
        .collect();
    if let Some(note) = note {
        lines.extend(
            wrap(note, TICK, w.saturating_sub(20))
                .into_iter()
                .map(|l| (l, TICK, NOTE)),
        );
    }
    let mut y = 6i32;
    for (text, size, c) in &lines {
        let style = text_style(*size, *c, HPos::Center, VPos::Top);
        area.draw(&Text::new(text.clone(), (w as i32 / 2, y), style))
            .map_err(draw_err)?;
        y += line_height(*size) as i32;
    }
    let (_, h) = area.dim_in_pixel();
    let (top, rest) = area.split_vertically((y + 4).min(h as i32));
    drop(top);
    Ok(rest)
}

/// Notes in grey lines at the bottom of `area`, wrapped to its width; the rest.
pub fn footnote<'a>(area: &Area<'a>, note: &str) -> anyhow::Result<Area<'a>> {
    let (w, h) = area.dim_in_pixel();
    let lines = wrap(note, TICK, w.saturating_sub(20));
    let used = lines.len() as u32 * line_height(TICK) + 10;
    let (rest, bottom) = area.split_vertically(h.saturating_sub(used));
    for (k, text) in lines.iter().enumerate() {
        let style = text_style(TICK, NOTE, HPos::Left, VPos::Top);
        bottom
            .draw(&Text::new(
                text.clone(),
                (10, 4 + (k as u32 * line_height(TICK)) as i32),
                style,
            ))
            .map_err(draw_err)?;
    }
    Ok(rest)
}

/// The mesh every chart draws: tick labels at [`TICK`], axis descriptions at
/// [`DESC`], short tick marks. Chain the chart's own settings and `draw()`.
pub fn mesh<'a, 'b, 'm, X, Y, XT, YT, DB>(
    m: &'m mut plotters::chart::MeshStyle<'a, 'b, X, Y, DB>,
) -> &'m mut plotters::chart::MeshStyle<'a, 'b, X, Y, DB>
where
    X: Ranged<ValueType = XT> + ValueFormatter<XT>,
    Y: Ranged<ValueType = YT> + ValueFormatter<YT>,
    DB: DrawingBackend,
{
    m.label_style(("sans-serif", TICK))
        .axis_desc_style(("sans-serif", DESC))
        .set_all_tick_mark_size(TICK_MARK)
}

/// The width of a left label area holding `labels` (the widest decides) and,
/// when `desc`, a rotated axis description beside them.
pub fn y_label_area<S: AsRef<str>>(labels: impl IntoIterator<Item = S>, desc: bool) -> u32 {
    let widest = labels
        .into_iter()
        .map(|l| text_width(l.as_ref(), TICK))
        .max()
        .unwrap_or(0);
    2 * TICK_MARK as u32 + widest + 6 + if desc { px(DESC).ceil() as u32 + 4 } else { 0 }
}

/// The height of a bottom label area: tick labels, and a description below them
/// when `desc`.
pub fn x_label_area(desc: bool) -> u32 {
    2 * TICK_MARK as u32 + line_height(TICK) + if desc { line_height(DESC) + 2 } else { 0 }
}

/// The labels [`short_num`] gives along `0..=top` (or `lo..=hi`), for sizing a
/// label area before plotters picks its ticks.
pub fn number_labels(lo: f64, hi: f64) -> Vec<String> {
    (0..=20)
        .map(|k| short_num(lo + (hi - lo) * f64::from(k) / 20.0))
        .collect()
}

/// What a legend entry shows beside its label.
#[derive(Clone, Copy)]
pub enum Key {
    /// A filled square.
    Box(RGBColor),
    /// A filled square, pale (warm-ups).
    PaleBox(RGBColor),
    /// A line.
    Line(RGBColor),
    /// A line with a dot on it.
    Dotted(RGBColor),
    /// A dashed line.
    Dashed(RGBColor),
}

/// One legend entry.
pub struct Entry {
    pub label: String,
    pub key: Key,
}

impl Entry {
    pub fn new(label: impl Into<String>, key: Key) -> Entry {
        Entry {
            label: label.into(),
            key,
        }
    }
}

const KEY_W: i32 = 22;
const KEY_GAP: i32 = 6;

fn draw_key(area: &Area, key: Key, x: i32, y: i32) -> anyhow::Result<()> {
    let line =
        |c: RGBColor, w: u32| PathElement::new(vec![(x, y), (x + KEY_W, y)], c.stroke_width(w));
    match key {
        Key::Box(c) => area.draw(&Rectangle::new(
            [(x + 4, y - 7), (x + 18, y + 7)],
            c.mix(0.8).filled(),
        )),
        Key::PaleBox(c) => area.draw(&Rectangle::new(
            [(x + 4, y - 7), (x + 18, y + 7)],
            c.mix(0.3).filled(),
        )),
        Key::Line(c) => area.draw(&line(c, 3)),
        Key::Dotted(c) => area
            .draw(&line(c, 3))
            .and_then(|_| area.draw(&Circle::new((x + KEY_W / 2, y), 4, c.filled()))),
        Key::Dashed(c) => (0..3).try_for_each(|k| {
            area.draw(&PathElement::new(
                vec![(x + k * 8, y), (x + k * 8 + 5, y)],
                c.stroke_width(2),
            ))
        }),
    }
    .map_err(draw_err)
}

fn entry_width(e: &Entry) -> u32 {
    (KEY_W + KEY_GAP) as u32 + text_width(&e.label, TICK)
}

fn draw_entry(area: &Area, e: &Entry, x: i32, y: i32) -> anyhow::Result<()> {
    draw_key(area, e.key, x, y)?;
    let style = text_style(TICK, BLACK, HPos::Left, VPos::Center);
    area.draw(&Text::new(e.label.clone(), (x + KEY_W + KEY_GAP, y), style))
        .map_err(draw_err)
}

/// A legend in a strip split off the right of `area` (in as many columns as its
/// height needs), under an optional heading; the area left for the chart.
pub fn legend_right<'a>(
    area: &Area<'a>,
    heading: Option<&str>,
    entries: &[Entry],
) -> anyhow::Result<Area<'a>> {
    let (w, h) = area.dim_in_pixel();
    let row = line_height(TICK) as i32 + 4;
    let top = 14 + heading.map_or(0, |_| line_height(TICK) as i32 + 4);
    let per_column = ((h as i32 - top - 10) / row).max(1) as usize;
    let columns = entries.len().div_ceil(per_column).max(1);
    let column_w = entries
        .iter()
        .map(entry_width)
        .chain(heading.map(|t| text_width(t, TICK)))
        .max()
        .unwrap_or(0)
        + 16;
    let strip = (column_w * columns as u32 + 8).min(w / 2);
    let (rest, legend) = area.split_horizontally(w - strip);
    if let Some(t) = heading {
        let style = text_style(TICK, BLACK, HPos::Left, VPos::Center);
        legend
            .draw(&Text::new(t.to_string(), (4, 14), style))
            .map_err(draw_err)?;
    }
    for (k, e) in entries.iter().enumerate() {
        let (col, r) = (k / per_column, k % per_column);
        draw_entry(
            &legend,
            e,
            4 + (col as u32 * column_w) as i32,
            top + r as i32 * row,
        )?;
    }
    Ok(rest)
}

/// A legend in rows at the top of `area` (entries left to right, wrapping); the
/// area below it.
pub fn legend_top<'a>(area: &Area<'a>, entries: &[Entry]) -> anyhow::Result<Area<'a>> {
    let (w, _) = area.dim_in_pixel();
    let row = line_height(TICK) as i32 + 4;
    let mut placed: Vec<(i32, i32)> = Vec::new();
    let (mut x, mut y) = (10i32, row / 2);
    for e in entries {
        let ew = entry_width(e) as i32 + 18;
        if x > 10 && x + ew > w as i32 - 10 {
            x = 10;
            y += row;
        }
        placed.push((x, y));
        x += ew;
    }
    for (e, (x, y)) in entries.iter().zip(&placed) {
        draw_entry(area, e, *x, *y)?;
    }
    let (_, rest) = area.split_vertically(y + row / 2 + 4);
    Ok(rest)
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

/// A chart of horizontal bars: one row per label, the first at the top.
pub type Rows<'x, 'a> = ChartContext<
    'x,
    SVGBackend<'a>,
    plotters::coord::cartesian::Cartesian2d<
        plotters::coord::types::RangedCoordf64,
        plotters::coord::ranged1d::SegmentedCoord<plotters::coord::types::RangedCoordusize>,
    >,
>;

/// The height of a row of a [`rows`] chart at least, so its labels never touch.
pub const ROW_MIN: u32 = 24;

/// A canvas tall enough for `n` rows of [`ROW_MIN`] beside `overhead` pixels of
/// titles, legends and axes: [`H`] unless there are many rows.
pub fn height_for_rows(n: usize, overhead: u32) -> u32 {
    H.max(overhead + n as u32 * ROW_MIN)
}

/// A horizontal bar chart on `area`: one row per label (the first at the top,
/// named on the y axis, described as `y_desc`), values from 0 to `xmax` along x
/// (described as `x_desc`); bars go from [`row`]'s `Exact(r)` to `Exact(r + 1)`.
pub fn rows<'x, 'a>(
    area: &'x Area<'a>,
    labels: &[String],
    xmax: f64,
    x_desc: &str,
    y_desc: &str,
) -> anyhow::Result<Rows<'x, 'a>> {
    let n = labels.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .margin_top(6)
        .margin_bottom(6)
        .margin_right(24)
        .x_label_area_size(x_label_area(true))
        .y_label_area_size(y_label_area(labels, true))
        .build_cartesian_2d(0.0..xmax, (0..n - 1).into_segmented())
        .map_err(draw_err)?;
    mesh(&mut chart.configure_mesh())
        .disable_y_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(8)
        .x_label_formatter(&|v| short_num(*v))
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(r) if *r < n => labels[n - 1 - r].clone(),
            _ => String::new(),
        })
        .draw()
        .map_err(draw_err)?;
    Ok(chart)
}

/// The row of the `i`th of `n` labels (the first is the top row).
pub fn row(i: usize, n: usize) -> usize {
    n - 1 - i
}

/// A bar of row `r` of `n` from `from` to `to`, a fifth of the row's height
/// clear above and below it.
pub fn bar(
    chart: &Rows,
    (r, n): (usize, usize),
    from: f64,
    to: f64,
    style: ShapeStyle,
) -> Rectangle<(f64, SegmentValue<usize>)> {
    let n = n.max(1);
    let (_, h) = chart.plotting_area().dim_in_pixel();
    let clear = (h as usize / n / 5) as u32;
    let mut rect = Rectangle::new(
        [
            (from, SegmentValue::Exact(r)),
            (to, SegmentValue::Exact(r + 1)),
        ],
        style,
    );
    rect.set_margin(clear, clear, 0, 0);
    rect
}

/// Tick values for a log axis over `lo..hi`: powers of ten, with 2 and 5 (or 3)
/// times them when the range spans too few decades for three ticks.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let within = |mults: &[f64]| -> Vec<f64> {
        let (first, last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        (first..=last)
            .flat_map(|e| mults.iter().map(move |m| m * 10f64.powi(e)))
            .filter(|v| *v >= lo && *v <= hi)
            .collect()
    };
    for mults in [
        &[1.0][..],
        &[1.0, 3.0],
        &[1.0, 2.0, 5.0],
        &[1.0, 1.5, 2.0, 3.0, 5.0, 7.0],
    ] {
        let mut ticks = within(mults);
        if ticks.len() >= 3 {
            // At most five: every other power of ten over many decades.
            while ticks.len() > 5 {
                ticks = ticks.into_iter().step_by(2).collect();
            }
            return ticks;
        }
    }
    within(&[1.0, 1.5, 2.0, 3.0, 5.0, 7.0])
}
