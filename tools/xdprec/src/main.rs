//! The `xdprec` command: one binary, one subcommand per job.
//!
//! Each subcommand lives in its own module with `Args` (clap) and `run`. Command lines marked
//! "contract" in the issues are driven by checks outside this repository: keep them exactly.
#![deny(unsafe_code)]

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod calls;
mod capture;
mod demo;
mod export;
mod index;
mod replay;
mod stat;

#[derive(Parser)]
#[command(
    name = "xdprec",
    version,
    about = "Kernel-bypass call recording appliance"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Record SIP, RTP and RTCP from interfaces (AF_XDP) or import a pcap into a store.
    Capture(Box<capture::Args>),
    /// Tail per-core capture statistics of a store, like vmstat.
    Stat(stat::Args),
    /// Build the call index of one or more stores.
    Index(index::Args),
    /// Search the call index.
    Calls(calls::Args),
    /// Send a capture or synthetic calls into an interface.
    Replay(replay::Args),
    /// Export a call (or a time range) as pcap or WAV.
    Export(export::Args),
    /// Demo: record generated calls on a veth pair and show them.
    Demo(demo::Args),
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Capture(a) => capture::run(*a),
        Command::Stat(a) => stat::run(a),
        Command::Index(a) => index::run(a),
        Command::Calls(a) => calls::run(a),
        Command::Replay(a) => replay::run(a),
        Command::Export(a) => export::run(a),
        Command::Demo(a) => demo::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xdprec: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
