//! [`Screen`]: the bytes a device writes to its terminal, turned into the lines a person
//! would see. ANSI escape sequences are removed (cursor moves and line erases are applied
//! first), backspace and carriage return move the cursor and later characters overwrite, so
//! the erase sequences devices send after a `--More--` prompt (`\b\b\b   \b\b\b`,
//! `\x1b[42D ... \x1b[42D`, `\r   \r`) leave nothing behind. Lines that were not
//! overwritten are kept exactly as sent (Netmiko's `normalize_linefeeds` + ANSI stripping
//! give the same text); lines that were are right-trimmed, like a terminal shows them.

/// Escape-sequence parser state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// After ESC.
    Esc,
    /// ESC ( or ESC ): one more byte (a character set).
    Charset,
    /// ESC [ ...: a control sequence.
    Csi,
    /// ESC ] ...: an operating system command, ended by BEL or ESC \.
    Osc,
    /// ESC inside an OSC.
    OscEsc,
}

/// A terminal's text: finished lines and the line being written.
#[derive(Debug)]
pub struct Screen {
    lines: Vec<String>,
    line: Vec<u8>,
    cursor: usize,
    overwritten: bool,
    escape: Escape,
    params: Vec<u8>,
}

impl Default for Screen {
    fn default() -> Self {
        Screen::new()
    }
}

impl Screen {
    /// An empty screen.
    pub fn new() -> Screen {
        Screen {
            lines: Vec::new(),
            line: Vec::new(),
            cursor: 0,
            overwritten: false,
            escape: Escape::None,
            params: Vec::new(),
        }
    }

    /// Applies bytes received from the device.
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.byte(b);
        }
    }

    fn byte(&mut self, b: u8) {
        match self.escape {
            Escape::None => match b {
                0x1b => self.escape = Escape::Esc,
                b'\n' => self.commit(),
                b'\r' => self.cursor = 0,
                0x08 => self.cursor = self.cursor.saturating_sub(1),
                b'\t' => self.put(b),
                0..=0x1f | 0x7f => {}
                _ => self.put(b),
            },
            Escape::Esc => {
                self.escape = match b {
                    b'[' => {
                        self.params.clear();
                        Escape::Csi
                    }
                    b']' => Escape::Osc,
                    b'(' | b')' => Escape::Charset,
                    b'E' => {
                        self.commit();
                        Escape::None
                    }
                    _ => Escape::None,
                }
            }
            Escape::Charset => self.escape = Escape::None,
            Escape::Csi => {
                if (0x20..=0x3f).contains(&b) {
                    if self.params.len() < 32 {
                        self.params.push(b);
                    }
                } else {
                    self.escape = Escape::None;
                    self.control(b);
                }
            }
            Escape::Osc => match b {
                0x07 => self.escape = Escape::None,
                0x1b => self.escape = Escape::OscEsc,
                _ => {}
            },
            Escape::OscEsc => {
                self.escape = if b == b'\\' {
                    Escape::None
                } else {
                    Escape::Osc
                }
            }
        }
    }

    /// The first numeric parameter of the control sequence, `default` when absent.
    fn param(&self, default: usize) -> usize {
        let digits: String = self
            .params
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .map(|&b| b as char)
            .collect();
        digits.parse().unwrap_or(default)
    }

    fn control(&mut self, final_byte: u8) {
        match final_byte {
            b'D' => self.cursor = self.cursor.saturating_sub(self.param(1).max(1)),
            b'C' => self.cursor = (self.cursor + self.param(1).max(1)).min(4096),
            b'G' => self.cursor = self.param(1).clamp(1, 4096) - 1,
            b'K' => {
                match self.param(0) {
                    0 => self.line.truncate(self.cursor),
                    1 => {
                        let end = self.cursor.min(self.line.len());
                        self.line[..end].fill(b' ');
                    }
                    _ => self.line.clear(),
                }
                self.overwritten = true;
            }
            _ => {}
        }
    }

    fn put(&mut self, b: u8) {
        if self.cursor < self.line.len() {
            self.line[self.cursor] = b;
            self.overwritten = true;
        } else {
            if self.line.len() < self.cursor {
                self.line.resize(self.cursor, b' ');
                self.overwritten = true;
            }
            self.line.push(b);
        }
        self.cursor += 1;
    }

    fn commit(&mut self) {
        let mut text = String::from_utf8_lossy(&self.line).into_owned();
        if self.overwritten {
            text.truncate(text.trim_end().len());
        }
        self.lines.push(text);
        self.line.clear();
        self.cursor = 0;
        self.overwritten = false;
    }

    /// The line being written (not ended by a newline yet), as text.
    pub fn current_line(&self) -> String {
        String::from_utf8_lossy(&self.line).into_owned()
    }

    /// Forgets the line being written (a `--More--` prompt that was answered).
    pub fn clear_current_line(&mut self) {
        self.line.clear();
        self.cursor = 0;
        self.overwritten = false;
    }

    /// The finished lines so far.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Takes the finished lines, leaving the screen empty (the line being written too).
    pub fn take_lines(&mut self) -> Vec<String> {
        self.clear_current_line();
        std::mem::take(&mut self.lines)
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.lines.clear();
        self.clear_current_line();
        self.escape = Escape::None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(bytes: &[u8]) -> (Vec<String>, String) {
        let mut s = Screen::new();
        s.feed(bytes);
        (s.lines().to_vec(), s.current_line())
    }

    #[test]
    fn line_endings_are_normalized_like_netmiko() {
        let (lines, cur) = render(b"a\r\nb\r\r\nc\n\rd  \r\nrouter1#");
        assert_eq!(lines, ["a", "b", "c", "d  "]);
        assert_eq!(cur, "router1#");
    }

    #[test]
    fn ansi_sequences_are_removed() {
        let (lines, cur) = render(
            b"\x1b[?2004h\x1b]0;user@h: ~\x07\x1b[01;32muser@h\x1b[00m:~$ ls\r\n\x1b(Bx\r\n$ ",
        );
        assert_eq!(lines, ["user@h:~$ ls", "x"]);
        assert_eq!(cur, "$ ");
    }

    #[test]
    fn more_erase_sequences_leave_nothing() {
        // Cisco: backspaces, spaces, backspaces.
        let (lines, _) = render(b" --More-- \x08\x08\x08\x08\x08\x08\x08\x08\x08\x08          \x08\x08\x08\x08\x08\x08\x08\x08\x08\x08  Hardware is x\r\n");
        assert_eq!(lines, ["  Hardware is x"]);
        // Huawei: cursor left, spaces, cursor left.
        let (lines, _) = render(
            b"  ---- More ----\x1b[42D                                          \x1b[42Dnext\r\n",
        );
        assert_eq!(lines, ["next"]);
        // Carriage return, spaces, carriage return; a shorter line after it.
        let (lines, _) = render(b"--More--\r          \r!\r\n");
        assert_eq!(lines, ["!"]);
        // Erase to end of line.
        let (lines, _) = render(b"--More--\r\x1b[Kok\r\n");
        assert_eq!(lines, ["ok"]);
    }

    #[test]
    fn split_escape_sequences_and_take() {
        let mut s = Screen::new();
        s.feed(b"a\x1b[");
        s.feed(b"1mb\r\nc");
        assert_eq!(s.take_lines(), ["ab"]);
        assert_eq!(s.current_line(), "");
        assert!(s.lines().is_empty());
    }
}
