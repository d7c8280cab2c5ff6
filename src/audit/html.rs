//! Self-contained HTML audit pages: no network, no external script. A summary chart (inline
//! SVG bars) and one sortable table per report (a click on a header sorts by that column).
use arrow::array::Array;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use super::{AuditError, Rows};

/// One report on a page.
pub struct Section<'a> {
    /// The report's name (an anchor).
    pub name: &'a str,
    /// Its heading.
    pub title: &'a str,
    /// What it answers.
    pub description: &'a str,
    /// Its rows.
    pub rows: &'a Rows,
}

/// A bar of the summary chart: a label and a count.
pub type Bar = (String, u64);

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The rows as strings (NULL as empty).
pub fn cells(rows: &Rows) -> Result<Vec<Vec<String>>, AuditError> {
    let opts = FormatOptions::default();
    let mut out = Vec::new();
    for b in &rows.batches {
        let formatters = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AuditError::Input(format!("formatting the result: {e}")))?;
        for i in 0..b.num_rows() {
            out.push(
                b.columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(c, f)| if c.is_null(i) { String::new() } else { f.value(i).to_string() })
                    .collect(),
            );
        }
    }
    Ok(out)
}

/// Rows per value of the `app` column (or one bar for all), for a report's chart.
pub fn rows_per_app(rows: &Rows) -> Result<Vec<Bar>, AuditError> {
    let col = rows.schema.fields().iter().position(|f| f.name() == "app");
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    for r in cells(rows)? {
        let key = col
            .map(|i| r[i].clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "(all)".into());
        *counts.entry(key).or_default() += 1;
    }
    Ok(counts.into_iter().collect())
}

fn chart(title: &str, bars: &[Bar]) -> String {
    if bars.is_empty() {
        return format!(
            "<figure><figcaption>{}</figcaption><p class=\"none\">nothing to chart</p></figure>",
            esc(title)
        );
    }
    let max = bars.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1) as f64;
    let (row, label_w, bar_w) = (22, 260, 420);
    let mut svg = format!(
        "<svg role=\"img\" aria-label=\"{t}\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">",
        t = esc(title),
        w = label_w + bar_w + 60,
        h = bars.len() * row + 4
    );
    for (i, (label, n)) in bars.iter().enumerate() {
        let y = i * row + 2;
        let w = ((*n as f64 / max) * bar_w as f64).max(1.0);
        svg.push_str(&format!(
            "<text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{l}</text><rect x=\"{bx}\" y=\"{y}\" width=\"{w:.1}\" height=\"{bh}\"><title>{l}: {n}</title></rect><text x=\"{nx:.1}\" y=\"{ty}\">{n}</text>",
            lx = label_w - 6,
            ty = y + 14,
            l = esc(label),
            bx = label_w,
            bh = row - 6,
            nx = label_w as f64 + w + 4.0,
        ));
    }
    svg.push_str("</svg>");
    format!("<figure><figcaption>{}</figcaption>{svg}</figure>", esc(title))
}

fn table(s: &Section) -> Result<String, AuditError> {
    let mut h = format!(
        "<section id=\"{n}\"><h2>{t}</h2><p class=\"about\">{d}</p><p class=\"count\">{c} row(s) · report <code>{n}</code></p><table class=\"sortable\"><thead><tr>",
        n = esc(s.name),
        t = esc(s.title),
        d = esc(s.description).replace('\n', "<br>"),
        c = s.rows.len()
    );
    for f in s.rows.schema.fields() {
        h.push_str(&format!("<th scope=\"col\" tabindex=\"0\">{}</th>", esc(f.name())));
    }
    h.push_str("</tr></thead><tbody>");
    for r in cells(s.rows)? {
        h.push_str("<tr>");
        for v in r {
            h.push_str(&format!("<td>{}</td>", esc(&v)));
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table></section>");
    Ok(h)
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}\
table{border-collapse:collapse;margin-top:.5em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#eef;cursor:pointer;user-select:none}th.asc::after{content:' \\25B2'}th.desc::after{content:' \\25BC'}\
tbody tr:nth-child(even){background:#f8f8fb}figure{margin:1em 0}figcaption{font-weight:600;margin-bottom:.3em}\
svg text{font-size:12px;fill:#333}svg rect{fill:#4a6fd4}.about{color:#555}.count,.none{color:#777}nav a{margin-right:1em}";

/// Sort a table by the clicked column; numbers numerically, the rest as text.
const SCRIPT: &str = "document.querySelectorAll('table.sortable').forEach(function(t){\
t.querySelectorAll('th').forEach(function(th,i){function sort(){var asc=!th.classList.contains('asc');\
t.querySelectorAll('th').forEach(function(o){o.classList.remove('asc','desc')});th.classList.add(asc?'asc':'desc');\
var body=t.tBodies[0];var rows=Array.prototype.slice.call(body.rows);rows.sort(function(a,b){\
var x=a.cells[i].textContent,y=b.cells[i].textContent;var nx=parseFloat(x),ny=parseFloat(y);\
var c=(!isNaN(nx)&&!isNaN(ny)&&String(nx)===x&&String(ny)===y)?nx-ny:x.localeCompare(y);return asc?c:-c});\
rows.forEach(function(r){body.appendChild(r)})}th.addEventListener('click',sort);\
th.addEventListener('keydown',function(e){if(e.key==='Enter'){sort()}})})});";

/// A whole page: a heading, charts, then one section per report.
pub fn page(heading: &str, generated: &str, charts: &[(&str, Vec<Bar>)], sections: &[Section]) -> Result<String, AuditError> {
    let mut body = String::new();
    if sections.len() > 1 {
        body.push_str("<nav>");
        for s in sections {
            body.push_str(&format!("<a href=\"#{n}\">{n}</a>", n = esc(s.name)));
        }
        body.push_str("</nav>");
    }
    for (title, bars) in charts {
        body.push_str(&chart(title, bars));
    }
    for s in sections {
        body.push_str(&table(s)?);
    }
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{h}</title><style>{STYLE}</style></head>\
<body><h1>{h}</h1><p class=\"count\">{g}</p>{body}<script>{SCRIPT}</script></body></html>\n",
        h = esc(heading),
        g = esc(generated),
    ))
}
