//! A small builder for the report page: one self-contained HTML file (styles
//! inline, nothing fetched from the network) showing text, metric tables and
//! the PNG pictures written next to it.
//!
//! Every piece of text is HTML-escaped, so labels and file names taken from
//! a dataset cannot break or inject into the page.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::Result;

/// A report page being built: a title, then sections in order.
#[derive(Clone, Debug, Default)]
pub struct HtmlReport {
    title: String,
    sections: Vec<Section>,
}

/// One section of the page: a heading and its blocks, in order.
#[derive(Clone, Debug)]
pub struct Section {
    heading: String,
    blocks: Vec<Block>,
}

#[derive(Clone, Debug)]
enum Block {
    Paragraph(String),
    Table(Vec<(String, String)>),
    Image {
        file: String,
        alt: String,
        caption: String,
    },
}

/// The page's look: readable line length, the system's own fonts, bordered
/// tables, images that shrink to the window.
const STYLE: &str = "\
body{margin:0;background:#fafafa;color:#1e1e1e;\
font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif;line-height:1.5}
main{max-width:960px;margin:0 auto;padding:24px 20px 48px;background:#fff}
h1{font-size:1.8em;margin:0.4em 0 0.6em}
h2{font-size:1.35em;margin:1.6em 0 0.5em;padding-bottom:0.2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:0.8em 0}
th,td{border:1px solid #ccc;padding:4px 12px;text-align:left}
td.value{font-variant-numeric:tabular-nums}
tr:nth-child(even){background:#f4f4f4}
figure{margin:1.2em 0}
figure img{max-width:100%;height:auto;border:1px solid #e4e4e4}
figcaption{color:#555;font-size:0.95em;margin-top:0.3em}";

impl HtmlReport {
    /// An empty page titled `title`.
    pub fn new(title: impl Into<String>) -> HtmlReport {
        HtmlReport {
            title: title.into(),
            sections: Vec::new(),
        }
    }

    /// Starts a new section headed `heading` and returns it to be filled.
    pub fn section(&mut self, heading: impl Into<String>) -> &mut Section {
        self.sections.push(Section {
            heading: heading.into(),
            blocks: Vec::new(),
        });
        self.sections.last_mut().expect("a section was just pushed")
    }

    /// The whole page as HTML.
    pub fn render(&self) -> String {
        let mut page = String::new();
        let title = escape(&self.title);
        // Writing to a String cannot fail.
        let _ = write!(
            page,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{title}</title>\n<style>\n{STYLE}\n</style>\n</head>\n<body>\n<main>\n<h1>{title}</h1>\n"
        );
        for section in &self.sections {
            section.render(&mut page);
        }
        page.push_str("</main>\n</body>\n</html>\n");
        page
    }

    /// Writes the page to `path` (usually `report.html` beside its pictures).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        crate::error::write_file(path, self.render().as_bytes())
    }
}

impl Section {
    /// Adds a paragraph of plain text.
    pub fn paragraph(&mut self, text: impl Into<String>) -> &mut Section {
        self.blocks.push(Block::Paragraph(text.into()));
        self
    }

    /// Adds a two-column table of (name, value) rows, such as metrics.
    pub fn table<K: Into<String>, V: Into<String>>(
        &mut self,
        rows: impl IntoIterator<Item = (K, V)>,
    ) -> &mut Section {
        let rows = rows.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        self.blocks.push(Block::Table(rows));
        self
    }

    /// Adds the picture at `file` (a path relative to the page, e.g.
    /// "roc.png"), with `alt` text for screen readers and a visible `caption`.
    pub fn image(
        &mut self,
        file: impl Into<String>,
        alt: impl Into<String>,
        caption: impl Into<String>,
    ) -> &mut Section {
        self.blocks.push(Block::Image {
            file: file.into(),
            alt: alt.into(),
            caption: caption.into(),
        });
        self
    }

    fn render(&self, page: &mut String) {
        // Writing to a String cannot fail.
        let _ = writeln!(page, "<section>\n<h2>{}</h2>", escape(&self.heading));
        for block in &self.blocks {
            let _ = match block {
                Block::Paragraph(text) => writeln!(page, "<p>{}</p>", escape(text)),
                Block::Table(rows) => {
                    page.push_str("<table>\n");
                    for (name, value) in rows {
                        let _ = writeln!(
                            page,
                            "<tr><th>{}</th><td class=\"value\">{}</td></tr>",
                            escape(name),
                            escape(value)
                        );
                    }
                    writeln!(page, "</table>")
                }
                Block::Image { file, alt, caption } => writeln!(
                    page,
                    "<figure>\n<img src=\"{}\" alt=\"{}\">\n<figcaption>{}</figcaption>\n</figure>",
                    escape(file),
                    escape(alt),
                    escape(caption)
                ),
            };
        }
        page.push_str("</section>\n");
    }
}

/// `text` safe to place in HTML text and in quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_quotes_and_ampersands() {
        assert_eq!(
            escape(r#"<script>alert("x & 'y'")</script>"#),
            "&lt;script&gt;alert(&quot;x &amp; &#39;y&#39;&quot;)&lt;/script&gt;"
        );
    }

    #[test]
    fn every_text_of_the_page_is_escaped() {
        let mut report = HtmlReport::new("a <b> title");
        report
            .section("h & h")
            .paragraph("<p>")
            .table([("P@1 <test>", "0.99 & more")])
            .image("a\"b.png", "alt'x", "<cap>");
        let html = report.render();
        for raw in [
            "<b>", "h & h", "<p>\n", "<test>", "& more", "a\"b", "alt'x", "<cap>",
        ] {
            assert!(!html.contains(raw), "{raw:?} left unescaped");
        }
        for escaped in [
            "a &lt;b&gt; title",
            "h &amp; h",
            "&lt;p&gt;",
            "a&quot;b.png",
            "alt&#39;x",
            "&lt;cap&gt;",
        ] {
            assert!(html.contains(escaped), "{escaped:?} missing");
        }
        assert!(!html.contains("http"), "the page must not fetch anything");
    }
}
