//! `report.html`: the report as one self-contained page, written next to
//! `report.md` from the same markdown. The markdown is converted by
//! pulldown-cmark (tables extension); every heading gets an anchor, every table
//! an `id` after its section and a click-to-sort header (a few lines of plain
//! script in the page), and the plots are the SVGs plotters drew, inline.
//!
//! Nothing is loaded from anywhere: the style and the scripts are in the page, a
//! Content-Security-Policy forbids every other source, and raw HTML in the
//! markdown (a scenario's description, an error message) is shown as text. The
//! first script records every error (a script error, a refused load, a
//! `console.error`) in the body's `data-errors`, so a headless browser can check
//! that the page rendered cleanly; the last sets `data-ready` once the tables are
//! sortable.

use std::collections::HashSet;
use std::fmt::Write as _;

use pulldown_cmark::{html::push_html, Event, HeadingLevel, Options, Parser, Tag};

use super::plots::Chart;

/// The page's parts, in order: `title` (markdown: the `# ` line), `lead` (the
/// decision or verdict, shown first and set apart), `body` (the rest of the
/// text and the tables), the plots, and `terms` (markdown, last).
pub struct Page<'a> {
    pub title: &'a str,
    pub lead: &'a str,
    pub body: &'a str,
    pub charts: &'a [Chart],
    pub terms: &'a str,
}

/// The page's HTML.
pub fn page(p: &Page) -> String {
    let mut c = Converter::default();
    let title = c.convert(p.title);
    let lead = c.convert(p.lead);
    let body = c.convert(p.body);
    let plots = c.plots(p.charts);
    let terms = c.convert(p.terms);
    let name = c
        .headings
        .first()
        .map_or("report".to_string(), |h| h.2.clone());
    let mut toc = String::new();
    for (_, id, text) in c.headings.iter().filter(|h| h.0 == 2) {
        let _ = writeln!(toc, "<li><a href=\"#{id}\">{}</a></li>", escape(text));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>{title_text}</title>\n<script>{ERRORS_JS}</script>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n\
{title}<section class=\"lead\" id=\"lead\">\n{lead}</section>\n\
<nav class=\"toc\" aria-label=\"Contents\"><strong>Contents</strong><ol>\n{toc}</ol></nav>\n\
{body}{plots}{terms}</main>\n<script>{SORT_JS}</script>\n</body>\n</html>\n",
        title_text = escape(&name),
    )
}

/// Markdown to HTML with anchored headings and sortable, anchored tables; the
/// headings seen so far (level, id, text) and ids used, across calls.
#[derive(Default)]
struct Converter {
    headings: Vec<(u8, String, String)>,
    ids: HashSet<String>,
    /// The id of the last `##` heading, which names the tables under it.
    section: String,
    tables: usize,
}

impl Converter {
    fn convert(&mut self, md: &str) -> String {
        let events: Vec<Event> = Parser::new_ext(md, Options::ENABLE_TABLES)
            .map(|e| match e {
                // Raw HTML in the text (from a description, an error) is text.
                Event::Html(s) | Event::InlineHtml(s) => Event::Text(s),
                e => e,
            })
            .collect();
        let mut out = String::new();
        let mut i = 0;
        while i < events.len() {
            match &events[i] {
                Event::Start(Tag::Heading { level, .. }) => {
                    let end = close(&events, i);
                    out.push_str(&self.heading(*level, &events[i + 1..end]));
                    i = end + 1;
                }
                Event::Start(Tag::Table(_)) => {
                    let end = close(&events, i);
                    out.push_str(&self.table(&events[i..=end]));
                    i = end + 1;
                }
                _ => {
                    let start = i;
                    while i < events.len()
                        && !matches!(
                            events[i],
                            Event::Start(Tag::Heading { .. }) | Event::Start(Tag::Table(_))
                        )
                    {
                        i += 1;
                    }
                    push_html(&mut out, events[start..i].iter().cloned());
                }
            }
        }
        out
    }

    /// A new id from `text`: lower case letters and digits, words joined by `-`,
    /// `-2`, `-3`… when taken.
    fn id(&mut self, text: &str) -> String {
        let mut slug = String::new();
        for c in text.chars().flat_map(char::to_lowercase) {
            if c.is_alphanumeric() {
                slug.push(c);
            } else if !slug.is_empty() && !slug.ends_with('-') {
                slug.push('-');
            }
        }
        // At most 48 characters, cut at a word's end (a title can be long).
        while slug.chars().count() > 48 {
            match slug.rfind('-') {
                Some(k) => slug.truncate(k),
                None => slug = slug.chars().take(48).collect(),
            }
        }
        let slug = match slug.trim_end_matches('-') {
            "" => "section".to_string(),
            s => s.to_string(),
        };
        let mut id = slug.clone();
        let mut n = 1;
        while !self.ids.insert(id.clone()) {
            n += 1;
            id = format!("{slug}-{n}");
        }
        id
    }

    fn heading(&mut self, level: HeadingLevel, inner: &[Event]) -> String {
        let text: String = inner
            .iter()
            .filter_map(|e| match e {
                Event::Text(t) | Event::Code(t) => Some(t.as_ref()),
                _ => None,
            })
            .collect();
        let id = self.id(&text);
        let n = level as u8;
        if n <= 2 {
            self.section = id.clone();
            self.tables = 0;
        }
        self.headings.push((n, id.clone(), text));
        let mut html = String::new();
        push_html(&mut html, inner.iter().cloned());
        format!(
            "<h{n} id=\"{id}\">{html} <a class=\"anchor\" href=\"#{id}\" aria-label=\"link to this section\">#</a></h{n}>\n"
        )
    }

    fn table(&mut self, events: &[Event]) -> String {
        self.tables += 1;
        let id = self.id(&match self.tables {
            1 => format!("{}-table", self.section),
            n => format!("{}-table-{n}", self.section),
        });
        let mut html = String::new();
        push_html(&mut html, events.iter().cloned());
        let html = html.replacen(
            "<table>",
            &format!("<table id=\"{id}\" class=\"sortable\">"),
            1,
        );
        format!("<div class=\"table-wrap\">{html}</div>\n")
    }

    /// The "Plots" section: each chart's SVG inline, its title and what it shows
    /// below it.
    fn plots(&mut self, charts: &[Chart]) -> String {
        if charts.is_empty() {
            return String::new();
        }
        let id = self.id("Plots");
        self.headings.push((2, id.clone(), "Plots".into()));
        let mut html = format!(
            "<h2 id=\"{id}\">Plots <a class=\"anchor\" href=\"#{id}\" aria-label=\"link to this section\">#</a></h2>\n"
        );
        for chart in charts {
            let fig = self.id(&format!("plot {}", chart.name));
            let _ = writeln!(
                html,
                "<figure id=\"{fig}\" class=\"plot\">\n{}\n<figcaption><a href=\"#{fig}\"><strong>{}</strong></a>: {}</figcaption>\n</figure>",
                // The SVG as plotters wrote it (an XML declaration, if any, has no
                // place inside HTML).
                chart.svg.trim_start_matches(|c: char| c != '<').trim(),
                escape(chart.title),
                escape(&chart.about),
            );
        }
        html
    }
}

/// The index of the `End` matching the `Start` at `i`.
fn close(events: &[Event], i: usize) -> usize {
    let mut depth = 0usize;
    for (k, e) in events.iter().enumerate().skip(i) {
        match e {
            Event::Start(_) => depth += 1,
            Event::End(_) => {
                depth -= 1;
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    events.len() - 1
}

/// Text made safe for HTML, in an element or a quoted attribute.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Recorded before anything else runs: every error, refused load and
/// `console.error`, in `<body data-errors>`.
const ERRORS_JS: &str = r#"
(function () {
  var errors = [];
  function note(m) {
    errors.push(String(m));
    if (document.body) document.body.setAttribute("data-errors", errors.join("\n"));
  }
  window.addEventListener("error", function (e) {
    var t = e.target;
    note(e.message || ("could not load " + ((t && (t.src || t.href)) || "a resource")));
  }, true);
  window.addEventListener("unhandledrejection", function (e) { note("unhandled rejection: " + e.reason); });
  document.addEventListener("securitypolicyviolation", function (e) { note("refused by the page's policy: " + e.blockedURI); });
  var consoleError = console.error;
  console.error = function () {
    note(Array.prototype.join.call(arguments, " "));
    return consoleError.apply(console, arguments);
  };
  document.addEventListener("DOMContentLoaded", function () {
    if (errors.length) document.body.setAttribute("data-errors", errors.join("\n"));
  });
})();
"#;

/// Click (or Enter on) a header to sort its table by that column, again to
/// reverse: numbers by value (µs, ms and s, KiB, MiB and GiB in one unit), text
/// alphabetically, "–" last.
const SORT_JS: &str = r#"
(function () {
  var scale = { "µs": 1e-6, "ms": 1e-3, "s": 1, "KiB": 1024, "MiB": 1048576, "GiB": 1073741824 };
  function key(cell) {
    var t = cell ? cell.textContent.trim() : "";
    var m = t.replace(/,/g, "").match(/^\$?([-+]?\d+(?:\.\d+)?)\s*(µs|ms|s|KiB|MiB|GiB)?(?![\w])/);
    if (!m) return t.toLowerCase();
    return parseFloat(m[1]) * (m[2] ? scale[m[2]] : 1);
  }
  function compare(x, y) {
    if (typeof x === typeof y) return x < y ? -1 : x > y ? 1 : 0;
    return typeof x === "number" ? -1 : 1;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.querySelectorAll("thead th");
    heads.forEach(function (th, col) {
      th.tabIndex = 0;
      th.title = "sort by this column";
      function sort() {
        var body = table.tBodies[0];
        if (!body) return;
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var r = compare(key(a.cells[col]), key(b.cells[col]));
          return ascending ? r : -r;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); }
      });
    });
  });
  document.body.setAttribute("data-ready", "sortable");
})();
"#;

const CSS: &str = r#"
body { margin: 0; font: 16px/1.5 system-ui, "DejaVu Sans", sans-serif; color: #1a1a1a; background: #fff; }
main { max-width: 1200px; margin: 0 auto; padding: 1rem 1.5rem 4rem; }
h1 { font-size: 1.6rem; margin: 0.5rem 0 1rem; }
h2 { font-size: 1.3rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.1rem; }
a.anchor { color: #999; text-decoration: none; font-weight: normal; visibility: hidden; }
h1:hover a.anchor, h2:hover a.anchor, h3:hover a.anchor, a.anchor:focus { visibility: visible; }
section.lead { background: #f3f7fb; border-left: 4px solid #1f77b4; padding: 0.2rem 1.2rem 0.6rem; }
section.lead h2 { margin-top: 0.6rem; border: none; }
nav.toc { margin: 1.2rem 0; font-size: 0.95rem; }
nav.toc ol { display: inline; padding: 0; }
nav.toc li { display: inline; margin-left: 1rem; }
.table-wrap { overflow-x: auto; margin: 0.8rem 0; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.55rem; white-space: nowrap; }
thead th { background: #eef1f4; cursor: pointer; user-select: none; white-space: normal; min-width: 4rem; }
thead th[aria-sort="ascending"]::after { content: " ▲"; }
thead th[aria-sort="descending"]::after { content: " ▼"; }
tbody tr:nth-child(even) { background: #fafafa; }
code { background: #f2f2f2; padding: 0 0.2rem; border-radius: 3px; }
figure.plot { margin: 1.5rem 0; }
figure.plot svg { display: block; max-width: 100%; height: auto; border: 1px solid #e4e4e4; }
figcaption { font-size: 0.95rem; margin-top: 0.4rem; }
figcaption a { color: inherit; text-decoration: none; }
"#;
