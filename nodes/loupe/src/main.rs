//! The `loupe` command-line tool.
fn main() {}
