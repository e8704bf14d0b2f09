//! The path template grammar of `google.api.http`:
//!
//! ```text
//! Template = "/" Segments [ Verb ] ;
//! Segments = Segment { "/" Segment } ;
//! Segment  = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;
//! FieldPath = IDENT { "." IDENT } ;
//! Verb     = ":" LITERAL ;
//! ```
//!
//! Variables are flattened into the segment list: a template is a plain
//! sequence of literal, `*` and `**` segments, and each variable covers a
//! range of it. That is the shape the matcher compiles.

use std::fmt;

/// One segment of a compiled template.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Matches exactly this text (compared with the normalised raw path).
    Literal(Box<str>),
    /// `*`: exactly one non-empty segment.
    Single,
    /// `**`: zero or more non-empty segments.
    Multi,
}

/// A variable: a request field bound to a range of segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// The field path, e.g. `["book", "name"]` for `{book.name}`.
    pub field_path: Vec<Box<str>>,
    /// First segment index covered by the variable.
    pub start: usize,
    /// One past the last segment index covered by the variable.
    pub end: usize,
}

impl Variable {
    /// Whether the variable covers a single `*` segment or a single literal
    /// (and so is fully percent-decoded, `%2F` included).
    pub fn is_single_segment(&self, segments: &[Segment]) -> bool {
        self.end - self.start == 1 && segments[self.start] != Segment::Multi
    }

    /// The field path joined with dots.
    pub fn field_path_string(&self) -> String {
        self.field_path.join(".")
    }
}

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The segments after the leading `/`, variables flattened.
    pub segments: Vec<Segment>,
    /// The variables, in template order.
    pub variables: Vec<Variable>,
    /// The custom verb after the last `:`, if any.
    pub verb: Option<Box<str>>,
}

/// Why a template does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path template `{template}` at offset {offset}: {reason}")]
pub struct TemplateError {
    /// The template as written.
    pub template: String,
    /// Byte offset of the problem.
    pub offset: usize,
    /// What is wrong.
    pub reason: &'static str,
}

impl Template {
    /// Parses a template such as `/v1/{name=shelves/*/books/*}:archive`.
    pub fn parse(template: &str) -> Result<Template, TemplateError> {
        Parser {
            text: template,
            pos: 0,
        }
        .template()
    }

    /// A canonical text of the template's shape, with variable names
    /// dropped; two templates conflict when their shapes are equal.
    pub fn shape(&self) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            out.push('/');
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Single => out.push('*'),
                Segment::Multi => out.push_str("**"),
            }
        }
        if let Some(verb) = &self.verb {
            out.push(':');
            out.push_str(verb);
        }
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut i = 0;
        while i < self.segments.len() {
            f.write_str("/")?;
            if let Some(var) = self.variables.iter().find(|v| v.start == i) {
                write!(f, "{{{}", var.field_path_string())?;
                let covered = &self.segments[var.start..var.end];
                if covered != [Segment::Single] {
                    f.write_str("=")?;
                    for (j, segment) in covered.iter().enumerate() {
                        if j > 0 {
                            f.write_str("/")?;
                        }
                        write_segment(f, segment)?;
                    }
                }
                f.write_str("}")?;
                i = var.end;
            } else {
                write_segment(f, &self.segments[i])?;
                i += 1;
            }
        }
        if let Some(verb) = &self.verb {
            write!(f, ":{verb}")?;
        }
        Ok(())
    }
}

fn write_segment(f: &mut fmt::Formatter<'_>, segment: &Segment) -> fmt::Result {
    match segment {
        Segment::Literal(text) => f.write_str(text),
        Segment::Single => f.write_str("*"),
        Segment::Multi => f.write_str("**"),
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, reason: &'static str) -> TemplateError {
        TemplateError {
            template: self.text.to_owned(),
            offset: self.pos,
            reason,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn template(mut self) -> Result<Template, TemplateError> {
        if !self.eat(b'/') {
            return Err(self.error("a template starts with `/`"));
        }
        let mut segments = Vec::new();
        let mut variables = Vec::new();
        self.segments(&mut segments, Some(&mut variables))?;
        let verb = if self.eat(b':') {
            let verb = self.literal()?;
            Some(verb)
        } else {
            None
        };
        if self.pos != self.text.len() {
            return Err(self.error("unexpected character"));
        }
        if segments.iter().filter(|s| **s == Segment::Multi).count() > 1 {
            return Err(self.error("at most one `**` is allowed in a template"));
        }
        for (i, var) in variables.iter().enumerate() {
            if variables[..i]
                .iter()
                .any(|v| v.field_path == var.field_path)
            {
                return Err(self.error("a field is bound by two variables"));
            }
        }
        Ok(Template {
            segments,
            variables,
            verb,
        })
    }

    /// Segments = Segment { "/" Segment }. Variables are allowed only at
    /// the top level (`variables` is `None` inside a variable).
    fn segments(
        &mut self,
        segments: &mut Vec<Segment>,
        mut variables: Option<&mut Vec<Variable>>,
    ) -> Result<(), TemplateError> {
        loop {
            match self.peek() {
                Some(b'{') => {
                    let Some(vars) = variables.as_deref_mut() else {
                        return Err(self.error("variables cannot nest"));
                    };
                    self.variable(segments, vars)?;
                }
                Some(b'*') => {
                    self.pos += 1;
                    if self.eat(b'*') {
                        segments.push(Segment::Multi);
                    } else {
                        segments.push(Segment::Single);
                    }
                }
                _ => {
                    let literal = self.literal()?;
                    segments.push(Segment::Literal(literal));
                }
            }
            if !self.eat(b'/') {
                return Ok(());
            }
        }
    }

    fn variable(
        &mut self,
        segments: &mut Vec<Segment>,
        variables: &mut Vec<Variable>,
    ) -> Result<(), TemplateError> {
        self.pos += 1; // `{`
        let mut field_path = vec![self.ident()?];
        while self.eat(b'.') {
            field_path.push(self.ident()?);
        }
        let start = segments.len();
        if self.eat(b'=') {
            self.segments(segments, None)?;
        } else {
            segments.push(Segment::Single);
        }
        if !self.eat(b'}') {
            return Err(self.error("expected `}` closing the variable"));
        }
        variables.push(Variable {
            field_path,
            start,
            end: segments.len(),
        });
        Ok(())
    }

    fn ident(&mut self) -> Result<Box<str>, TemplateError> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            let ok =
                b == b'_' || b.is_ascii_alphabetic() || (self.pos > start && b.is_ascii_digit());
            if !ok {
                break;
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.error("expected a field name"));
        }
        Ok(self.text[start..self.pos].into())
    }

    /// A literal: one or more characters that are not template syntax.
    fn literal(&mut self) -> Result<Box<str>, TemplateError> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if matches!(b, b'/' | b'{' | b'}' | b'*' | b'=' | b':' | b'?' | b'#')
                || b.is_ascii_whitespace()
                || b.is_ascii_control()
            {
                break;
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.error("expected a literal segment"));
        }
        Ok(self.text[start..self.pos].into())
    }
}

#[cfg(test)]
mod tests;
