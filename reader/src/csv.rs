//! CSV lines for the interval and day files: a header of column names, then one row per telegram.
//!
//! Values come from [`shared::columns::render`], so a number is written with the meter's own digits. Fields are
//! quoted as RFC 4180 says when they hold a comma or a quote, and line breaks inside a value become spaces (none
//! of the current columns can hold one, but a row must stay one line for the torn-line repair). Lines end in `\n`.

use shared::wire::TelegramMessage;

/// The header line, e.g. `time,power_import_kw\n`.
#[must_use]
pub fn header(columns: &[String]) -> String {
    let mut line = String::new();
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        push_field(&mut line, c);
    }
    line.push('\n');
    line
}

/// The row of one telegram. Unknown columns (which validation rules out) are written empty.
#[must_use]
pub fn row(msg: &TelegramMessage, columns: &[String]) -> String {
    let mut line = String::with_capacity(16 * columns.len());
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        push_field(&mut line, &shared::columns::render(msg, c).unwrap_or_default());
    }
    line.push('\n');
    line
}

fn push_field(line: &mut String, value: &str) {
    let value = if value.contains(['\n', '\r']) { value.replace(['\n', '\r'], " ") } else { value.to_owned() };
    if value.contains([',', '"']) {
        line.push('"');
        line.push_str(&value.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(&value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::telegram;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|&s| s.to_owned()).collect()
    }

    #[test]
    fn rows_follow_the_configured_columns() {
        let msg = telegram("meterkast", "b1", 7, "2024-03-31T00:59:59.5Z");
        let columns = cols(&["time", "seq", "power_import_kw", "energy_import_t1_kwh", "water_m3"]);
        assert_eq!(header(&columns), "time,seq,power_import_kw,energy_import_t1_kwh,water_m3\n");
        assert_eq!(row(&msg, &columns), "2024-03-31T00:59:59.5Z,7,1.193,1164.722,\n");
    }

    #[test]
    fn fields_that_would_break_a_line_are_quoted() {
        let mut line = String::new();
        push_field(&mut line, "a,\"b\"\nc");
        assert_eq!(line, "\"a,\"\"b\"\" c\"");
    }
}
