//! LaTeX output: booktabs tables a paper can `\input` (no preamble; needs the `booktabs` and
//! `array` packages).

use crate::table::Table;

/// Escapes LaTeX's special characters and maps the few non-ASCII symbols the report uses,
/// so the file compiles under plain pdflatex without `inputenc` tricks.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '<' => out.push_str("\\textless{}"),
            '>' => out.push_str("\\textgreater{}"),
            '±' => out.push_str("$\\pm$"),
            '≥' => out.push_str("$\\geq$"),
            '×' => out.push_str("$\\times$"),
            '–' | '—' => out.push_str("--"),
            '″' => out.push_str("''"),
            c if c.is_ascii() => out.push(c),
            _ => out.push('?'),
        }
    }
    out
}

/// One `table*` float: `groups` are (group heading or "", rows of `t`'s shape); a heading
/// spans the table in italics and groups are separated by `\midrule`. `widths` are relative
/// column widths: the table fills 84% of `\linewidth` with narrow column gaps, so it fits a
/// one-column page as well as a two-column `table*` (text columns wrap, ragged right).
pub fn table(caption: &str, label: &str, header: &[String], groups: &[(&str, &Table)], widths: &[f64]) -> String {
    let total: f64 = widths.iter().sum();
    let cols: String = widths
        .iter()
        .map(|w| format!(">{{\\raggedright\\arraybackslash}}p{{{:.3}\\linewidth}}", 0.84 * w / total))
        .collect();
    let mut s = format!(
        "\\begin{{table*}}[t]\n\\centering\\footnotesize\\setlength{{\\tabcolsep}}{{3pt}}\n\\caption{{{}}}\n\\label{{{label}}}\n",
        escape(caption)
    );
    s += &format!("\\begin{{tabular}}{{@{{}}{cols}@{{}}}}\n\\toprule\n");
    s += &header.iter().map(|h| escape(h)).collect::<Vec<_>>().join(" & ");
    s += " \\\\\n";
    for (heading, t) in groups {
        s += "\\midrule\n";
        if !heading.is_empty() {
            s += &format!("\\multicolumn{{{}}}{{@{{}}l}}{{\\emph{{{}}}}} \\\\\n", header.len(), escape(heading));
        }
        for r in &t.rows {
            s += &r.iter().map(|c| escape(c)).collect::<Vec<_>>().join(" & ");
            s += " \\\\\n";
        }
    }
    s + "\\bottomrule\n\\end{tabular}\n\\end{table*}\n\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_specials() {
        assert_eq!(
            escape("a_b & 50% ± 1 #x {y} ~^\\"),
            "a\\_b \\& 50\\% $\\pm$ 1 \\#x \\{y\\} \\textasciitilde{}\\textasciicircum{}\\textbackslash{}"
        );
    }
}
