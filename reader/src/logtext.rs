//! Text from datagrams, made safe to log.
//!
//! A listener name, a boot id or a parser's error message quoting a datagram can hold anything a sender chose:
//! newlines (a forged log line), NULs, terminal escape sequences, or invisible characters that reorder what a
//! reader of the log sees. [`Printable`] writes such text with every control character, every Unicode format
//! character (bidirectional overrides, zero-width characters) and the backslash escaped as `\n`, `\r`, `\t`,
//! `\\` or `\u{…}`, so one log record stays one line and says exactly what arrived. Ordinary names print as they
//! are.

use std::fmt;

/// Displays `self.0` with control and format characters escaped; see the module documentation.
#[derive(Clone, Copy, Debug)]
pub struct Printable<'a>(pub &'a str);

/// Unicode format characters (category Cf) that change how text around them is shown.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{ad}' | '\u{61c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
}

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(|c: char| c == '\\' || c.is_control() || is_invisible(c)) {
            f.write_str(&rest[..i])?;
            let c = rest[i..].chars().next().unwrap_or_default();
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\\' => f.write_str("\\\\")?,
                c => write!(f, "\\u{{{:x}}}", u32::from(c))?,
            }
            rest = &rest[i + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_invisible_characters_are_escaped_and_names_print_as_they_are() {
        let cases = [
            ("meterkast", "meterkast"),
            ("zolder-2.b_c", "zolder-2.b_c"),
            ("é 电表", "é 电表"),
            ("a\nINFO forged line", "a\\nINFO forged line"),
            ("nul\0here", "nul\\u{0}here"),
            ("\x1b[31mred", "\\u{1b}[31mred"),
            ("tab\tcr\r", "tab\\tcr\\r"),
            ("back\\slash", "back\\\\slash"),
            ("\u{202e}txt.exe", "\\u{202e}txt.exe"),
            ("c1\u{85}", "c1\\u{85}"),
        ];
        for (raw, shown) in cases {
            assert_eq!(Printable(raw).to_string(), shown, "{raw:?}");
        }
    }
}
