//! SVG to PNG with resvg, in the system's fonts, so both show the same chart.

use std::path::Path;

use anyhow::Context;

/// System fonts for the PNG renderer.
pub struct Fonts {
    options: resvg::usvg::Options<'static>,
    pub warning: Option<String>,
}

impl Fonts {
    pub fn load() -> Fonts {
        let mut options = resvg::usvg::Options::default();
        let db = options.fontdb_mut();
        db.load_system_fonts();
        let families: Vec<String> = db
            .faces()
            .filter_map(|f| f.families.first().map(|(name, _)| name.clone()))
            .collect();
        let preferred = ["DejaVu Sans", "Liberation Sans", "Noto Sans", "FreeSans"];
        let family = preferred
            .iter()
            .find(|p| families.iter().any(|f| f == *p))
            .map(|p| p.to_string())
            .or_else(|| families.first().cloned());
        let warning = match &family {
            Some(f) => {
                db.set_sans_serif_family(f.clone());
                None
            }
            None => Some(
                "no system fonts found: the PNGs have no text (the SVGs do); \
                 install fonts-dejavu-core"
                    .to_string(),
            ),
        };
        if let Some(f) = family {
            options.font_family = f;
        }
        Fonts { options, warning }
    }

    pub fn render_png(&self, svg: &str, path: &Path) -> anyhow::Result<()> {
        let tree = resvg::usvg::Tree::from_str(svg, &self.options)?;
        let size = tree.size().to_int_size();
        let mut pixmap =
            resvg::tiny_skia::Pixmap::new(size.width(), size.height()).context("an empty plot")?;
        pixmap.fill(resvg::tiny_skia::Color::WHITE);
        resvg::render(
            &tree,
            resvg::tiny_skia::Transform::default(),
            &mut pixmap.as_mut(),
        );
        pixmap.save_png(path)?;
        Ok(())
    }
}
