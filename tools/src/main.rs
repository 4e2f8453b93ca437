//! `framelock`: the command line.
fn main() {}
