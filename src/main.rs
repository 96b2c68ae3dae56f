#![forbid(unsafe_code)]
use clap::Parser;

fn main() {
    let _cli = vault::cli::Cli::parse();
}
