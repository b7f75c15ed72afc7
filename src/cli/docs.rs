//! `macveil completions SHELL` and `macveil manpage`: shell completions and the man page, both
//! generated from the same clap definition as `--help`, so they cannot drift from the options.

use std::io::{self, Write};

use clap::{Args, CommandFactory, ValueEnum};

use super::{Cli, Status};

/// Shells that `macveil completions` can write a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// bash (install as /usr/share/bash-completion/completions/macveil).
    Bash,
    /// zsh (install as _macveil in a folder on $fpath).
    Zsh,
    /// fish (install as ~/.config/fish/completions/macveil.fish).
    Fish,
}

/// Options of `macveil completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write completions for.
    pub shell: Shell,
}

/// Writes the completion script for `args.shell` to stdout.
pub(super) fn run_completions(args: &CompletionsArgs) -> anyhow::Result<Status> {
    let mut command = Cli::command();
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "macveil", &mut script);
    io::stdout().lock().write_all(&script)?;
    Ok(Status::Success)
}

/// Renders the man page, macveil(1), with one section per subcommand.
pub fn render_manpage() -> io::Result<Vec<u8>> {
    let command = Cli::command();
    let mut page = Vec::new();
    let man = clap_mangen::Man::new(command.clone());
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;

    writeln!(page, ".SH COMMANDS")?;
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        writeln!(page, ".SS \"macveil {}\"", sub.get_name())?;
        if let Some(about) = sub.get_about() {
            writeln!(page, "{}", escape_roff(&about.to_string()))?;
        }
        let sub_man =
            clap_mangen::Man::new(sub.clone().name(format!("macveil {}", sub.get_name())));
        sub_man.render_synopsis_section(&mut page)?;
        sub_man.render_options_section(&mut page)?;
        if let Some(after) = sub.get_after_help() {
            writeln!(page, ".PP\n.nf\n{}\n.fi", escape_roff(&after.to_string()))?;
        }
    }

    writeln!(page, ".SH \"EXIT STATUS\"")?;
    writeln!(page, ".nf\n{}\n.fi", escape_roff(super::EXIT_CODES_HELP))?;
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// Escapes text for roff: a backslash doubles, and a line may not start with '.' or '\''.
fn escape_roff(text: &str) -> String {
    text.replace('\\', "\\e")
        .lines()
        .map(|line| {
            if line.starts_with('.') || line.starts_with('\'') {
                format!("\\&{line}")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Writes the man page to stdout.
pub(super) fn run_manpage() -> anyhow::Result<Status> {
    io::stdout().lock().write_all(&render_manpage()?)?;
    Ok(Status::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manpage_names_every_command() {
        let page = String::from_utf8(render_manpage().unwrap()).unwrap();
        for sub in Cli::command()
            .get_subcommands()
            .filter(|sub| !sub.is_hide_set())
        {
            let heading = format!(".SS \"macveil {}\"", sub.get_name());
            assert!(page.contains(&heading), "missing {heading}");
        }
        assert!(page.contains("EXIT STATUS"));
    }

    #[test]
    fn committed_manpage_is_current() {
        let committed = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/doc/macveil.1"))
            .expect("doc/macveil.1 is missing; run: cargo run -- manpage > doc/macveil.1");
        let current = render_manpage().unwrap();
        assert!(
            committed == current,
            "doc/macveil.1 is out of date; run: cargo run -- manpage > doc/macveil.1"
        );
    }

    #[test]
    fn escape_roff_protects_control_lines() {
        assert_eq!(escape_roff(".x\n'y\na\\b"), "\\&.x\n\\&'y\na\\eb");
    }
}
