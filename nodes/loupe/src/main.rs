//! `loupe`: see the library crate ([`loupe`]) for the commands.

fn main() -> std::process::ExitCode {
    loupe::main()
}
