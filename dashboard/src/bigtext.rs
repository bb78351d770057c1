//! Large digits for the net power: a 3×5 pixel font drawn with block characters.
//!
//! Two sizes: [`Font::Large`] draws each pixel as two full blocks (6×5 cells a digit, which looks square on a
//! terminal), [`Font::Small`] packs two pixel rows into one cell with half blocks (3×3 cells). Only digits, sign,
//! decimal point and space are drawn; anything else is drawn as a space. Drawing is clipped to the area given.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;

/// A size of the big font.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Font {
    /// 6 cells wide, 5 rows high per digit.
    Large,
    /// 3 cells wide, 3 rows high per digit.
    Small,
}

/// Pixel rows of each glyph, 3 pixels wide (`#` set). The decimal point is one pixel wide.
fn glyph(c: char) -> [&'static str; 5] {
    match c {
        '0' => ["###", "# #", "# #", "# #", "###"],
        '1' => [" # ", "## ", " # ", " # ", "###"],
        '2' => ["###", "  #", "###", "#  ", "###"],
        '3' => ["###", "  #", "###", "  #", "###"],
        '4' => ["# #", "# #", "###", "  #", "  #"],
        '5' => ["###", "#  ", "###", "  #", "###"],
        '6' => ["###", "#  ", "###", "# #", "###"],
        '7' => ["###", "  #", "  #", "  #", "  #"],
        '8' => ["###", "# #", "###", "# #", "###"],
        '9' => ["###", "# #", "###", "  #", "###"],
        '+' => ["   ", " # ", "###", " # ", "   "],
        '-' => ["   ", "   ", "###", "   ", "   "],
        '.' => [" ", " ", " ", " ", "#"],
        _ => ["   ", "   ", "   ", "   ", "   "],
    }
}

impl Font {
    /// Rows the font needs.
    #[must_use]
    pub fn height(self) -> u16 {
        match self {
            Font::Large => 5,
            Font::Small => 3,
        }
    }

    fn pixel_width(self) -> u16 {
        match self {
            Font::Large => 2,
            Font::Small => 1,
        }
    }

    /// Columns `text` needs: each glyph plus one blank column between glyphs.
    #[must_use]
    pub fn width(self, text: &str) -> u16 {
        let glyphs: u16 = text.chars().map(|c| glyph(c)[0].len() as u16 * self.pixel_width()).sum();
        let gaps = text.chars().count().saturating_sub(1) as u16;
        glyphs + gaps
    }

    /// Draws `text` with its top-left corner at `(x, y)`, clipped to `clip`.
    pub fn render(self, text: &str, x: u16, y: u16, clip: Rect, buf: &mut Buffer, style: Style) {
        let clip = clip.intersection(buf.area);
        let mut cx = x;
        for c in text.chars() {
            let rows = glyph(c);
            let cols = rows[0].len() as u16;
            for px in 0..cols {
                for row in 0..self.height() {
                    let symbol = self.symbol(&rows, px as usize, row as usize);
                    for dx in 0..self.pixel_width() {
                        let pos = (cx + px * self.pixel_width() + dx, y + row);
                        if clip.contains(pos.into()) && symbol != " " {
                            if let Some(cell) = buf.cell_mut(pos) {
                                cell.set_symbol(symbol).set_style(style);
                            }
                        }
                    }
                }
            }
            cx = cx.saturating_add(cols * self.pixel_width() + 1);
        }
    }

    fn symbol(self, rows: &[&str; 5], px: usize, row: usize) -> &'static str {
        let set = |r: usize| rows.get(r).and_then(|s| s.as_bytes().get(px)) == Some(&b'#');
        match self {
            Font::Large => {
                if set(row) {
                    "█"
                } else {
                    " "
                }
            }
            Font::Small => match (set(row * 2), set(row * 2 + 1)) {
                (true, true) => "█",
                (true, false) => "▀",
                (false, true) => "▄",
                (false, false) => " ",
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draw(font: Font, text: &str) -> Vec<String> {
        let area = Rect::new(0, 0, font.width(text), font.height());
        let mut buf = Buffer::empty(area);
        font.render(text, 0, 0, area, &mut buf, Style::default());
        (0..area.height).map(|y| (0..area.width).map(|x| buf[(x, y)].symbol().to_owned()).collect::<String>()).collect()
    }

    #[test]
    fn small_font_packs_two_rows_per_cell() {
        assert_eq!(draw(Font::Small, "-1.5"), ["    ▄█    █▀▀", "▀▀▀  █    ▀▀█", "    ▀▀▀ ▀ ▀▀▀"].map(String::from));
    }

    #[test]
    fn large_font_is_square() {
        let rows = draw(Font::Large, "7");
        assert_eq!(rows, ["██████", "    ██", "    ██", "    ██", "    ██"].map(String::from));
    }

    #[test]
    fn drawing_is_clipped() {
        let area = Rect::new(0, 0, 3, 1);
        let mut buf = Buffer::empty(area);
        Font::Large.render("888", 0, 0, Rect::new(0, 0, 100, 100), &mut buf, Style::default());
        Font::Small.render("888", 2, 5, area, &mut buf, Style::default());
        assert_eq!(buf[(0, 0)].symbol(), "█");
    }
}
