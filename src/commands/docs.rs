//! `pgoci completions` and the man pages, both generated from the clap
//! definitions in `cli.rs` so they cannot drift from `--help`.

use super::output::Outcome;
use crate::cli::Cli;
use clap::CommandFactory;
use pgoci::error::{Error, IoContext, Result};
use std::path::Path;

pub fn completions(shell: clap_complete::Shell) -> Result<Outcome> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "pgoci", &mut buf);
    Ok(Outcome::new("completions", false).stdout(String::from_utf8_lossy(&buf).into_owned()))
}

/// Writes `pgoci.1` and one `pgoci-<sub>[-<subsub>].1` per visible subcommand.
pub fn man_pages(dir: &Path) -> Result<Outcome> {
    std::fs::create_dir_all(dir).with_path(dir, "create")?;
    let mut written = Vec::new();
    let root = Cli::command();
    render(&root, "pgoci", dir, &mut written)?;
    Ok(Outcome::new("generate-man", true)
        .field("files", &written)
        .note(format!(
            "wrote {} man pages to {}",
            written.len(),
            dir.display()
        )))
}

fn render(cmd: &clap::Command, name: &str, dir: &Path, written: &mut Vec<String>) -> Result<()> {
    let page = cmd.clone().name(name.to_string());
    let mut buf = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut buf)
        .map_err(|e| Error::internal(format!("man page {name}: {e}")))?;
    let file = dir.join(format!("{name}.1"));
    std::fs::write(&file, buf).with_path(&file, "write")?;
    written.push(format!("{name}.1"));
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        render(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}
