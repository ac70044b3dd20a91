//! `gc [--keep N]`.

use super::Session;
use crate::cache::collect;
use crate::error::Result;

/// `gc [--keep N]`.
pub fn run(ctx: &Session<'_>, keep: usize) -> Result<()> {
    let (cache, reporter) = (ctx.cache()?, ctx.reporter);
    let lock = ctx.lock()?;
    collect(cache, &lock, keep, reporter)
}
