//! Aligned plain-text tables, printed by the CLI's list commands and by
//! the benchmark's report alike.

/// A plain text table: a header row and left-aligned columns two spaces
/// apart; the last column is not padded.
pub(crate) struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: Vec<&'static str>) -> Self {
        Table {
            header,
            rows: Vec::new(),
        }
    }

    /// Adds a row; each cell is one line, so a newline or a control
    /// character in it (from the server) is escaped, never printed raw.
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        use super::escape::{Style, escape};
        self.rows.push(
            cells
                .into_iter()
                .map(|c| escape(&c, Style::Line).into_owned())
                .collect(),
        );
    }

    /// The table, each line ending in a newline.
    pub(crate) fn render(&self) -> String {
        let cols = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let mut s = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i + 1 < cols {
                    let pad = widths[i].saturating_sub(cell.chars().count());
                    s.push_str(cell);
                    s.push_str(&" ".repeat(pad + 2));
                } else {
                    s.push_str(cell);
                }
            }
            s.truncate(s.trim_end().len());
            s.push('\n');
            s
        };
        let mut out = line(self.header.clone());
        for row in &self.rows {
            out.push_str(&line(row.iter().map(String::as_str).collect()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_cannot_break_the_table_or_steer_the_terminal() {
        let mut t = Table::new(vec!["ID", "TITLE"]);
        t.row(vec!["INC-1".into(), "a\nINC-2  forged\x1b[31m".into()]);
        assert_eq!(
            t.render(),
            "ID     TITLE\nINC-1  a\\u{a}INC-2  forged\\u{1b}[31m\n"
        );
    }

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(vec!["ID", "TITLE"]);
        t.row(vec!["INC-1".into(), "x".into()]);
        assert_eq!(t.render(), "ID     TITLE\nINC-1  x\n");
    }
}
