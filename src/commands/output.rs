//! What a command prints. Data goes to stdout (a JSON document with
//! `--json`, or the human form); notes and progress go to stderr.

use serde_json::{json, Value};

/// A command's result, in both forms.
pub struct Outcome {
    /// The `--json` document (always has `command` and `changed`).
    pub json: Value,
    /// Human data for stdout (may be empty).
    pub stdout: String,
    /// Human notes for stderr.
    pub notes: Vec<String>,
    /// The command failed, and still has its document to show (doctor's
    /// checks): printed with an `error` member, exit code from its kind.
    pub error: Option<pgoci::Error>,
}

impl Outcome {
    pub fn new(command: &str, changed: bool) -> Self {
        Outcome {
            json: json!({"command": command, "changed": changed}),
            stdout: String::new(),
            notes: Vec::new(),
            error: None,
        }
    }

    /// Marks the outcome failed with `err`: the document keeps its fields
    /// and gains `error` (as [`error_json`] words it); the human data goes
    /// to stderr, then the error's lines; the exit code is the error's.
    pub fn failed(mut self, err: pgoci::Error) -> Self {
        if let Value::Object(doc) = error_json("", &err) {
            self.json["error"] = doc["error"].clone();
        }
        self.error = Some(err);
        self
    }

    /// Adds a field to the JSON document.
    pub fn field(mut self, key: &str, value: impl serde::Serialize) -> Self {
        self.json[key] = serde_json::to_value(value).unwrap_or(Value::Null);
        self
    }

    pub fn note(mut self, line: impl Into<String>) -> Self {
        self.notes.push(line.into());
        self
    }

    pub fn stdout(mut self, text: impl Into<String>) -> Self {
        self.stdout = text.into();
        self
    }

    /// Prints in the chosen mode. A reader that went away (`| head`)
    /// is an `Err` of kind `BrokenPipe`, never a panic.
    pub fn print(&self, json_mode: bool, quiet: bool) -> std::io::Result<()> {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        if json_mode {
            let text = serde_json::to_string_pretty(&self.json).unwrap_or_default();
            writeln!(out, "{text}")?;
            return out.flush();
        }
        if !quiet {
            let mut err = std::io::stderr().lock();
            for n in &self.notes {
                writeln!(err, "{n}")?;
            }
        }
        if !self.stdout.is_empty() {
            // A failure's data is not the command's output: beside its error.
            let mut sink: Box<dyn Write> = match self.error {
                Some(_) => Box::new(std::io::stderr().lock()),
                None => Box::new(&mut out),
            };
            sink.write_all(self.stdout.as_bytes())?;
            if !self.stdout.ends_with('\n') {
                writeln!(sink)?;
            }
            sink.flush()?;
        }
        out.flush()
    }
}

/// One line on stderr. A stderr that is closed or whose reader went away
/// (`pgoci pull 2>&1 | head -1`) loses the line and nothing else:
/// `eprintln!` would panic (exit 101) there.
pub fn say(line: std::fmt::Arguments) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// The JSON document for a failure.
pub fn error_json(command: &str, err: &pgoci::Error) -> Value {
    let mut error = json!({"kind": err.kind.as_str(), "message": err.message});
    if let Some(h) = &err.hint {
        error["hint"] = json!(h);
    }
    if !err.warnings.is_empty() {
        error["warnings"] = json!(err.warnings);
    }
    json!({"command": command, "error": error})
}
