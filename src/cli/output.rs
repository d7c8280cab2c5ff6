//! Shared terminal output: tables and progress bars.
use std::io::IsTerminal;

use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};

pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
}

/// Progress bars only on a terminal, and never with `--quiet`.
pub fn progress_enabled(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

/// A table row of directory data, every cell escaped for the terminal (see
/// [`scimsync::terminal::printable`]).
pub fn safe_row<S: AsRef<str>>(cells: Vec<S>) -> Vec<String> {
    cells
        .iter()
        .map(|c| scimsync::terminal::printable(c.as_ref()).into_owned())
        .collect()
}
