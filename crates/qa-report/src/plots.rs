//! The report's plots, drawn once per backend with `plotters`: as SVG (inlined in the HTML page
//! and written beside it) and as PNG. Text is set in DejaVu Sans, embedded in the binary, so the
//! plots look the same on a machine without fonts.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::SegmentedCoord;
use plotters::coord::types::RangedCoordusize;
use plotters::prelude::*;
use qa_data::files::write_bytes_atomic;
use qa_filters::Funnel;
use qa_stage::layout::Model;

use crate::analysis::{Analysis, Breakdown};
use crate::error::{Error, Result};
use crate::gather::{Gathered, SystemRow};

const SIZE: (u32, u32) = (960, 520);
const FONT: &str = "sans-serif";

/// The plots' file stems, by which the report places them.
pub mod stems {
    /// EM and F1 with intervals.
    pub const SCORES: &str = "scores";
    /// The loss curves of A, B and C.
    pub const LOSS_CURVES: &str = "loss_curves";
    /// The synthesis funnel.
    pub const FUNNEL: &str = "funnel";
    /// The n-gram overlap histogram.
    pub const NGRAM_OVERLAP: &str = "ngram_overlap";
    /// F1 by question type.
    pub const BREAKDOWN: &str = "f1_by_question_type";
}

/// A plot as written: its file stem, title and SVG text.
#[derive(Debug, Clone)]
pub struct Plot {
    /// File stem of `<stem>.svg` and `<stem>.png`.
    pub stem: &'static str,
    /// What it shows, in words.
    pub title: &'static str,
    /// The SVG document.
    pub svg: String,
}

type Drawn<DB> = std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// `n` segments, one per bar (plotters' segmented range includes its end: `0..n` has `n + 1`).
fn segments(n: usize) -> SegmentedCoord<RangedCoordusize> {
    (0..n.saturating_sub(1)).into_segmented()
}

/// A figure that can be drawn on any plotters backend.
trait Figure {
    const STEM: &'static str;
    const TITLE: &'static str;
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn<DB>;
}

/// The colour of a system: A blue, B red, C green, the base model grey.
fn colour(row: &SystemRow) -> RGBColor {
    match row.model {
        Some(Model::A) => RGBColor(31, 119, 180),
        Some(Model::B) => RGBColor(214, 39, 40),
        Some(Model::C) => RGBColor(44, 160, 44),
        None => RGBColor(127, 127, 127),
    }
}

/// EM and F1 of every system, with their confidence intervals as whiskers.
struct Scores<'a>(&'a [SystemRow]);

impl Figure for Scores<'_> {
    const STEM: &'static str = stems::SCORES;
    const TITLE: &'static str = "Exact match and F1 on the test set, with confidence intervals";

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn<DB> {
        root.fill(&WHITE)?;
        let rows = self.0;
        let labels: Vec<String> = rows.iter().map(SystemRow::label).collect();
        let panels = root.split_evenly((1, 2));
        for (panel, (name, pick)) in panels.iter().zip([
            (
                "Exact match (%)",
                (|r| r.metrics.exact_match) as fn(&SystemRow) -> _,
            ),
            ("F1 (%)", |r| r.metrics.f1),
        ]) {
            let mut chart = ChartBuilder::on(panel)
                .caption(name, (FONT, 22))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(48)
                .build_cartesian_2d(segments(rows.len()), 0f64..100f64)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(rows.len())
                .y_label_formatter(&|y| format!("{y:.0}"))
                .x_label_formatter(&|x| match x {
                    SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
                    _ => String::new(),
                })
                .label_style((FONT, 15))
                .draw()?;
            chart.draw_series(rows.iter().enumerate().map(|(i, row)| {
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), pick(row).value),
                    ],
                    colour(row).filled(),
                );
                bar.set_margin(0, 0, 14, 14);
                bar
            }))?;
            chart.draw_series(rows.iter().enumerate().map(|(i, row)| {
                let ci = pick(row);
                ErrorBar::new_vertical(
                    SegmentValue::CenterOf(i),
                    ci.low,
                    ci.value,
                    ci.high,
                    BLACK.stroke_width(2),
                    14,
                )
            }))?;
        }
        root.present()
    }
}

/// F1 by question type, a bar per system in each group, with its interval as a whisker; groups
/// too small to read are drawn pale and without whiskers.
struct BreakdownBars<'a>(&'a Breakdown, &'a [SystemRow]);

impl Figure for BreakdownBars<'_> {
    const STEM: &'static str = stems::BREAKDOWN;
    const TITLE: &'static str =
        "F1 by question type, per system, with confidence intervals (pale: under 30 questions)";

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn<DB> {
        root.fill(&WHITE)?;
        let (cells, rows) = (&self.0.cells, self.1);
        let groups = cells.len();
        // Group g is centred on x = g; its bars share 80% of the unit width.
        let width = 0.8 / rows.len().max(1) as f64;
        let mut chart = ChartBuilder::on(root)
            .caption("F1 by question type", (FONT, 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(48)
            // Headroom above 100 for the legend.
            .build_cartesian_2d(-0.5f64..groups as f64 - 0.5, 0f64..132f64)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(groups)
            .x_label_formatter(&|x| {
                let g = x.round();
                match (x - g).abs() < 1e-6 && g >= 0.0 {
                    true => cells
                        .get(g as usize)
                        .map_or(String::new(), |c| format!("{} ({})", c.group, c.questions)),
                    false => String::new(),
                }
            })
            .y_desc("F1 (%)")
            .y_label_formatter(&|y| match *y <= 100.0 {
                true => format!("{y:.0}"),
                false => String::new(),
            })
            .label_style((FONT, 13))
            .draw()?;
        for (s, row) in rows.iter().enumerate() {
            let colour = colour(row);
            let left = |g: usize| g as f64 - 0.4 + s as f64 * width;
            chart
                .draw_series(cells.iter().enumerate().filter_map(|(g, cell)| {
                    let score = cell.scores.get(s).copied().flatten()?;
                    let style = match cell.precise() {
                        true => colour.filled(),
                        false => colour.mix(0.35).filled(),
                    };
                    Some(Rectangle::new(
                        [(left(g), 0.0), (left(g) + width * 0.9, score.value)],
                        style,
                    ))
                }))?
                .label(row.label())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.filled())
                });
            chart.draw_series(cells.iter().enumerate().filter_map(|(g, cell)| {
                let score = cell.scores.get(s).copied().flatten()?;
                cell.precise().then(|| {
                    ErrorBar::new_vertical(
                        left(g) + width * 0.45,
                        score.low,
                        score.value,
                        score.high,
                        BLACK.stroke_width(1),
                        6,
                    )
                })
            }))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()
    }
}

/// Training loss per step and validation loss per epoch of each trained model.
struct LossCurves<'a>(&'a [SystemRow]);

impl Figure for LossCurves<'_> {
    const STEM: &'static str = stems::LOSS_CURVES;
    const TITLE: &'static str = "Training loss (lines) and validation loss (dots) per step";

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn<DB> {
        root.fill(&WHITE)?;
        let trained: Vec<_> = self
            .0
            .iter()
            .filter_map(|row| row.training.as_ref().map(|t| (row, t)))
            .collect();
        let max_step = trained
            .iter()
            .flat_map(|(_, t)| t.steps.iter().map(|s| s.0))
            .max()
            .unwrap_or(1)
            .max(1);
        let max_loss = trained
            .iter()
            .flat_map(|(_, t)| {
                let steps = t.steps.iter().map(|s| s.1);
                steps.chain(t.evaluations.iter().map(|e| e.loss))
            })
            .filter(|l| l.is_finite())
            .fold(0.0f64, f64::max)
            .max(1e-3);
        let mut chart = ChartBuilder::on(root)
            .caption("Loss of models A, B and C", (FONT, 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..max_step as f64, 0f64..max_loss * 1.05)?;
        chart
            .configure_mesh()
            .x_label_formatter(&|x| format!("{x:.0}"))
            .x_desc("optimiser step")
            .y_desc("cross-entropy per target token")
            .label_style((FONT, 15))
            .draw()?;
        for (row, training) in &trained {
            let colour = colour(row);
            chart
                .draw_series(LineSeries::new(
                    training.steps.iter().map(|&(s, l)| (s as f64, l)),
                    colour.stroke_width(2),
                ))?
                .label(format!("{} training", row.label()))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour));
            chart
                .draw_series(
                    training
                        .evaluations
                        .iter()
                        .map(|e| Circle::new((e.step as f64, e.loss), 5, colour.filled())),
                )?
                .label(format!("{} validation", row.label()))
                .legend(move |(x, y)| Circle::new((x + 10, y), 5, colour.filled()));
        }
        chart
            .configure_series_labels()
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()
    }
}

/// How many synthetic candidates each filter let through, in order.
struct FunnelBars<'a>(&'a Funnel);

impl Figure for FunnelBars<'_> {
    const STEM: &'static str = stems::FUNNEL;
    const TITLE: &'static str = "Synthesis funnel: candidates left after each filter";

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn<DB> {
        root.fill(&WHITE)?;
        let mut steps = vec![("generated".to_string(), self.0.input)];
        let mut left = self.0.input;
        for count in &self.0.rejected {
            left = left.saturating_sub(count.rejected);
            steps.push((format!("after {}", count.filter), left));
        }
        let n = steps.len();
        let mut chart = ChartBuilder::on(root)
            .caption("Synthesis filter funnel", (FONT, 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(230)
            .build_cartesian_2d(0f64..(self.0.input.max(1) as f64) * 1.05, segments(n))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_labels(n)
            .y_label_formatter(&|y| match y {
                // The first step at the top.
                SegmentValue::CenterOf(i) if *i < n => steps[n - 1 - i].0.clone(),
                _ => String::new(),
            })
            .x_desc("candidates")
            .label_style((FONT, 15))
            .draw()?;
        chart.draw_series(steps.iter().enumerate().map(|(i, (_, count))| {
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(n - 1 - i)),
                    (*count as f64, SegmentValue::Exact(n - i)),
                ],
                RGBColor(44, 160, 44).filled(),
            );
            bar.set_margin(6, 6, 0, 0);
            bar
        }))?;
        root.present()
    }
}

/// Histogram of the n-gram overlap between synthetic questions and their seed questions.
struct Overlaps<'a>(&'a [f64], usize);

const BINS: usize = 10;

impl Figure for Overlaps<'_> {
    const STEM: &'static str = stems::NGRAM_OVERLAP;
    const TITLE: &'static str = "n-gram overlap of synthetic questions with their seed questions";

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn<DB> {
        root.fill(&WHITE)?;
        let bin = |v: f64| ((v * BINS as f64).floor() as usize).min(BINS - 1);
        let mut counts = [0usize; BINS];
        for &v in self.0 {
            counts[bin(v)] += 1;
        }
        let top = counts.iter().copied().max().unwrap_or(0).max(1);
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "{}-gram overlap with the seed question ({} synthetic questions)",
                    self.1,
                    self.0.len()
                ),
                (FONT, 22),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(segments(BINS), 0usize..top + top / 10 + 1)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(BINS)
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => {
                    format!("{:.1}–{:.1}", *i as f64 / 10.0, (*i + 1) as f64 / 10.0)
                }
                _ => String::new(),
            })
            .x_desc("share of the synthetic question's n-grams found in its seed")
            .y_desc("questions")
            .label_style((FONT, 15))
            .draw()?;
        chart.draw_series(
            Histogram::vertical(&chart)
                .style(RGBColor(44, 160, 44).filled())
                .margin(6)
                .data(self.0.iter().map(|&v| (bin(v), 1))),
        )?;
        root.present()
    }
}

/// Registers the embedded font under [`FONT`], once per process.
fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
    });
    match ok {
        true => Ok(()),
        false => Err(Error::Plot {
            name: "font",
            message: "the embedded DejaVu Sans font could not be read".into(),
        }),
    }
}

fn plot_error(name: &'static str) -> impl Fn(&dyn std::fmt::Display) -> Error {
    move |e| Error::Plot {
        name,
        message: e.to_string(),
    }
}

/// Draws `figure` as SVG and PNG into `dir` (each written atomically); returns the SVG.
fn render<F: Figure>(figure: &F, dir: &Path) -> Result<(Plot, [PathBuf; 2])> {
    register_font()?;
    let fail = plot_error(F::STEM);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        figure.draw(&root).map_err(|e| fail(&e))?;
    }
    let (width, height) = SIZE;
    let mut pixels = vec![0u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area();
        figure.draw(&root).map_err(|e| fail(&e))?;
    }
    let mut png_bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png_bytes, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| fail(&e))?;
        writer.write_image_data(&pixels).map_err(|e| fail(&e))?;
        writer.finish().map_err(|e| fail(&e))?;
    }
    let svg_path = dir.join(format!("{}.svg", F::STEM));
    let png_path = dir.join(format!("{}.png", F::STEM));
    write_bytes_atomic(&svg_path, svg.as_bytes())?;
    write_bytes_atomic(&png_path, &png_bytes)?;
    let plot = Plot {
        stem: F::STEM,
        title: F::TITLE,
        svg,
    };
    Ok((plot, [svg_path, png_path]))
}

/// Draws every plot the run's data allows into `dir`; returns them and the files written.
pub fn draw_all(
    gathered: &Gathered,
    analysis: &Analysis,
    overlap_n: usize,
    dir: &Path,
) -> Result<(Vec<Plot>, Vec<PathBuf>)> {
    let mut plots = Vec::new();
    let mut files = Vec::new();
    let mut keep = |(plot, written): (Plot, [PathBuf; 2])| {
        plots.push(plot);
        files.extend(written);
    };
    keep(render(&Scores(&gathered.rows), dir)?);
    keep(render(&LossCurves(&gathered.rows), dir)?);
    if let Some(funnel) = &gathered.funnel {
        keep(render(&FunnelBars(funnel), dir)?);
    }
    keep(render(&Overlaps(&gathered.overlaps, overlap_n), dir)?);
    if let Some(by_type) = analysis.breakdowns.first() {
        keep(render(&BreakdownBars(by_type, &gathered.rows), dir)?);
    }
    Ok((plots, files))
}
