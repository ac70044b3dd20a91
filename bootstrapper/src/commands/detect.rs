//! `detect`: the hardware, every variant's verdict and the choice.

use peft_manifest::VariantCatalog;
use peft_manifest::select::{catalog_manifest, select_excluding};

use super::{
    Next, Session, choose, detect_here, emit_hardware, emit_selection, no_variant, unknown_variant,
};
use crate::cache::BadVariants;
use crate::error::{Error, Result};
use crate::source::Shelf;

/// `detect`: the hardware, every variant's verdict and the choice; installs nothing.
/// Without a repository it judges the built-in variant catalogue (version
/// `catalog`), so a machine can be explained before anything is published.
pub async fn run(ctx: &Session<'_>) -> Result<Next> {
    let (s, reporter) = (&ctx.s, ctx.reporter);
    let hw = detect_here(s);
    emit_hardware(ctx, &hw, true);
    let Some(root) = s.repo.root() else {
        reporter.warn(
            "no release repository is configured (--manifest-url, --offline-dir or release.json): judging the built-in variant catalogue".into(),
        );
        let catalog = VariantCatalog::builtin()
            .map_err(|e| Error::Internal(format!("the built-in variant catalogue: {e}")))?;
        let m = catalog_manifest(&catalog);
        unknown_variant(&m, &s.choice)?;
        let out = select_excluding(&m, &hw.hardware, None, &s.choice, &|_, _| None);
        emit_selection(reporter, &out, true, Some("catalog"));
        return match out.selected {
            Some(_) => Ok(Next::Exit),
            None => Err(no_variant(&m, s, &out, &hw)),
        };
    };
    let cache = ctx.cache()?;
    let lock = cache.lock(s.lock_timeout, &|_| {})?;
    let m = match ctx.manifest(&root, &lock, false).await? {
        Ok(m) => m,
        Err(next) => return Ok(next),
    };
    drop(lock);
    let bad = BadVariants::load(cache.root());
    let state = cache.state()?;
    choose(
        &m,
        s,
        &hw,
        &bad,
        &state,
        Shelf::for_repo(&s.repo).as_ref(),
        true,
        reporter,
    )?;
    Ok(Next::Exit)
}
