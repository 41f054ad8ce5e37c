//! `loupe users`: the dashboard's local users file (`dashboard.auth.users_file` of a report
//! node): add a user (the password from standard input or an environment variable, stored as
//! an argon2id hash), remove one, list them (names and roles, never hashes).

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use loupe_report::dashboard::users::{Role, Users};

/// `loupe users` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    what: UsersCommand,
}

/// `loupe users` subcommands.
#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Add a user; the password is read from standard input (one line) or `--password-env`.
    Add {
        /// The login name (letters, digits, `.`, `_`, `-`, `@`).
        name: String,
        /// What the user may do: viewer (look), reviewer (also review and upload), admin
        /// (also see the users).
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// The users file (created, mode 0600, if missing).
        #[arg(long)]
        file: PathBuf,
        /// Read the password from this environment variable instead of standard input.
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
    },
    /// Remove a user (their sessions end at their next request).
    Remove {
        /// The login name.
        name: String,
        /// The users file.
        #[arg(long)]
        file: PathBuf,
    },
    /// List the users and their roles.
    List {
        /// The users file.
        #[arg(long)]
        file: PathBuf,
    },
}

fn parse_role(text: &str) -> Result<Role, String> {
    text.parse()
        .map_err(|e: loupe_report::dashboard::users::UsersError| e.to_string())
}

/// The password: the variable's value, or one line of standard input (its line end removed).
fn password(env: Option<&str>) -> anyhow::Result<String> {
    let password = match env {
        Some(var) => std::env::var(var).with_context(|| {
            format!("--password-env: variable `{var}` is not set (or not UTF-8)")
        })?,
        None => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the password from standard input")?;
            line.trim_end_matches(['\n', '\r']).to_string()
        }
    };
    if password.is_empty() {
        bail!("the password is empty: give one on standard input or with --password-env");
    }
    Ok(password)
}

/// Runs `loupe users`.
pub fn users(args: Args) -> anyhow::Result<ExitCode> {
    match args.what {
        UsersCommand::Add {
            name,
            role,
            file,
            password_env,
        } => {
            let mut users = Users::load_or_empty(&file)?;
            let password = password(password_env.as_deref())?;
            users.add(&name, role, &password)?;
            users.save(&file)?;
            println!("added {name} ({role}) to {}", file.display());
        }
        UsersCommand::Remove { name, file } => {
            let mut users = Users::load(&file)?;
            users.remove(&name)?;
            users.save(&file)?;
            println!("removed {name} from {}", file.display());
        }
        UsersCommand::List { file } => {
            for user in Users::load(&file)?.users {
                println!("{}\t{}", user.name, user.role);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
