//! `xdprec calls`: not implemented yet.

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`xdprec calls` is not implemented yet")
}
