//! How progress looks to a person: indicatif bars (one per blob plus an
//! overall one, with bytes, rate and ETA) on a terminal, one plain line
//! per finished blob and per step otherwise. Everything goes to stderr,
//! and a stderr nobody reads any more (`2>&1 | head -1`) is not a reason
//! to stop: lines are written with [`say`], never `eprintln!` (which
//! panics on a closed stderr).

use super::output::say;
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use pgoci::digest::Digest;
use pgoci::progress::{Event, Phase, Reporter};
use std::collections::HashMap;
use std::sync::Mutex;

/// Plain lines, for logs and pipes.
#[derive(Default)]
pub struct Lines {
    sizes: Mutex<HashMap<Digest, u64>>,
}

impl Reporter for Lines {
    fn pull_started(&self, blobs: usize, bytes: u64) {
        if blobs > 0 {
            say(format_args!(
                "pulling {blobs} blob(s), {}",
                HumanBytes(bytes)
            ));
        }
    }

    fn blob_started(&self, digest: &Digest, size: u64) {
        self.sizes
            .lock()
            .expect("poisoned")
            .insert(digest.clone(), size);
    }

    fn blob_done(&self, digest: &Digest) {
        let size = self
            .sizes
            .lock()
            .expect("poisoned")
            .get(digest)
            .copied()
            .unwrap_or(0);
        say(format_args!(
            "fetched {digest} ({}, verified)",
            HumanBytes(size)
        ));
    }

    fn event(&self, event: &Event) {
        match event {
            Event::StepFinished {
                done,
                changed: true,
                ..
            } => say(format_args!("{done}")),
            Event::BlobStarted { digest, size, .. } => {
                self.sizes
                    .lock()
                    .expect("poisoned")
                    .insert((*digest).clone(), *size);
            }
            Event::BlobFinished {
                phase: phase @ Phase::Verify,
                digest,
                complete: true,
            } => {
                let size = self.sizes.lock().expect("poisoned").remove(*digest);
                say(format_args!(
                    "{} {digest} ({})",
                    phase.verb(),
                    HumanBytes(size.unwrap_or(0))
                ));
            }
            _ => {}
        }
    }
}

/// Bars, for a terminal.
pub struct Bars {
    multi: MultiProgress,
    overall: Mutex<Option<ProgressBar>>,
    blobs: Mutex<HashMap<Digest, ProgressBar>>,
}

impl Bars {
    pub fn new() -> Self {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            overall: Mutex::new(None),
            blobs: Mutex::new(HashMap::new()),
        }
    }

    fn style(template: &str) -> ProgressStyle {
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> ")
    }
}

impl Reporter for Bars {
    fn pull_started(&self, blobs: usize, bytes: u64) {
        if blobs == 0 {
            return;
        }
        let bar = self.multi.add(ProgressBar::new(bytes));
        bar.set_style(Self::style(
            "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        ));
        bar.set_prefix(format!("{blobs} blobs"));
        *self.overall.lock().expect("poisoned") = Some(bar);
    }

    fn pull_finished(&self) {
        if let Some(bar) = self.overall.lock().expect("poisoned").take() {
            bar.finish_and_clear();
        }
    }

    fn blob_started(&self, digest: &Digest, size: u64) {
        let bar = self.multi.add(ProgressBar::new(size));
        bar.set_style(Self::style(
            "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        ));
        bar.set_prefix(digest.short().to_string());
        self.blobs
            .lock()
            .expect("poisoned")
            .insert(digest.clone(), bar);
    }

    fn blob_progress(&self, digest: &Digest, bytes: u64) {
        if let Some(bar) = self.blobs.lock().expect("poisoned").get(digest) {
            bar.inc(bytes);
        }
        if let Some(bar) = self.overall.lock().expect("poisoned").as_ref() {
            bar.inc(bytes);
        }
    }

    fn blob_done(&self, digest: &Digest) {
        if let Some(bar) = self.blobs.lock().expect("poisoned").remove(digest) {
            bar.finish_and_clear();
        }
    }

    fn event(&self, event: &Event) {
        match event {
            Event::StepFinished {
                done,
                changed: true,
                ..
            } => {
                let line = done.to_string();
                // Above the bars while they draw; a plain line once they are gone.
                if self.overall.lock().expect("poisoned").is_some() {
                    let _ = self.multi.println(line);
                } else {
                    say(format_args!("{line}"));
                }
            }
            // Local phases (verify, unpack) get a bar per blob, like downloads.
            Event::BlobStarted {
                phase,
                digest,
                size,
            } => {
                let bar = self.multi.add(ProgressBar::new(*size));
                bar.set_style(Self::style(
                    "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
                ));
                bar.set_prefix(digest.short().to_string());
                bar.set_message(phase.verb().trim_end_matches("ed").to_string() + "ing");
                self.blobs
                    .lock()
                    .expect("poisoned")
                    .insert((*digest).clone(), bar);
            }
            Event::BlobProgress { digest, bytes, .. } => {
                if let Some(bar) = self.blobs.lock().expect("poisoned").get(*digest) {
                    bar.inc(*bytes);
                }
            }
            Event::BlobFinished { digest, .. } => {
                if let Some(bar) = self.blobs.lock().expect("poisoned").remove(*digest) {
                    bar.finish_and_clear();
                }
            }
            _ => {}
        }
    }
}
